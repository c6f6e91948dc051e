"""`POST /v1/ingest`: a size-capped batch, validated on its own, then group-committed."""

from __future__ import annotations

import logging

import anyio
from pydantic import Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from typing_extensions import TypedDict

from service.api.body import read_body
from service.api.content import media_type, unsupported_media_type
from service.api.endpoint import Body, Endpoint, endpoint
from service.api.params import ProjectParams
from service.api.state import context, principal
from service.errors import ForbiddenProject, InvalidBatch, Overloaded
from service.ingest.decode import parse_batch
from service.ingest.models import IngestBatch

log = logging.getLogger(__name__)

EMPTY_BATCH = "expected a JSON object with traces/observations"


class IngestParams(ProjectParams):
    """Ingest's one parameter: the project of records that name none."""

    project_id: str | None = Field(
        None,
        min_length=1,
        max_length=512,
        description=(
            "Project of the records that carry no `project_id` (admin keys and keyless "
            "deployments; default `default`). A project key writes its own project only: "
            "naming another here or in a record is a 403."
        ),
    )


class Counts(TypedDict):
    traces: int
    observations: int


class Accepted(TypedDict):
    """How many records of each kind the batch wrote."""

    accepted: Counts


async def ingest(request: Request, query: IngestParams) -> Response:
    """Write traces and observations: 202 only once written; a rejected batch writes nothing.

    Requests arriving together are validated one by one and written together (group
    commit, `service.ingest.writer`); a full write queue is a 503 with `Retry-After`.
    """
    ctx = context(request)
    caller = principal(request)
    content_type = request.headers.get("content-type")
    if media_type(content_type) not in (None, "application/json"):
        ctx.metrics.ingest_rejected.labels("unsupported_media_type").inc()
        raise unsupported_media_type(content_type, ("application/json",))
    default_project = query.project_id
    try:
        # A full queue answers 503 before any CPU goes into the body (inflating, parsing).
        ctx.ingest.ensure_room()
        body = await read_body(
            request,
            ctx.settings.ingest_max_bytes,
            setting="TA_INGEST_MAX_BYTES",
            empty=InvalidBatch("body", EMPTY_BATCH),
        )
        batch = await anyio.to_thread.run_sync(parse_batch, body)

        def resolve(record_project: str | None, field: str) -> str:
            return caller.write_project(record_project, default_project, field)

        result = await ctx.ingest.write(batch.resolve(resolve))
    except (InvalidBatch, ForbiddenProject, Overloaded) as exc:
        ctx.metrics.ingest_rejected.labels(exc.code).inc()
        raise
    answer: Accepted = {"accepted": {"traces": result.traces, "observations": result.observations}}
    return JSONResponse(answer, status_code=202)


def routes() -> list[Endpoint]:
    return [
        endpoint(
            "POST",
            "/v1/ingest",
            ingest,
            query=IngestParams,
            body=Body(IngestBatch),
            responses={202: Accepted},
            errors=(503,),
        )
    ]
