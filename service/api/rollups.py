"""`GET /v1/usage` and `GET /v1/latency`: rollup reads with a freshness watermark.

Both answer `{"data": [...], "freshness": {"watermark", "lag_seconds", "source"}}`. The
rollup tables serve by default; `TA_ROLLUP_READ_FROM_RAW=true` (or `source=raw` on one
request, for verification) computes the same rows from raw data instead. Reads are scoped
to the caller's project, so a project key can only ever verify its own project.
"""

from __future__ import annotations

from typing import Any, NotRequired

from pydantic import Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from typing_extensions import TypedDict

from service.api.endpoint import Endpoint, endpoint
from service.api.params import RangeParams
from service.api.schemas import Time
from service.api.state import caller_project, context
from service.ranges import time_range
from service.rollups.read import Freshness, fetch_latency, fetch_usage, freshness
from service.rollups.request import (
    LATENCY_GROUP_KEYS,
    TRACE_GROUP_KEYS,
    USAGE_GROUP_KEYS,
    LatencyGroupKey,
    LatencyQuery,
    Level,
    RangeQuery,
    Source,
    UsageGroupKey,
    range_query,
)

_SOURCE = "`rollup` (default) or `raw` (recomputed from raw rows, for verification)."


class UsageParams(RangeParams):
    """`/v1/usage`: a range, optional group keys, and where to read from."""

    group_by: list[UsageGroupKey] = Field(
        default_factory=list, description="Comma-separated keys to group rows by."
    )
    source: Source | None = Field(None, description=_SOURCE)


class LatencyParams(RangeParams):
    """`/v1/latency`: as usage, plus the level measured."""

    group_by: list[LatencyGroupKey] = Field(
        default_factory=list,
        description="Comma-separated keys to group rows by (`level=trace`: `name` only).",
    )
    source: Source | None = Field(None, description=_SOURCE)
    level: Level = Field("observation", description="Latency of observations or of traces.")


class FreshnessOut(TypedDict):
    """Everything ingested before `watermark` is included (`null`: never computed)."""

    watermark: Time | None
    lag_seconds: float | None
    source: Source


class UsageRow(TypedDict):
    """One bucket (and group): only the requested group keys are present."""

    bucket: Time
    model: NotRequired[str]
    provider: NotRequired[str]
    type: NotRequired[str]
    name: NotRequired[str]
    environment: NotRequired[str]
    observations: int
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cost: float
    errors: int


class LatencyRow(TypedDict):
    """One bucket (and group); the stats are null when nothing has a usable duration."""

    bucket: Time
    name: NotRequired[str]
    model: NotRequired[str]
    provider: NotRequired[str]
    type: NotRequired[str]
    count: int
    avg_ms: float | None
    p50_ms: float | None
    p90_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    orphans: int
    skewed: int


class UsageOut(TypedDict):
    data: list[UsageRow]
    freshness: FreshnessOut


class LatencyOut(TypedDict):
    data: list[LatencyRow]
    freshness: FreshnessOut


def get_usage(request: Request, query: UsageParams) -> Response:
    """Tokens, cost, counts and errors per hour or day, optionally grouped."""
    ask = _range(request, query, query.group_by, query.source, USAGE_GROUP_KEYS)
    ctx = context(request)
    fresh = _freshness(request, ask)
    return _respond(fresh, fetch_usage(ctx.clickhouse, ask))


def get_latency(request: Request, query: LatencyParams) -> Response:
    """Latency count, avg, p50/p90/p95/p99 and max per hour or day, for observations or traces."""
    keys = TRACE_GROUP_KEYS if query.level == "trace" else LATENCY_GROUP_KEYS
    ask = _range(request, query, query.group_by, query.source, keys)
    ctx = context(request)
    fresh = _freshness(request, ask)
    return _respond(
        fresh, fetch_latency(ctx.clickhouse, LatencyQuery(range=ask, level=query.level))
    )


def _range(
    request: Request,
    query: RangeParams,
    group_by: list[Any],
    source: Source | None,
    keys: tuple[str, ...],
) -> RangeQuery:
    ctx = context(request)
    bounds = time_range(
        query.from_,
        query.to,
        query.granularity,
        now=ctx.clock(),
        max_range_days=ctx.settings.max_range_days,
    )
    default: Source = "raw" if ctx.settings.rollup_read_from_raw else "rollup"
    return range_query(
        project_id=caller_project(request),
        bounds=bounds,
        group_by=group_by,
        group_keys=keys,
        source=source or default,
    )


def _freshness(request: Request, query: RangeQuery) -> Freshness:
    """The watermark, read BEFORE the rows so the rows are at least that fresh."""
    ctx = context(request)
    fresh = freshness(ctx.clickhouse, query.source, ctx.clock())
    if fresh.lag_seconds is not None and query.source == "rollup":
        ctx.metrics.rollup_lag.set(fresh.lag_seconds)
    return fresh


def _respond(fresh: Freshness, rows: list[dict[str, Any]]) -> Response:
    return JSONResponse({"data": rows, "freshness": fresh.to_json()})


def routes() -> list[Endpoint]:
    return [
        endpoint("GET", "/v1/usage", get_usage, query=UsageParams, responses={200: UsageOut}),
        endpoint(
            "GET", "/v1/latency", get_latency, query=LatencyParams, responses={200: LatencyOut}
        ),
    ]
