"""Request bodies: read with a size cap, so an oversized body is a 413 before it is buffered."""

from __future__ import annotations

from starlette.requests import Request

from service.errors import ClientError, PayloadTooLarge, UnsupportedMediaType

# Content-Encodings a body may arrive in (decoding others is the OTLP work's to add).
SUPPORTED_ENCODINGS = frozenset({"identity"})


async def read_body(
    request: Request, limit: int, *, empty: ClientError | None, setting: str | None = None
) -> bytes:
    """The body, at most `limit` bytes (413 naming `setting` if given); `empty` is raised on b""."""
    hint = f" ({setting})" if setting else ""
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding and encoding not in SUPPORTED_ENCODINGS:
        raise UnsupportedMediaType(
            f"content-encoding {encoding!r} is not supported (send the body uncompressed)"
        )
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"body exceeds {limit} bytes{hint}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body exceeds {limit} bytes{hint}")
        chunks.append(chunk)
    if size == 0 and empty is not None:
        raise empty
    return b"".join(chunks)
