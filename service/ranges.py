"""The one `from`/`to`/`granularity` rule of the read APIs (usage, latency, duration stats).

A range selects the UTC hour buckets overlapping [from, to): `from` is floored to its hour
and `to` rounded up, so a rollup (hourly rows) and a raw recomputation (per row) cover
exactly the same rows. The API parses the parameters' syntax from their declaration
(`service.api.params.RangeParams`); this module checks what a declaration cannot (order,
length). Pure; every error is an `InvalidParameter` naming the parameter.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from service.errors import InvalidParameter
from service.times import EARLIEST, ceil_hour, floor_hour, format_time

Granularity = Literal["hour", "day"]
DEFAULT_SPAN = timedelta(days=1)


@dataclass(frozen=True)
class TimeRange:
    """Hour-aligned [lo, hi) and the bucket size the answer is grouped by."""

    lo: datetime
    hi: datetime
    granularity: Granularity


def time_range(
    start: datetime | None,
    end: datetime | None,
    granularity: Granularity,
    *,
    now: datetime,
    max_range_days: int,
) -> TimeRange:
    """`end` defaults to now and `start` to 24 h before `end`."""
    to = end or now
    begin = start or to - DEFAULT_SPAN
    if begin >= to:
        raise InvalidParameter("from", "must be before to")
    if begin < EARLIEST:  # `to` near the window's start, `from` defaulted before it
        raise InvalidParameter("from", f"must be at or after {format_time(EARLIEST)}")
    if to - begin > timedelta(days=max_range_days):
        raise InvalidParameter(
            "to",
            f"range from..to is longer than the {max_range_days}-day limit (TA_MAX_RANGE_DAYS)",
        )
    return TimeRange(lo=floor_hour(begin), hi=ceil_hour(to), granularity=granularity)
