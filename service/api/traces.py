"""`GET /v1/traces/{trace_id}` (raw-derived summary) and `DELETE /v1/traces/{trace_id}`."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.api.routing import EncodedRoute
from service.api.state import caller_project, context
from service.conclusions.store import trace_state
from service.durations.materialize import forget_trace
from service.errors import NotFound
from service.times import format_time
from service.traces.store import soft_delete_trace
from service.traces.summary import fetch_summaries


def get_trace(request: Request) -> Response:
    """The trace's summary from its live raw rows, and its status (open/concluded, revision)."""
    ctx = context(request)
    project = caller_project(request)
    trace_id = request.path_params["trace_id"]
    summary = fetch_summaries(ctx.clickhouse, [(project, trace_id)]).get((project, trace_id))
    if summary is None:
        raise NotFound(f"trace_id: no trace {trace_id!r}")
    body: dict[str, Any] = {
        "project_id": project,
        "trace_id": trace_id,
        "timestamp": format_time(summary.timestamp),
        "summary": summary.to_json(),
    }
    state = trace_state(ctx.clickhouse, project, trace_id)
    body["status"] = state.status
    body["revision"] = state.revision or None
    return JSONResponse(body)


def delete_trace(request: Request) -> Response:
    """Soft-delete the trace and its observations; rollups follow on their next pass."""
    ctx = context(request)
    project = caller_project(request)
    trace_id = request.path_params["trace_id"]
    if not soft_delete_trace(ctx.clickhouse, project, trace_id, ctx.stamp):
        raise NotFound(f"trace_id: no trace {trace_id!r}")
    forget_trace(ctx.clickhouse, project, trace_id, ctx.stamp.next())
    return JSONResponse({"deleted": {"project_id": project, "trace_id": trace_id}})


def routes() -> list[EncodedRoute]:
    # Ids may contain "/" (sent as %2F): matched on the raw path, see service.api.routing.
    return [
        EncodedRoute("/v1/traces/{trace_id}", get_trace, methods=["GET"]),
        EncodedRoute("/v1/traces/{trace_id}", delete_trace, methods=["DELETE"]),
    ]
