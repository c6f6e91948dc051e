"""Operations endpoints: /healthz (liveness), /readyz (can serve), /metrics (Prometheus)."""

from __future__ import annotations

from typing import Any, Literal, NotRequired

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from typing_extensions import TypedDict

from service.api.endpoint import Endpoint, Text, endpoint
from service.api.params import IgnoredParams
from service.api.schemas import Time
from service.api.state import context
from service.conclusions.health import PassSnapshot
from service.errors import MigrationError
from service.jobs.scheduled import jobs_readiness
from service.migrations import status
from service.times import format_time


class Liveness(TypedDict):
    status: Literal["ok"]


class SchemaCheck(TypedDict):
    """The applied schema against the one this build wants."""

    current: str | None
    wanted: str | None
    ok: bool


class PassCheck(TypedDict):
    """How the conclusion passes of one kind have been doing in this process.

    `failing` after FAILING_AFTER passes in a row raised (`last_error` says why);
    `not_configured` for delivery without TA_ANALYZE_URL. `attempts_failing_since`: every
    delivery attempt since then failed (a receiver outage, not a pipeline failure).
    """

    status: Literal["ok", "failing", "not_configured"]
    consecutive_failed_passes: int
    last_success_at: Time | None
    last_error: NotRequired[str]
    last_failure_at: NotRequired[Time]
    attempts_failing_since: NotRequired[Time]


class ReadinessChecks(TypedDict):
    """Each part of readiness; `schema` only when ClickHouse answered."""

    clickhouse: Literal["ok", "unreachable"]
    schema: NotRequired[SchemaCheck]
    scheduler: Literal["running", "stopped", "disabled"]
    jobs: dict[str, Any]
    detection: PassCheck
    delivery: PassCheck


class Readiness(TypedDict):
    """`ready` or `degraded` (200), or `not_ready` (503) with the reasons.

    `degraded`: the API serves, but conclusion detection or delivery fails every pass
    (`warnings` says which and why).
    """

    status: Literal["ready", "degraded", "not_ready"]
    checks: ReadinessChecks
    reasons: NotRequired[list[str]]
    warnings: NotRequired[list[str]]


def healthz(request: Request, query: IgnoredParams) -> Response:
    """Liveness: the process answers. Touches nothing else, so a slow engine never fails it."""
    return JSONResponse({"status": "ok"})


def readyz(request: Request, query: IgnoredParams) -> Response:
    """Readiness: ClickHouse, schema, scheduler (else 503); `degraded` while conclusion passes fail.

    Not ready (503) when ClickHouse is unreachable, the schema differs from this build's, or
    the scheduler is not running.

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
    problems: list[str] = []
    schema_check: SchemaCheck | None = None
    reachable = ctx.clickhouse.ping()
    if reachable:
        try:
            schema = status(ctx.clickhouse, ctx.migrations)
            problem = schema.problem()
        except MigrationError as exc:
            problem = str(exc)
            schema = None
        ctx.metrics.schema_up_to_date.set(0 if problem else 1)
        schema_check = {
            "current": schema.current if schema else None,
            "wanted": schema.wanted if schema else None,
            "ok": problem is None,
        }
        if problem:
            problems.append(problem)
    else:
        problems.append(f"ClickHouse at {ctx.clickhouse.target.display} is unreachable")
    scheduler: Literal["running", "stopped", "disabled"] = "disabled"
    if ctx.settings.scheduler_enabled:
        alive = ctx.scheduler is not None and ctx.scheduler.running
        scheduler = "running" if alive else "stopped"
        if not alive:
            problems.append("scheduler is not running")
    detection = ctx.pipeline.detect.snapshot()
    delivery = ctx.pipeline.deliver.snapshot()
    warnings = [
        f"conclusion {label} has failed {health.consecutive_failures} passes in a row: "
        f"{health.last_error}"
        for label, health in (("detection", detection), ("delivery", delivery))
        if health.failing
    ]
    checks: ReadinessChecks = {
        "clickhouse": "ok" if reachable else "unreachable",
        "scheduler": scheduler,
        # Informational only: a failed backfill must not take the service out of rotation.
        "jobs": jobs_readiness(ctx.clickhouse, ctx.metrics),
        "detection": pass_check(detection),
        "delivery": pass_check(delivery, configured=ctx.settings.analyze_url is not None),
    }
    if schema_check is not None:
        checks["schema"] = schema_check
    body: Readiness = {
        "status": "not_ready" if problems else "degraded" if warnings else "ready",
        "checks": checks,
    }
    if problems:
        body["reasons"] = problems
    if warnings:
        body["warnings"] = warnings
    return JSONResponse(body, status_code=200 if not problems else 503)


def pass_check(health: PassSnapshot, *, configured: bool = True) -> PassCheck:
    """The /readyz view of one kind of pass (`configured` False: delivery without a URL)."""
    state: Literal["ok", "failing", "not_configured"] = "failing" if health.failing else "ok"
    if not configured and not health.failing:
        state = "not_configured"
    out: PassCheck = {
        "status": state,
        "consecutive_failed_passes": health.consecutive_failures,
        "last_success_at": format_time(health.last_success_at),
    }
    if health.consecutive_failures:
        out["last_error"] = health.last_error
        if health.last_failure_at is not None:
            out["last_failure_at"] = format_time(health.last_failure_at)
    if health.attempts_failing_since is not None:
        out["attempts_failing_since"] = format_time(health.attempts_failing_since)
    return out


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
