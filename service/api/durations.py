"""Duration definitions CRUD, per-definition stats, and `GET /v1/traces/{trace_id}/durations`.

Definitions are addressed by name (unique per project): `PUT`/`DELETE
/v1/duration-definitions/{name}`. Creating or changing one queues a `durations.backfill` job
over the project's already-concluded traces. The trace endpoint only reads stored rows.
"""

from __future__ import annotations

import logging
from typing import Literal, NotRequired

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from typing_extensions import TypedDict

from service.api.body import read_body
from service.api.endpoint import Body, Endpoint, endpoint
from service.api.jobs import JobOut, job_json
from service.api.params import ProjectParams, RangeParams
from service.api.schemas import Time
from service.api.state import caller_project, context
from service.clickhouse import ClickHouse
from service.durations.catalog import (
    StoredDefinition,
    delete_definition,
    get_definition,
    list_definitions,
    save_definition,
)
from service.durations.definitions import (
    DurationDefinitionIn,
    DurationDefinitionUpdate,
    DurationSpec,
    parse_definition,
)
from service.durations.results import definition_stats, read_trace_durations
from service.errors import Conflict, InvalidDefinition, NotFound
from service.ingest.models import ObservationType
from service.jobs.durations_backfill import KIND, backfill_params
from service.jobs.model import Job
from service.jobs.store import create_job
from service.ranges import Granularity, time_range
from service.traces.store import trace_exists

log = logging.getLogger(__name__)

_MAX_BODY = 64 * 1024


class TraceAnchorOut(TypedDict):
    anchor: Literal["trace_start", "trace_end"]


class ObservationAnchorOut(TypedDict):
    anchor: Literal["observation"]
    type: NotRequired[ObservationType]
    name: NotRequired[str]
    pick: Literal["first", "last"]
    edge: Literal["start", "end", "first_token"]


class DefinitionOut(TypedDict):
    """A stored definition: its anchors and how many times it was saved (`version`)."""

    name: str
    version: int
    start: TraceAnchorOut | ObservationAnchorOut
    end: TraceAnchorOut | ObservationAnchorOut
    created_at: Time
    updated_at: Time


class DefinitionList(TypedDict):
    data: list[DefinitionOut]


class DefinitionOne(TypedDict):
    definition: DefinitionOut


class DefinitionSaved(TypedDict):
    """The stored definition and the backfill job that recomputes concluded traces."""

    definition: DefinitionOut
    job: JobOut


class DeletedName(TypedDict):
    name: str


class DefinitionDeleted(TypedDict):
    deleted: DeletedName


class StatsRow(TypedDict):
    """One bucket of trace start times; the stats are null when no duration counted."""

    bucket: Time
    count: int
    skewed: int
    missing: int
    avg_ms: float | None
    p50_ms: float | None
    p90_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None


class DefinitionStats(TypedDict):
    definition: str
    granularity: Granularity
    data: list[StatsRow]


class TraceDurationOut(TypedDict):
    """One named duration of the trace; `revision` is null until it is materialized."""

    name: str
    duration_ms: float | None
    start_time: Time | None
    end_time: Time | None
    reason: str | None
    revision: int | None


class TraceDurations(TypedDict):
    data: list[TraceDurationOut]


async def _body(request: Request) -> bytes:
    empty = InvalidDefinition("body", "expected a JSON object")
    return await read_body(request, _MAX_BODY, empty=empty)


def _save_and_backfill(
    request: Request, project: str, name: str, spec: DurationSpec
) -> tuple[StoredDefinition, Job]:
    """Store the new definition version and queue its backfill over concluded traces."""
    ctx = context(request)
    ch: ClickHouse = ctx.clickhouse
    stored = save_definition(ch, project, name, spec, ctx.stamp.next())
    job = create_job(
        ch,
        KIND,
        project,
        backfill_params(name, ctx.settings.backfill_batch_size),
        ctx.stamp.next(),
    )
    log.info(
        "durations backfill queued",
        extra={"project_id": project, "definition": name, "job_id": job.id},
    )
    return stored, job


def list_definitions_endpoint(request: Request, query: ProjectParams) -> Response:
    """The project's duration definitions."""
    ch = context(request).clickhouse
    return JSONResponse(
        {"data": [d.to_json() for d in list_definitions(ch, caller_project(request))]}
    )


def get_definition_endpoint(request: Request, query: ProjectParams) -> Response:
    """One duration definition by name."""
    current = _existing(request)
    return JSONResponse({"definition": current.to_json()})


def _existing(request: Request) -> StoredDefinition:
    name = request.path_params["name"]
    current = get_definition(context(request).clickhouse, caller_project(request), name)
    if current is None:
        raise NotFound(f"name: no duration definition {name!r}")
    return current


async def create_definition(request: Request, query: ProjectParams) -> Response:
    """Create a definition; queues a backfill over already-concluded traces (201)."""
    body = await _body(request)
    definition = parse_definition(DurationDefinitionIn, body)
    project = caller_project(request)

    def create() -> tuple[StoredDefinition, Job]:
        ch = context(request).clickhouse
        if get_definition(ch, project, definition.name) is not None:
            raise Conflict(
                f"name: duration definition {definition.name!r} exists; "
                "PUT /v1/duration-definitions/{name} changes it"
            )
        return _save_and_backfill(request, project, definition.name, definition)

    stored, job = await anyio.to_thread.run_sync(create)
    return JSONResponse({"definition": stored.to_json(), "job": job_json(job)}, status_code=201)


async def update_definition(request: Request, query: ProjectParams) -> Response:
    """Replace a definition's anchors; queues a backfill recomputing concluded traces."""
    name = request.path_params["name"]
    body = await _body(request)
    update = parse_definition(DurationDefinitionUpdate, body)
    if update.name is not None and update.name != name:
        raise InvalidDefinition("name", f"{update.name!r} differs from the path ({name!r})")
    project = caller_project(request)

    def save() -> tuple[StoredDefinition, Job]:
        _existing(request)
        return _save_and_backfill(request, project, name, update)

    stored, job = await anyio.to_thread.run_sync(save)
    return JSONResponse({"definition": stored.to_json(), "job": job_json(job)})


def delete_definition_endpoint(request: Request, query: ProjectParams) -> Response:
    """Delete a definition; its stored durations stop being served."""
    current = _existing(request)
    ctx = context(request)
    delete_definition(ctx.clickhouse, current, ctx.stamp.next())
    return JSONResponse({"deleted": {"name": current.name}})


def definition_stats_endpoint(request: Request, query: RangeParams) -> Response:
    """Count, skew, missing and percentiles of one definition per bucket over [from, to)."""
    ctx = context(request)
    bounds = time_range(
        query.from_,
        query.to,
        query.granularity,
        now=ctx.clock(),
        max_range_days=ctx.settings.max_range_days,
    )
    current = _existing(request)
    rows = definition_stats(ctx.clickhouse, current, bounds)
    body = {
        "definition": current.name,
        "granularity": bounds.granularity,
        "data": [row.to_json() for row in rows],
    }
    return JSONResponse(body)


def trace_durations_endpoint(request: Request, query: ProjectParams) -> Response:
    """The trace's stored named durations (read-only; computed when the trace concluded)."""
    ch = context(request).clickhouse
    project = caller_project(request)
    trace_id = request.path_params["trace_id"]
    if not trace_exists(ch, project, trace_id):
        raise NotFound(f"trace_id: no trace {trace_id!r}")
    # None: the trace has not concluded yet, so nothing is materialized for it.
    data = read_trace_durations(ch, project, trace_id) or []
    return JSONResponse({"data": [d.to_json() for d in data]})


def routes() -> list[Endpoint]:
    definitions = "/v1/duration-definitions"
    one = "/v1/duration-definitions/{name}"
    return [
        endpoint(
            "GET",
            definitions,
            list_definitions_endpoint,
            query=ProjectParams,
            responses={200: DefinitionList},
        ),
        endpoint(
            "POST",
            definitions,
            create_definition,
            query=ProjectParams,
            body=Body(DurationDefinitionIn),
            responses={201: DefinitionSaved},
            errors=(409,),
        ),
        endpoint(
            "GET", one, get_definition_endpoint, query=ProjectParams, responses={200: DefinitionOne}
        ),
        endpoint(
            "PUT",
            one,
            update_definition,
            query=ProjectParams,
            body=Body(DurationDefinitionUpdate),
            responses={200: DefinitionSaved},
        ),
        endpoint(
            "DELETE",
            one,
            delete_definition_endpoint,
            query=ProjectParams,
            responses={200: DefinitionDeleted},
        ),
        endpoint(
            "GET",
            f"{one}/stats",
            definition_stats_endpoint,
            query=RangeParams,
            responses={200: DefinitionStats},
        ),
        endpoint(
            "GET",
            "/v1/traces/{trace_id}/durations",
            trace_durations_endpoint,
            query=ProjectParams,
            responses={200: TraceDurations},
        ),
    ]
