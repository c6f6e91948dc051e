"""Read paths of `/v1/usage` and `/v1/latency`: the ledger's bucket views, or raw rows on request.

Both paths compute the same contributions (queries/rollups/*_contributions.sql) and return the
same rows, so the raw path is a drop-in fallback (the `TA_ROLLUP_READ_FROM_RAW` safety
switch) and a per-request verification (`source=raw`). Percentiles and `max_ms` come from
log-bucket histograms (see `service.rollups.sketch`): each is within 1% (relative) of the
true value at its rank, whatever the range, and identical on both paths.

`read_answer` is what a request runs: one small statement for the version of the ledger
and watermark, then the cached answer of that version (`service.rollups.cache`), or the
watermark and the rows read in that order, so a response is never older than it says.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import orjson

from service.clickhouse import ClickHouse
from service.encoding import dumps
from service.rollups.cache import CachedAnswer, ReadCache
from service.rollups.passes import read_watermark
from service.rollups.request import (
    LATENCY_GROUP_KEYS,
    USAGE_GROUP_KEYS,
    LatencyQuery,
    RangeQuery,
)
from service.rollups.sketch import bucket_value, position_index
from service.times import format_time

# The levels the SQL reads off each merged histogram, in this order.
PERCENTILES = ("p50_ms", "p90_ms", "p95_ms", "p99_ms")
# Every key the read statements can group by; a request turns on the ones it asks for.
ALL_GROUP_KEYS = ("model", "provider", "type", "name", "environment")
# One unit of cost: the ledger counts cost in integers of 1e-12.
PICO = 1_000_000_000_000


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


def rollup_freshness(watermark: datetime | None, now: datetime) -> Freshness:
    """A rollup answer's freshness at `now` (pure)."""
    lag = None if watermark is None else max(0.0, (now - watermark).total_seconds())
    return Freshness(watermark=watermark, source="rollup", lag_seconds=lag)


# How a rollup answer was found: in the cache, computed (the cache missed, was asked to
# refresh, or is off), or computed from raw rows (never cached).
Outcome = Literal["hit", "miss", "refresh", "off", "raw"]


@dataclass(frozen=True)
class Answer:
    """A read's answer: its freshness and its rows, already encoded as a JSON array."""

    freshness: Freshness
    data: bytes
    outcome: Outcome

    def body(self) -> bytes:
        """The response body: `{"data": [...], "freshness": {...}}`."""
        return b'{"data":%b,"freshness":%b}' % (self.data, orjson.dumps(self.freshness.to_json()))


def read_version(ch: ClickHouse) -> int:
    """A fingerprint of the ledger's and the watermark's active parts (see `rollups.cache`)."""
    return int(ch.query_rows("rollups/read_version")[0][0])


def read_answer(
    ch: ClickHouse,
    cache: ReadCache,
    query: RangeQuery | LatencyQuery,
    now: datetime,
    *,
    refresh: bool = False,
    keep: bool = True,
) -> Answer:
    """Answer a usage (`RangeQuery`) or latency (`LatencyQuery`) read.

    Rollup reads: the version first, then the cached answer of that version unless
    `refresh`; else the watermark, THEN the rows (so the rows are at least that fresh),
    stored (when `keep`) for the next request asking the same at the same version.
    """
    source = query.range.source if isinstance(query, LatencyQuery) else query.source
    if source == "raw":
        fresh = Freshness(watermark=now, source="raw", lag_seconds=0.0)
        return Answer(fresh, dumps(_fetch(ch, query)), "raw")
    # Neither looked up nor kept (`no-cache, no-store`): the cache plays no part, as when off.
    version = read_version(ch) if cache.enabled and (keep or not refresh) else None
    if version is not None and not refresh:
        found = cache.get(query, version)
        if found is not None:
            return Answer(rollup_freshness(found.watermark, now), found.data, "hit")
    watermark = read_watermark(ch)
    data = dumps(_fetch(ch, query))
    if version is None:
        return Answer(rollup_freshness(watermark, now), data, "refresh" if refresh else "off")
    if keep:
        cache.put(query, version, CachedAnswer(watermark, data))
    return Answer(rollup_freshness(watermark, now), data, "refresh" if refresh else "miss")


def _fetch(ch: ClickHouse, query: RangeQuery | LatencyQuery) -> list[dict[str, Any]]:
    if isinstance(query, LatencyQuery):
        return fetch_latency(ch, query)
    return fetch_usage(ch, query)


def fetch_usage(ch: ClickHouse, query: RangeQuery) -> list[dict[str, Any]]:
    """Usage rows: bucket, the requested group keys, counts, tokens, cost, errors."""
    params = _params(query, USAGE_GROUP_KEYS)
    if query.source == "raw":
        name = "rollups/usage_from_raw"
    else:
        name = "rollups/usage_from_ledger"
        params["hour_view"], params["day_view"] = usage_views(query.group_by)
        params["kind"] = "observation"
    rows = ch.query_dicts(name, params)
    return [usage_row(row, query.group_by) for row in rows]


def fetch_latency(ch: ClickHouse, query: LatencyQuery) -> list[dict[str, Any]]:
    """Latency rows: bucket, group keys, count, avg, p50/p90/p95/p99, max, orphans, skewed."""
    params = _params(query.range, LATENCY_GROUP_KEYS)
    params["kind"] = query.level
    if query.range.source == "raw":
        name = (
            "rollups/trace_latency_from_raw"
            if query.level == "trace"
            else "rollups/latency_from_raw"
        )
    else:
        name = "rollups/latency_from_ledger"
        params["hour_view"], params["day_view"] = latency_views(query.level, query.range.group_by)
    rows = ch.query_dicts(name, params)
    return [latency_row(row, query.range.group_by) for row in rows]


def _params(query: RangeQuery, keys: tuple[str, ...]) -> dict[str, object]:
    """The request's parameters, every group key the statements know off unless asked for."""
    params = query.params(keys)
    for key in ALL_GROUP_KEYS:
        params.setdefault(f"by_{key}", False)
    return params


def usage_views(group_by: tuple[str, ...]) -> tuple[str, str]:
    """The (hour, day) ledger views to read for these usage keys: the coarsest holding them.

    Bucket rows are kept per every key, per model and as totals (the same sums); the
    coarser the view, the fewer rows a read adds up (pure).
    """
    if not set(group_by) <= {"model"}:
        return ("hour", "day")
    return ("hour_model", "day_model") if group_by else ("hour_total", "day_total")


def latency_views(level: str, group_by: tuple[str, ...]) -> tuple[str, str]:
    """The (hour, day) ledger views to read for this latency level and keys (pure).

    Observation rows are kept per every key, per name and as totals; trace rows per trace
    name and as totals. Reading the coarsest view holding every requested key merges the
    fewest histograms and gives the same sums.
    """
    if level == "trace" or set(group_by) <= {"name"}:
        return ("hour_name", "day_name") if group_by else ("hour_total", "day_total")
    return ("hour", "day")


def usage_row(row: dict[str, Any], group_by: tuple[str, ...]) -> dict[str, Any]:
    """One API row from one query row (pure)."""
    out: dict[str, Any] = {"bucket": format_time(row["bucket"])}
    for key in group_by:
        out[key] = row[f"g_{key}"]
    out.update(
        observations=int(row["s_observations"]),
        input_tokens=int(row["s_input_tokens"]),
        output_tokens=int(row["s_output_tokens"]),
        total_tokens=int(row["s_input_tokens"]) + int(row["s_output_tokens"]),
        cost=int(row["s_cost_pico"]) / PICO,
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
    # The SQL reads p50, p90, p95, p99 and the max (rank n - 1) off the same histogram: the
    # max is not additive, so it is not kept exactly but within 1%, like the percentiles.
    *levels, top = (
        bucket_value(position_index(int(position))) if count else None
        for position in row["s_positions"]
    )
    for label, value in zip(PERCENTILES, levels, strict=True):
        out[label] = value
    out["max_ms"] = top
    out["orphans"] = int(row["s_orphans"])
    out["skewed"] = int(row["s_skewed"])
    return out
