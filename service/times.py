"""Times at the edges: one parser for every input, one format for every output, one epoch.

Every time the service emits (API bodies, webhook payloads, job parameters, logs, the CLI)
is RFC 3339 in UTC with exactly three fractional digits and a `Z`:
`2026-11-22T10:01:05.120Z`. Sub-millisecond parts are floored, which keeps statements such
as "everything ingested before the watermark is included" true.

Every time the service accepts (ingested records, OTLP spans, query parameters, CLI
options) must lie in one window, `[EARLIEST, LATEST)` = [1970-01-01T00:00:00.000Z,
2100-01-01T00:00:00.000Z), checked by `storable` alone. Raw rows are DateTime64(3)
(1900..2299), but hour and day buckets (rollups, durations) are DateTime, which holds
1970-01-01 .. 2106-02-07 06:28:15; ending at 2100 leaves six years for rounding a bucket
or a range end up. A time outside the window raises `TimeOutOfRange` (a ValueError), whose
message callers put after the field or parameter.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import overload

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
MILLISECOND = timedelta(milliseconds=1)
EARLIEST = EPOCH
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
# The window in DateTime64(3) ticks (milliseconds since the epoch), for checks on columns.
EARLIEST_MS = 0
LATEST_MS = (LATEST - EPOCH) // MILLISECOND


class TimeOutOfRange(ValueError):
    """A valid time outside the window every table and computation can hold."""


def parse_time(raw: str) -> datetime:
    """An RFC 3339 string as aware UTC; no offset means UTC. Raises ValueError.

    Only a time that cannot be held in UTC at all raises `TimeOutOfRange` here; inputs go
    through `storable` for the window.
    """
    value = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+00:01 is before year 1 in UTC
        raise TimeOutOfRange(_outside(repr(raw))) from None


def storable(value: datetime) -> datetime:
    """`value` unchanged if the storage can hold it (no offset means UTC), else `TimeOutOfRange`.

    The one window check: ingest models, OTLP spans, query parameters and CLI options.
    """
    utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value
    try:
        if EARLIEST <= utc < LATEST:
            return value
        shown = format_time(utc)
    except OverflowError:  # an offset pushes year 1 or 9999 past what datetime holds
        shown = repr(value.isoformat())
    raise TimeOutOfRange(_outside(shown))


def _outside(shown: str) -> str:
    return (
        f"{shown} is outside the supported window [{format_time(EARLIEST)}, {format_time(LATEST)})"
    )


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
