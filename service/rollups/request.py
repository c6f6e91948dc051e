"""What a `/v1/usage` or `/v1/latency` request asks for, validated (pure, no I/O).

The API parses the parameters' syntax from their declaration (`service.api.rollups`); what
depends on more than one parameter (group keys allowed at a level) is checked here. Every
error is an `InvalidParameter` naming the parameter, so the API can answer 400 with a
message a client can act on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, get_args

from service.errors import InvalidParameter
from service.ranges import Granularity, TimeRange
from service.rollups.buckets import whole_days

# Canonical order of each read's group keys (the order of columns in its answer).
UsageGroupKey = Literal["model", "provider", "type", "name", "environment"]
LatencyGroupKey = Literal["name", "model", "provider", "type"]
USAGE_GROUP_KEYS: tuple[str, ...] = get_args(UsageGroupKey)
LATENCY_GROUP_KEYS: tuple[str, ...] = get_args(LatencyGroupKey)
TRACE_GROUP_KEYS: tuple[str, ...] = ("name",)

Level = Literal["observation", "trace"]
Source = Literal["rollup", "raw"]


@dataclass(frozen=True)
class RangeQuery:
    """The common part of both read APIs: project, hour-aligned range, buckets, groups, source."""

    project_id: str
    lo: datetime
    hi: datetime
    granularity: Granularity
    group_by: tuple[str, ...]
    source: Source

    def params(self, keys: tuple[str, ...]) -> dict[str, object]:
        """Server-side parameters: range, granularity and one on/off flag per group key."""
        # Day buckets take whole days from the daily rollup; hours outside them (and every
        # hour at hour granularity) come from the hourly one.
        dlo, dhi = whole_days(self.lo, self.hi) if self.granularity == "day" else (self.lo,) * 2
        params: dict[str, object] = {
            "project_id": self.project_id,
            "lo": self.lo,
            "hi": self.hi,
            "dlo": dlo,
            "dhi": dhi,
            "day": self.granularity == "day",
        }
        for key in keys:
            params[f"by_{key}"] = key in self.group_by
        return params


@dataclass(frozen=True)
class LatencyQuery:
    """A `/v1/latency` request."""

    range: RangeQuery
    level: Level


def range_query(
    *,
    project_id: str,
    bounds: TimeRange,
    group_by: Sequence[str],
    group_keys: tuple[str, ...],
    source: Source,
) -> RangeQuery:
    """A validated range (`service.ranges.time_range`) with its groups and source."""
    return RangeQuery(
        project_id=project_id,
        lo=bounds.lo,
        hi=bounds.hi,
        granularity=bounds.granularity,
        group_by=parse_group_by(group_by, group_keys),
        source=source,
    )


def parse_group_by(keys: Sequence[str], allowed: tuple[str, ...]) -> tuple[str, ...]:
    """Group keys in canonical order; unknown or repeated keys are a 400."""
    for key in keys:
        if key not in allowed:
            raise InvalidParameter("group_by", f"{key!r} is not one of {', '.join(allowed)}")
    if len(set(keys)) != len(keys):
        raise InvalidParameter("group_by", "a key is repeated")
    return tuple(key for key in allowed if key in keys)
