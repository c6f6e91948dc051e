"""Query-string parsing shared by the endpoints: every error names its parameter."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from starlette.requests import Request

from service.errors import InvalidParameter
from service.ranges import time_parameter


def time_param(request: Request, name: str) -> datetime | None:
    """An optional RFC 3339 query parameter as aware UTC (400 naming `name` when malformed
    or outside the accepted window)."""
    return time_parameter(request.query_params, name)


def int_param(request: Request, name: str, default: int, *, low: int, high: int) -> int:
    """A bounded integer query parameter."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidParameter(name, f"{raw!r} is not an integer") from None
    if not low <= value <= high:
        raise InvalidParameter(name, f"must be between {low} and {high}")
    return value


def reject_unknown(request: Request, allowed: Collection[str]) -> None:
    """400 for a query parameter the endpoint does not take (typos fail loudly)."""
    for name in request.query_params:
        if name not in allowed:
            raise InvalidParameter(name, f"unknown parameter (allowed: {sorted(allowed)})")
