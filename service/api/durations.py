"""Duration definitions CRUD, per-definition stats, and `GET /v1/traces/{trace_id}/durations`.

Definitions are addressed by name (unique per project): `PUT`/`DELETE
/v1/duration-definitions/{name}`. Creating or changing one queues a `durations.backfill` job
over the project's already-concluded traces. The trace endpoint only reads stored rows.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service.api.auth import principal
from service.api.body import read_body
from service.api.errors import ApiError
from service.api.jobs import job_json
from service.api.params import parse_time, reject_unknown
from service.clickhouse import ClickHouse
from service.durations.backfill import KIND, backfill_params
from service.durations.definitions import (
    DurationDefinitionIn,
    DurationDefinitionUpdate,
    DurationSpec,
    InvalidDefinition,
    parse_definition,
)
from service.durations.store import (
    StoredDefinition,
    definition_stats,
    delete_definition,
    get_definition,
    list_definitions,
    read_trace_durations,
    save_definition,
)
from service.jobs.model import Job
from service.jobs.store import create_job
from service.traces.store import trace_exists

log = logging.getLogger(__name__)

_MAX_BODY = 64 * 1024
_GRANULARITIES = ("hour", "day")


async def _body(request: Request) -> bytes:
    empty = ApiError(400, "invalid_definition", "body: expected a JSON object")
    return await read_body(request, _MAX_BODY, empty=empty)


def _project(request: Request) -> str:
    return principal(request).read_project(request.query_params.get("project_id"))


def _save_and_backfill(
    request: Request, project: str, name: str, spec: DurationSpec
) -> tuple[StoredDefinition, Job]:
    """Store the new definition version and queue its backfill over concluded traces."""
    ctx = request.app.state.ctx
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


def list_definitions_endpoint(request: Request) -> Response:
    """The project's duration definitions."""
    reject_unknown(request, {"project_id"})
    ch = request.app.state.ctx.clickhouse
    return JSONResponse({"data": [d.to_json() for d in list_definitions(ch, _project(request))]})


def get_definition_endpoint(request: Request) -> Response:
    """One duration definition by name."""
    reject_unknown(request, {"project_id"})
    current = _existing(request)
    return JSONResponse({"definition": current.to_json()})


def _existing(request: Request) -> StoredDefinition:
    name = request.path_params["name"]
    current = get_definition(request.app.state.ctx.clickhouse, _project(request), name)
    if current is None:
        raise ApiError(404, "not_found", f"name: no duration definition {name!r}")
    return current


async def create_definition(request: Request) -> Response:
    """Create a definition; queues a backfill over already-concluded traces (201)."""
    reject_unknown(request, {"project_id"})
    body = await _body(request)
    try:
        definition = parse_definition(DurationDefinitionIn, body)
    except InvalidDefinition as exc:
        raise ApiError(400, "invalid_definition", str(exc)) from None
    project = _project(request)

    def create() -> tuple[StoredDefinition, Job]:
        ch = request.app.state.ctx.clickhouse
        if get_definition(ch, project, definition.name) is not None:
            raise ApiError(
                409,
                "conflict",
                f"name: duration definition {definition.name!r} exists; "
                "PUT /v1/duration-definitions/{name} changes it",
            )
        return _save_and_backfill(request, project, definition.name, definition)

    stored, job = await anyio.to_thread.run_sync(create)
    return JSONResponse({"definition": stored.to_json(), "job": job_json(job)}, status_code=201)


async def update_definition(request: Request) -> Response:
    """Replace a definition's anchors; queues a backfill recomputing concluded traces."""
    reject_unknown(request, {"project_id"})
    name = request.path_params["name"]
    body = await _body(request)
    try:
        update = parse_definition(DurationDefinitionUpdate, body)
    except InvalidDefinition as exc:
        raise ApiError(400, "invalid_definition", str(exc)) from None
    if update.name is not None and update.name != name:
        raise ApiError(
            400, "invalid_definition", f"name: {update.name!r} differs from the path ({name!r})"
        )
    project = _project(request)

    def save() -> tuple[StoredDefinition, Job]:
        _existing(request)
        return _save_and_backfill(request, project, name, update)

    stored, job = await anyio.to_thread.run_sync(save)
    return JSONResponse({"definition": stored.to_json(), "job": job_json(job)})


def delete_definition_endpoint(request: Request) -> Response:
    """Delete a definition; its stored durations stop being served."""
    reject_unknown(request, {"project_id"})
    current = _existing(request)
    ctx = request.app.state.ctx
    delete_definition(ctx.clickhouse, current, ctx.stamp.next())
    return JSONResponse({"deleted": {"name": current.name}})


def definition_stats_endpoint(request: Request) -> Response:
    """Count, skew, missing and percentiles of one definition per bucket over [from, to)."""
    reject_unknown(request, {"project_id", "from", "to", "granularity"})
    ctx = request.app.state.ctx
    start = parse_time(request, "from", required=True)
    end = parse_time(request, "to", required=True)
    assert start is not None
    assert end is not None
    if end <= start:
        raise ApiError(400, "invalid_parameter", "to: must be after from")
    if (end - start).days > ctx.settings.max_range_days:
        raise ApiError(
            400,
            "invalid_parameter",
            f"to: range longer than {ctx.settings.max_range_days} days (TA_MAX_RANGE_DAYS)",
        )
    granularity = request.query_params.get("granularity") or "hour"
    if granularity not in _GRANULARITIES:
        raise ApiError(400, "invalid_parameter", f"granularity: must be one of {_GRANULARITIES}")
    current = _existing(request)
    rows = definition_stats(ctx.clickhouse, current, start, end, granularity)
    body: dict[str, Any] = {"definition": current.name, "granularity": granularity, "data": rows}
    return JSONResponse(body)


def trace_durations_endpoint(request: Request) -> Response:
    """The trace's stored named durations (read-only; computed when the trace concluded)."""
    reject_unknown(request, {"project_id"})
    ch = request.app.state.ctx.clickhouse
    project = _project(request)
    trace_id = request.path_params["trace_id"]
    if not trace_exists(ch, project, trace_id):
        raise ApiError(404, "not_found", f"trace_id: no trace {trace_id!r}")
    # None: the trace has not concluded yet, so nothing is materialized for it.
    data = read_trace_durations(ch, project, trace_id) or []
    return JSONResponse({"data": data})


def routes() -> list[Route]:
    return [
        Route("/v1/duration-definitions", list_definitions_endpoint, methods=["GET"]),
        Route("/v1/duration-definitions", create_definition, methods=["POST"]),
        Route("/v1/duration-definitions/{name}", get_definition_endpoint, methods=["GET"]),
        Route("/v1/duration-definitions/{name}", update_definition, methods=["PUT"]),
        Route("/v1/duration-definitions/{name}", delete_definition_endpoint, methods=["DELETE"]),
        Route("/v1/duration-definitions/{name}/stats", definition_stats_endpoint, methods=["GET"]),
        Route("/v1/traces/{trace_id}/durations", trace_durations_endpoint, methods=["GET"]),
    ]
