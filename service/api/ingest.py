"""`POST /v1/ingest`: a size-capped batch, validated whole, then written."""

from __future__ import annotations

import logging

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service.api.auth import principal
from service.api.body import read_body
from service.api.content import media_type, unsupported_media_type
from service.api.errors import ApiError, error_response
from service.ingest.admission import IngestWriter, Overloaded
from service.ingest.models import IngestBatch, InvalidBatch, parse_batch
from service.ingest.writer import IngestResult

log = logging.getLogger(__name__)

EMPTY_BATCH = "body: expected a JSON object with traces/observations"


async def ingest(request: Request) -> Response:
    """Write traces and observations; a rejected batch writes nothing."""
    ctx = request.app.state.ctx
    caller = principal(request)
    content_type = request.headers.get("content-type")
    if media_type(content_type) not in (None, "application/json"):
        ctx.metrics.ingest_rejected.labels("unsupported_media_type").inc()
        raise unsupported_media_type(content_type, ("application/json",))
    default_project = request.query_params.get("project_id")
    body = await read_body(
        request,
        ctx.settings.ingest_max_bytes,
        setting="TA_INGEST_MAX_BYTES",
        empty=ApiError(400, "invalid_batch", EMPTY_BATCH),
    )
    try:
        batch = await anyio.to_thread.run_sync(parse_batch, body)
    except InvalidBatch as exc:
        ctx.metrics.ingest_rejected.labels("invalid_batch").inc()
        raise ApiError(400, "invalid_batch", str(exc)) from None

    def resolve(record_project: str | None, field: str) -> str:
        return caller.write_project(record_project, default_project, field)

    def write(batch: IngestBatch) -> IngestResult:
        writer: IngestWriter = ctx.writer
        return writer.write(batch, resolve)

    try:
        result = await anyio.to_thread.run_sync(write, batch)
    except ApiError:
        ctx.metrics.ingest_rejected.labels("forbidden_project").inc()
        raise
    except Overloaded as exc:
        ctx.metrics.ingest_rejected.labels(exc.code).inc()
        return overloaded_response(exc)
    ctx.metrics.ingested_rows.labels("traces").inc(result.traces)
    ctx.metrics.ingested_rows.labels("observations").inc(result.observations)
    return JSONResponse(
        {"accepted": {"traces": result.traces, "observations": result.observations}},
        status_code=202,
    )


def overloaded_response(exc: Overloaded) -> Response:
    """503 + Retry-After in the API's error shape."""
    response = error_response(exc.status, exc.code, exc.message)
    response.headers["retry-after"] = exc.retry_after_header
    return response


def routes() -> list[Route]:
    return [Route("/v1/ingest", ingest, methods=["POST"])]
