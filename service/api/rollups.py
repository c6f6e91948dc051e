"""`GET /v1/usage` and `GET /v1/latency`: rollup reads with a freshness watermark.

Both answer `{"data": [...], "freshness": {"watermark", "lag_seconds", "source"}}`. The
rollup tables serve by default; `TA_ROLLUP_READ_FROM_RAW=true` (or `source=raw` on one
request, for verification) computes the same rows from raw data instead. Reads are scoped
to the caller's project, so a project key can only ever verify its own project.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service.api.params import reject_unknown
from service.api.state import caller_project, context
from service.rollups.read import Freshness, fetch_latency, fetch_usage, freshness
from service.rollups.request import (
    LATENCY_GROUP_KEYS,
    TRACE_GROUP_KEYS,
    USAGE_GROUP_KEYS,
    LatencyQuery,
    RangeQuery,
    parse_level,
    parse_range,
)

_RANGE_PARAMS = {"project_id", "from", "to", "granularity", "group_by", "source"}


def get_usage(request: Request) -> Response:
    """Tokens, cost, counts and errors per hour or day, optionally grouped."""
    reject_unknown(request, _RANGE_PARAMS)
    query = _range(request, USAGE_GROUP_KEYS)
    ctx = context(request)
    fresh = _freshness(request, query)
    return _respond(fresh, fetch_usage(ctx.clickhouse, query))


def get_latency(request: Request) -> Response:
    """Latency count, avg, p50/p90/p95/p99 and max per hour or day, for observations or traces."""
    reject_unknown(request, {*_RANGE_PARAMS, "level"})
    level = parse_level(request.query_params.get("level"))
    keys = TRACE_GROUP_KEYS if level == "trace" else LATENCY_GROUP_KEYS
    query = _range(request, keys)
    ctx = context(request)
    fresh = _freshness(request, query)
    return _respond(fresh, fetch_latency(ctx.clickhouse, LatencyQuery(range=query, level=level)))


def _range(request: Request, keys: tuple[str, ...]) -> RangeQuery:
    ctx = context(request)
    return parse_range(
        request.query_params,
        project_id=caller_project(request),
        now=ctx.clock(),
        max_range_days=ctx.settings.max_range_days,
        group_keys=keys,
        default_source="raw" if ctx.settings.rollup_read_from_raw else "rollup",
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


def routes() -> list[Route]:
    return [
        Route("/v1/usage", get_usage, methods=["GET"]),
        Route("/v1/latency", get_latency, methods=["GET"]),
    ]
