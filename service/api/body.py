"""Request bodies: read with a size cap, so an oversized body is a 413 before it is buffered.

A `Content-Encoding` body (gzip, deflate, zstd) is inflated as it streams in; the cap holds
for the inflated size too.
"""

from __future__ import annotations

from starlette.requests import Request

from service.api.content import DecodedTooLarge, body_decoder
from service.errors import ClientError, PayloadTooLarge


async def read_body(
    request: Request, limit: int, *, empty: ClientError | None, setting: str | None = None
) -> bytes:
    """The body, at most `limit` bytes (413 naming `setting` if given); `empty` is raised on b""."""
    hint = f" ({setting})" if setting else ""
    too_large = PayloadTooLarge(f"body exceeds {limit} bytes{hint}")
    decoder = body_decoder(request.headers.get("content-encoding"), limit)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        if decoder is not None:
            try:
                chunk = decoder.feed(chunk)
            except DecodedTooLarge:
                raise PayloadTooLarge(
                    f"body exceeds {limit} bytes once decompressed ({decoder.encoding}){hint}"
                ) from None
        chunks.append(chunk)
    if decoder is not None and size:
        decoder.finish()
    body = b"".join(chunks)
    if not body and empty is not None:
        raise empty
    return body
