"""Bucket arithmetic for the rollups: UTC hours, days and the whole days inside a range (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


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


def whole_days(lo: datetime, hi: datetime) -> tuple[datetime, datetime]:
    """The run of complete UTC days inside [lo, hi), as [start, end); empty when none fit."""
    start, end = ceil_day(lo), floor_day(hi)
    return (start, end) if start < end else (lo, lo)
