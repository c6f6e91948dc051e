"""The one `from`/`to`/`granularity` parser of the read APIs (usage, latency, duration stats).

A range selects the UTC hour buckets overlapping [from, to): `from` is floored to its hour
and `to` rounded up, so a rollup (hourly rows) and a raw recomputation (per row) cover
exactly the same rows. Pure; every error is an `InvalidParameter` naming the parameter.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from service.errors import InvalidParameter
from service.times import TimeOutOfRange, ceil_hour, floor_hour, parse_time

Granularity = Literal["hour", "day"]
GRANULARITIES: tuple[Granularity, ...] = ("hour", "day")
RANGE_PARAMETERS = frozenset({"from", "to", "granularity"})
DEFAULT_SPAN = timedelta(days=1)


@dataclass(frozen=True)
class TimeRange:
    """Hour-aligned [lo, hi) and the bucket size the answer is grouped by."""

    lo: datetime
    hi: datetime
    granularity: Granularity


def parse_time_range(params: Mapping[str, str], *, now: datetime, max_range_days: int) -> TimeRange:
    """`to` defaults to now and `from` to 24 h before `to`; `granularity` to `hour`."""
    to = time_parameter(params, "to") or now
    start = time_parameter(params, "from") or to - DEFAULT_SPAN
    if start >= to:
        raise InvalidParameter("from", "must be before to")
    if to - start > timedelta(days=max_range_days):
        raise InvalidParameter(
            "to",
            f"range from..to is longer than the {max_range_days}-day limit (TA_MAX_RANGE_DAYS)",
        )
    raw = params.get("granularity") or "hour"
    for granularity in GRANULARITIES:
        if raw == granularity:
            return TimeRange(lo=floor_hour(start), hi=ceil_hour(to), granularity=granularity)
    raise InvalidParameter("granularity", f"{raw!r} is not hour or day")


def time_parameter(params: Mapping[str, str], name: str) -> datetime | None:
    """The optional RFC 3339 parameter `name` as aware UTC; every time parameter goes here.

    400 naming `name` when it is malformed or outside the window `service.times` accepts.
    """
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return parse_time(raw)
    except TimeOutOfRange as exc:
        raise InvalidParameter(name, str(exc)) from None
    except ValueError:
        raise InvalidParameter(name, f"{raw!r} is not an RFC 3339 time") from None
