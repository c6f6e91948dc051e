"""`POST /v1/ingest`: a size-capped batch, validated on its own, then group-committed."""

from __future__ import annotations

import logging

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service.api.body import read_body
from service.api.state import context, principal
from service.errors import ForbiddenProject, InvalidBatch, Overloaded
from service.ingest.decode import parse_batch

log = logging.getLogger(__name__)

EMPTY_BATCH = "expected a JSON object with traces/observations"


async def ingest(request: Request) -> Response:
    """Write traces and observations; 202 only once they are written, a rejected batch
    writes nothing."""
    ctx = context(request)
    caller = principal(request)
    default_project = request.query_params.get("project_id")
    body = await read_body(
        request,
        ctx.settings.ingest_max_bytes,
        setting="TA_INGEST_MAX_BYTES",
        empty=InvalidBatch("body", EMPTY_BATCH),
    )
    try:
        ctx.ingest.ensure_room()  # a full queue answers 503 before spending CPU on the body
    except Overloaded as exc:
        ctx.metrics.ingest_rejected.labels(exc.code).inc()
        raise
    try:
        batch = await anyio.to_thread.run_sync(parse_batch, body)
    except InvalidBatch:
        ctx.metrics.ingest_rejected.labels("invalid_batch").inc()
        raise

    def resolve(record_project: str | None, field: str) -> str:
        return caller.write_project(record_project, default_project, field)

    try:
        rows = batch.resolve(resolve)
    except ForbiddenProject:
        ctx.metrics.ingest_rejected.labels("forbidden_project").inc()
        raise

    try:
        result = await ctx.ingest.write(rows)
    except Overloaded as exc:
        ctx.metrics.ingest_rejected.labels(exc.code).inc()
        raise
    ctx.metrics.ingested_rows.labels("traces").inc(result.traces)
    ctx.metrics.ingested_rows.labels("observations").inc(result.observations)
    return JSONResponse(
        {"accepted": {"traces": result.traces, "observations": result.observations}},
        status_code=202,
    )


def routes() -> list[Route]:
    return [Route("/v1/ingest", ingest, methods=["POST"])]
