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
    """Readiness: ClickHouse reachable, schema version matches, scheduler alive; else 503.

    The conclusion passes are reported too (`checks.detection`, `checks.delivery`). One that
    fails every pass makes the answer `"status": "degraded"` with a warning, but stays 200.
    Readiness decides whether this pod gets API traffic, and ingest and reads work fine
    while delivery is broken. Such a failure is almost always shared by every replica (the
    schema, ClickHouse, the code), so a 503 would take the whole API out of rotation and
    turn a delivery incident into lost ingest. The failure is made loud instead by
    `ta_conclusion_consecutive_pass_failures` and its critical alert. An unreachable
    receiver is not a pipeline failure: passes succeed and retries wait in the outbox
    (`attempts_failing_since`, `ta_deliveries_pending`).
    """
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
    warnings = []
    for label, health in (("detection", ctx.pipeline.detect), ("delivery", ctx.pipeline.deliver)):
        checks[label] = health.report()
        if health.failing:
            warnings.append(
                f"conclusion {label} has failed {health.consecutive_failures} passes in a row: "
                f"{health.last_error}"
            )
    if ctx.settings.analyze_url is None and not ctx.pipeline.deliver.failing:
        checks["delivery"]["status"] = "not_configured"
    overall = "not_ready" if problems else "degraded" if warnings else "ready"
    body: dict[str, Any] = {"status": overall, "checks": checks}
    if problems:
        body["reasons"] = problems
    if warnings:
        body["warnings"] = warnings
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
