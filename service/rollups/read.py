"""Read paths of `/v1/usage` and `/v1/latency`: the rollup tables, or raw rows on request.

Both paths return the same row shape, so the raw path is a drop-in fallback (the
`TA_ROLLUP_READ_FROM_RAW` safety switch) and a per-request verification (`source=raw`).
Percentiles come from log-bucket histograms (see `service.rollups.sketch`): every reported
percentile is within 1% (relative) of the true value at that rank, whatever the range.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from service.clickhouse import ClickHouse
from service.rollups.recompute import read_watermark
from service.rollups.request import (
    LATENCY_GROUP_KEYS,
    USAGE_GROUP_KEYS,
    LatencyQuery,
    RangeQuery,
)
from service.rollups.sketch import bucket_value
from service.times import format_time

# The levels the SQL reads off each merged histogram, in this order.
PERCENTILES = ("p50_ms", "p90_ms", "p95_ms", "p99_ms")


@dataclass(frozen=True)
class Freshness:
    """How current a response is: everything ingested before `watermark` is included."""

    watermark: datetime | None
    source: str
    lag_seconds: float | None

    def to_json(self) -> dict[str, Any]:
        return {
            "watermark": format_time(self.watermark),
            "lag_seconds": None if self.lag_seconds is None else round(self.lag_seconds, 3),
            "source": self.source,
        }


def freshness(ch: ClickHouse, source: str, now: datetime) -> Freshness:
    """The rollup watermark (raw reads are current as of `now`)."""
    if source == "raw":
        return Freshness(watermark=now, source="raw", lag_seconds=0.0)
    watermark = read_watermark(ch)
    lag = None if watermark is None else max(0.0, (now - watermark).total_seconds())
    return Freshness(watermark=watermark, source="rollup", lag_seconds=lag)


def fetch_usage(ch: ClickHouse, query: RangeQuery) -> list[dict[str, Any]]:
    """Usage rows: bucket, the requested group keys, counts, tokens, cost, errors."""
    params = query.params(USAGE_GROUP_KEYS)
    if query.source == "raw":
        name = "rollups/usage_from_raw"
    else:
        name = "rollups/usage_from_rollup"
        params["grouping"] = usage_grouping(query.group_by)
    rows = ch.query_dicts(name, params)
    return [usage_row(row, query.group_by) for row in rows]


def fetch_latency(ch: ClickHouse, query: LatencyQuery) -> list[dict[str, Any]]:
    """Latency rows: bucket, group keys, count, avg, p50/p90/p95/p99, max, orphans, skewed."""
    params = query.range.params(LATENCY_GROUP_KEYS)
    if query.range.source == "raw":
        name = (
            "rollups/trace_latency_from_raw"
            if query.level == "trace"
            else "rollups/observation_latency_from_raw"
        )
    else:
        name = "rollups/latency_from_rollup"
        params["level"] = query.level
        params["grouping"] = latency_grouping(query.level, query.range.group_by)
    rows = ch.query_dicts(name, params)
    return [latency_row(row, query.range.group_by) for row in rows]


def usage_grouping(group_by: tuple[str, ...]) -> int:
    """The coarsest pre-merged grouping of usage_rollup that holds these keys (pure).

    Rows are stored per every key = 0, per model = 1 and as totals = 2 (same sums).
    """
    if not set(group_by) <= {"model"}:
        return 0
    return 1 if group_by else 2


def latency_grouping(level: str, group_by: tuple[str, ...]) -> int:
    """The coarsest pre-merged grouping of latency_rollup that holds these keys (pure).

    Observation rows are stored per (name, model, provider, type) = 0, per name = 1 and as
    totals = 2; trace rows only per name = 0. Reading the coarsest one that still has every
    requested key merges the fewest histograms and gives the same sums.
    """
    if level == "trace" or not set(group_by) <= {"name"}:
        return 0
    return 1 if group_by else 2


def usage_row(row: dict[str, Any], group_by: tuple[str, ...]) -> dict[str, Any]:
    """One API row from one query row (pure)."""
    out: dict[str, Any] = {"bucket": format_time(row["bucket"])}
    for key in group_by:
        out[key] = row[f"g_{key}"]
    out.update(
        observations=int(row["s_observations"]),
        input_tokens=int(row["s_input_tokens"]),
        output_tokens=int(row["s_output_tokens"]),
        total_tokens=int(row["s_total_tokens"]),
        cost=float(row["s_cost"]),
        errors=int(row["s_errors"]),
    )
    return out


def latency_row(row: dict[str, Any], group_by: tuple[str, ...]) -> dict[str, Any]:
    """One API row; stats are null when nothing in the group has a usable duration (pure)."""
    out: dict[str, Any] = {"bucket": format_time(row["bucket"])}
    for key in group_by:
        out[key] = row[f"g_{key}"]
    count = int(row["s_count"])
    out["count"] = count
    out["avg_ms"] = float(row["s_sum_ms"]) / count if count else None
    for label, index in zip(PERCENTILES, row["s_quantile_buckets"], strict=True):
        out[label] = bucket_value(int(index)) if count else None
    out["max_ms"] = float(row["s_max_ms"]) if count else None
    out["orphans"] = int(row["s_orphans"])
    out["skewed"] = int(row["s_skewed"])
    return out
