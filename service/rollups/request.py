"""What a `/v1/usage` or `/v1/latency` request asks for, validated (pure, no I/O).

Every error is an `InvalidParameter` naming the parameter, so the API can answer 400 with a
message a client can act on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from service.errors import InvalidParameter
from service.ranges import Granularity, parse_time_range
from service.rollups.buckets import whole_days

USAGE_GROUP_KEYS = ("model", "provider", "type", "name", "environment")
LATENCY_GROUP_KEYS = ("name", "model", "provider", "type")
TRACE_GROUP_KEYS = ("name",)

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


def parse_range(
    params: Mapping[str, str],
    *,
    project_id: str,
    now: datetime,
    max_range_days: int,
    group_keys: tuple[str, ...],
    default_source: Source,
) -> RangeQuery:
    """Validate from/to/granularity (`service.ranges`) and group_by/source."""
    bounds = parse_time_range(params, now=now, max_range_days=max_range_days)
    source = params.get("source") or default_source
    if source not in ("rollup", "raw"):
        raise InvalidParameter("source", f"{source!r} is not rollup or raw")
    return RangeQuery(
        project_id=project_id,
        lo=bounds.lo,
        hi=bounds.hi,
        granularity=bounds.granularity,
        group_by=parse_group_by(params.get("group_by"), group_keys),
        source="raw" if source == "raw" else "rollup",
    )


def parse_group_by(raw: str | None, allowed: tuple[str, ...]) -> tuple[str, ...]:
    """`model,provider` as a tuple in canonical order; unknown or repeated keys are a 400."""
    if raw is None or raw.strip() == "":
        return ()
    keys = [part.strip() for part in raw.split(",")]
    for key in keys:
        if key not in allowed:
            raise InvalidParameter("group_by", f"{key!r} is not one of {', '.join(allowed)}")
    if len(set(keys)) != len(keys):
        raise InvalidParameter("group_by", "a key is repeated")
    return tuple(key for key in allowed if key in keys)


def parse_level(raw: str | None) -> Level:
    """`observation` (default) or `trace`."""
    level = raw or "observation"
    if level == "observation":
        return "observation"
    if level == "trace":
        return "trace"
    raise InvalidParameter("level", f"{level!r} is not observation or trace")
