"""Operations endpoints: /healthz (liveness), /readyz (can serve), /metrics (Prometheus)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service.api.state import context
from service.errors import MigrationError
from service.jobs.scheduled import jobs_readiness
from service.migrations import status


def healthz(request: Request) -> Response:
    """Liveness: the process answers. Touches nothing else, so a slow engine never fails it."""
    return JSONResponse({"status": "ok"})


def readyz(request: Request) -> Response:
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


def metrics(request: Request) -> Response:
    """Prometheus text format for this app's registry."""
    registry = context(request).metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def routes() -> list[Route]:
    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
