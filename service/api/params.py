"""Query-string parsing shared by the read endpoints: every error names its parameter."""

from __future__ import annotations

from datetime import datetime

from starlette.requests import Request

from service.api.errors import ApiError
from service.times import parse_rfc3339


def parse_time(request: Request, name: str, *, required: bool = False) -> datetime | None:
    """An RFC 3339 query parameter as aware UTC (400 naming `name` when malformed)."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        if required:
            raise ApiError(400, "invalid_parameter", f"{name}: required (RFC 3339 time)")
        return None
    try:
        return parse_rfc3339(raw)
    except ValueError:
        raise ApiError(
            400, "invalid_parameter", f"{name}: {raw!r} is not an RFC 3339 time"
        ) from None


def parse_int(request: Request, name: str, default: int, *, low: int, high: int) -> int:
    """A bounded integer query parameter."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "invalid_parameter", f"{name}: {raw!r} is not an integer") from None
    if not low <= value <= high:
        raise ApiError(400, "invalid_parameter", f"{name}: must be between {low} and {high}")
    return value


def reject_unknown(request: Request, allowed: set[str]) -> None:
    """400 for a query parameter the endpoint does not take (typos fail loudly)."""
    for name in request.query_params:
        if name not in allowed:
            raise ApiError(
                400, "invalid_parameter", f"{name}: unknown parameter (allowed: {sorted(allowed)})"
            )
