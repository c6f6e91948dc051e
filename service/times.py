"""RFC 3339 times at the edges: one parser for every input, the two output shapes we emit."""

from __future__ import annotations

from datetime import UTC, datetime


def parse_rfc3339(raw: str) -> datetime:
    """An RFC 3339 string as aware UTC; no offset means UTC. Raises ValueError."""
    value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def rfc3339(value: datetime | None) -> str | None:
    """`2026-11-22T10:01:05.120Z` (always milliseconds), or None."""
    if value is None:
        return None
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def rfc3339_compact(value: datetime | None) -> str | None:
    """`2026-11-22T10:00:00Z`, with microseconds only when there are any, or None."""
    if value is None:
        return None
    utc = value.astimezone(UTC)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if utc.microsecond:
        text += f".{utc.microsecond:06d}"
    return text + "Z"
