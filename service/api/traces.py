"""`GET /v1/traces/{trace_id}` (raw-derived summary) and `DELETE /v1/traces/{trace_id}`."""

from __future__ import annotations

from typing import Literal

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from typing_extensions import TypedDict

from service.api.endpoint import Endpoint, endpoint
from service.api.params import ProjectParams
from service.api.schemas import Time
from service.api.state import caller_project, context
from service.conclusions.store import trace_state
from service.durations.materialize import forget_trace
from service.errors import NotFound
from service.times import format_time
from service.traces.store import soft_delete_trace
from service.traces.summary import fetch_summaries


class TraceSummaryOut(TypedDict):
    """Counts, tokens, cost and timing over the trace's live observations."""

    name: str
    environment: str
    user_id: str
    session_id: str
    start_time: Time | None
    end_time: Time | None
    duration_ms: float | None
    observations: int
    orphans: int
    skewed: int
    errors: int
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cost: float
    models: list[str]


class TraceOut(TypedDict):
    """A trace: its summary, and whether it is open or concluded (latest revision)."""

    project_id: str
    trace_id: str
    timestamp: Time | None
    summary: TraceSummaryOut
    status: Literal["open", "concluded"]
    revision: int | None


class TraceKeyOut(TypedDict):
    project_id: str
    trace_id: str


class TraceDeleted(TypedDict):
    deleted: TraceKeyOut


def get_trace(request: Request, query: ProjectParams) -> Response:
    """The trace's summary from its live raw rows, and its status (open/concluded, revision)."""
    ctx = context(request)
    project = caller_project(request)
    trace_id = request.path_params["trace_id"]
    summary = fetch_summaries(ctx.clickhouse, [(project, trace_id)]).get((project, trace_id))
    if summary is None:
        raise NotFound(f"trace_id: no trace {trace_id!r}")
    state = trace_state(ctx.clickhouse, project, trace_id)
    body = {
        "project_id": project,
        "trace_id": trace_id,
        "timestamp": format_time(summary.timestamp),
        "summary": summary.to_json(),
        "status": state.status,
        "revision": state.revision or None,
    }
    return JSONResponse(body)


def delete_trace(request: Request, query: ProjectParams) -> Response:
    """Soft-delete the trace and its observations; rollups follow on their next pass."""
    ctx = context(request)
    project = caller_project(request)
    trace_id = request.path_params["trace_id"]
    if not soft_delete_trace(ctx.clickhouse, project, trace_id, ctx.stamp):
        raise NotFound(f"trace_id: no trace {trace_id!r}")
    forget_trace(ctx.clickhouse, project, trace_id, ctx.stamp.next())
    body: TraceDeleted = {"deleted": {"project_id": project, "trace_id": trace_id}}
    return JSONResponse(body)


def routes() -> list[Endpoint]:
    return [
        endpoint(
            "GET",
            "/v1/traces/{trace_id}",
            get_trace,
            query=ProjectParams,
            responses={200: TraceOut},
        ),
        endpoint(
            "DELETE",
            "/v1/traces/{trace_id}",
            delete_trace,
            query=ProjectParams,
            responses={200: TraceDeleted},
        ),
    ]
