"""Operations endpoints: /healthz (liveness), /readyz (can serve), /metrics (Prometheus)."""

from __future__ import annotations

from typing import Any, Literal, NotRequired

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from typing_extensions import TypedDict

from service.api.endpoint import Endpoint, Text, endpoint
from service.api.params import IgnoredParams
from service.api.state import context
from service.errors import MigrationError
from service.jobs.scheduled import jobs_readiness
from service.migrations import status


class Liveness(TypedDict):
    status: Literal["ok"]


class Readiness(TypedDict):
    """`ready` (200) or `not_ready` (503) with the reasons; `checks` shows each part."""

    status: Literal["ready", "not_ready"]
    checks: dict[str, Any]
    reasons: NotRequired[list[str]]


def healthz(request: Request, query: IgnoredParams) -> Response:
    """Liveness: the process answers. Touches nothing else, so a slow engine never fails it."""
    return JSONResponse({"status": "ok"})


def readyz(request: Request, query: IgnoredParams) -> Response:
    """Readiness: ClickHouse reachable, schema version matches, scheduler alive; else 503."""
    ctx = context(request)
    checks: dict[str, Any] = {}
    problems: list[str] = []
    if ctx.clickhouse.ping():
        checks["clickhouse"] = "ok"
        try:
            schema = status(ctx.clickhouse, ctx.migrations)
            problem = schema.problem()
        except MigrationError as exc:
            problem = str(exc)
            schema = None
        ctx.metrics.schema_up_to_date.set(0 if problem else 1)
        checks["schema"] = {
            "current": schema.current if schema else None,
            "wanted": schema.wanted if schema else None,
            "ok": problem is None,
        }
        if problem:
            problems.append(problem)
    else:
        checks["clickhouse"] = "unreachable"
        problems.append(f"ClickHouse at {ctx.clickhouse.target.display} is unreachable")
    if ctx.settings.scheduler_enabled:
        alive = ctx.scheduler is not None and ctx.scheduler.running
        checks["scheduler"] = "running" if alive else "stopped"
        if not alive:
            problems.append("scheduler is not running")
    else:
        checks["scheduler"] = "disabled"
    # Informational only: a failed backfill must not take the service out of rotation.
    checks["jobs"] = jobs_readiness(ctx.clickhouse, ctx.metrics)
    body: dict[str, Any] = {"status": "ready" if not problems else "not_ready", "checks": checks}
    if problems:
        body["reasons"] = problems
    return JSONResponse(body, status_code=200 if not problems else 503)


def metrics(request: Request, query: IgnoredParams) -> Response:
    """Prometheus text format for this app's registry."""
    registry = context(request).metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def routes() -> list[Endpoint]:
    def probe(path: str, handler: Any, responses: dict[int, Any]) -> Endpoint:
        return endpoint("GET", path, handler, query=IgnoredParams, responses=responses, auth=False)

    return [
        probe("/healthz", healthz, {200: Liveness}),
        probe("/readyz", readyz, {200: Readiness, 503: Readiness}),
        probe("/metrics", metrics, {200: Text("text/plain")}),
    ]
