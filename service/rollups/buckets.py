"""Bucket arithmetic for the rollups: the whole UTC days inside a range (pure).

Hours and days themselves (`floor_hour`, `ceil_day`, ...) live in `service.times`.
"""

from __future__ import annotations

from datetime import datetime

from service.times import ceil_day, floor_day


def whole_days(lo: datetime, hi: datetime) -> tuple[datetime, datetime]:
    """The run of complete UTC days inside [lo, hi), as [start, end); empty when none fit."""
    start, end = ceil_day(lo), floor_day(hi)
    return (start, end) if start < end else (lo, lo)
