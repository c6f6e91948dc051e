"""Request content negotiation: the media type a body claims and the encoding it arrives in.

Compressed bodies are inflated incrementally as they stream in, each step asked for at most
one byte more than the room left under the body cap, so a decompression bomb costs the cap
plus one chunk of memory and ends in a 413, never in an out-of-memory.
"""

from __future__ import annotations

import sys
import zlib
from typing import Protocol

from service.errors import InvalidBody, UnsupportedMediaType

if sys.version_info >= (3, 14):
    from compression import zstd
else:
    from backports import zstd

SUPPORTED_ENCODINGS = ("gzip", "deflate", "zstd", "identity")


class DecodedTooLarge(Exception):
    """The decompressed body grew past the cap."""


class _Inflater(Protocol):
    @property
    def eof(self) -> bool: ...

    @property
    def unused_data(self) -> bytes: ...

    def decompress(self, data: bytes, max_length: int = ..., /) -> bytes: ...


def media_type(content_type: str | None) -> str | None:
    """`application/json; charset=utf-8` → `application/json`; None when absent or blank."""
    if content_type is None:
        return None
    value = content_type.split(";", 1)[0].strip().lower()
    return value or None


def unsupported_media_type(
    content_type: str | None, accepted: tuple[str, ...]
) -> UnsupportedMediaType:
    return UnsupportedMediaType(
        f"Content-Type: {content_type!r} is not accepted here (use {' or '.join(accepted)})"
    )


class BodyDecoder:
    """Inflates one request body chunk by chunk, never producing more than `limit` bytes."""

    def __init__(self, encoding: str, limit: int) -> None:
        self.encoding = encoding
        self._limit = limit
        self._produced = 0
        self._inflater: _Inflater | None = None

    def feed(self, chunk: bytes) -> bytes:
        """The bytes this chunk inflates to; raises `DecodedTooLarge` or `InvalidBody`."""
        out: list[bytes] = []
        data = chunk
        while data:
            if self._inflater is None:
                self._inflater = self._new_inflater(data)
            elif self._inflater.eof:
                # Concatenated members (gzip) or frames (zstd) decode one after another.
                self._inflater = self._new_inflater(data)
            room = self._limit - self._produced
            try:
                piece = self._inflater.decompress(data, room + 1)
            except (zlib.error, zstd.ZstdError, EOFError) as exc:
                raise self._corrupt(str(exc)) from None
            self._produced += len(piece)
            if self._produced > self._limit:
                raise DecodedTooLarge
            out.append(piece)
            # Within the room, an inflater consumes all of `data` unless its stream ended.
            data = self._inflater.unused_data if self._inflater.eof else b""
        return b"".join(out)

    def finish(self) -> None:
        """Checks the stream ended where the body did (a truncated stream is a 400)."""
        if self._inflater is not None and not self._inflater.eof:
            raise self._corrupt("the compressed stream ends early")

    def _new_inflater(self, head: bytes) -> _Inflater:
        if self.encoding == "gzip":
            return zlib.decompressobj(16 + zlib.MAX_WBITS)
        if self.encoding == "zstd":
            return zstd.ZstdDecompressor()
        # HTTP's "deflate" is zlib-wrapped (RFC 9110), but some clients send raw deflate.
        wrapped = len(head) >= 2 and head[0] & 0x0F == 8 and (head[0] << 8 | head[1]) % 31 == 0
        return zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)

    def _corrupt(self, detail: str) -> InvalidBody:
        return InvalidBody("body", f"not valid {self.encoding} data ({detail.rstrip('.')})")


def body_decoder(content_encoding: str | None, limit: int) -> BodyDecoder | None:
    """The decoder for a `Content-Encoding` header; None for none/identity; 415 otherwise."""
    if content_encoding is None:
        return None
    codings = [c.strip().lower() for c in content_encoding.split(",") if c.strip()]
    codings = [c for c in codings if c != "identity"]
    if not codings:
        return None
    if len(codings) == 1 and codings[0] in ("gzip", "x-gzip", "deflate", "zstd"):
        return BodyDecoder("gzip" if codings[0] == "x-gzip" else codings[0], limit)
    raise UnsupportedMediaType(
        f"Content-Encoding: {content_encoding!r} is not supported "
        f"(use one of {', '.join(SUPPORTED_ENCODINGS)})"
    )
