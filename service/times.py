"""Times at the edges: one parser for every input, one format for every output, one epoch.

Every time the service emits (API bodies, webhook payloads, job parameters, logs, the CLI)
is RFC 3339 in UTC with exactly three fractional digits and a `Z`:
`2026-11-22T10:01:05.120Z`. Sub-millisecond parts are floored, which keeps statements such
as "everything ingested before the watermark is included" true.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import overload

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
# Times every table and query parameter can hold: hour buckets are `DateTime` (1970 to
# 2106), raw times `DateTime64` (1900 to 2299). Inputs outside [EARLIEST, LATEST) are a 400.
EARLIEST = EPOCH
LATEST = datetime(2100, 1, 1, tzinfo=UTC)


def parse_time(raw: str) -> datetime:
    """An RFC 3339 string as aware UTC; no offset means UTC. Raises ValueError."""
    value = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+00:01 is before year 1 in UTC
        raise ValueError(f"{raw!r} is out of range in UTC") from None


def storable(value: datetime) -> datetime:
    """`value` if the storage can hold it; ValueError naming the window otherwise."""
    if not EARLIEST <= value < LATEST:
        raise ValueError(
            f"{format_time(value)} is outside the supported window "
            f"[{format_time(EARLIEST)}, {format_time(LATEST)})"
        )
    return value


@overload
def format_time(value: datetime) -> str: ...
@overload
def format_time(value: datetime | None) -> str | None: ...
def format_time(value: datetime | None) -> str | None:
    """`2026-11-22T10:01:05.120Z` (UTC, always milliseconds), or None."""
    if value is None:
        return None
    utc = value.astimezone(UTC) if value.tzinfo is not None else value
    return (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T"
        f"{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}.{utc.microsecond // 1000:03d}Z"
    )


def floor_hour(value: datetime) -> datetime:
    """The start of the UTC hour holding `value`."""
    utc = value.astimezone(UTC)
    return utc.replace(minute=0, second=0, microsecond=0)


def ceil_hour(value: datetime) -> datetime:
    """The first hour boundary at or after `value`."""
    floor = floor_hour(value)
    return floor if floor == value.astimezone(UTC) else floor + HOUR


def floor_day(value: datetime) -> datetime:
    """Midnight UTC of the day holding `value`."""
    return floor_hour(value).replace(hour=0)


def ceil_day(value: datetime) -> datetime:
    """The first UTC midnight at or after `value`."""
    floor = floor_day(value)
    return floor if floor == value.astimezone(UTC) else floor + DAY
