"""Request bodies: read with a size cap, so an oversized body is a 413 before it is buffered."""

from __future__ import annotations

from starlette.requests import Request

from service.errors import ClientError, PayloadTooLarge


async def read_body(
    request: Request, limit: int, *, empty: ClientError | None, setting: str | None = None
) -> bytes:
    """The body, at most `limit` bytes (413 naming `setting` if given); `empty` is raised on b""."""
    hint = f" ({setting})" if setting else ""
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
