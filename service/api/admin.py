"""Admin endpoints: the operations the CLI runs, done by a running `serve` (admin key only).

With the embedded engine only one process can open the data directory, so while `serve`
runs, `trace-analytics check`, `rollup`, `migrate --status`, `backfill ...` and `demo`
send their work here (see `service.remote`). The answers carry the same reports the CLI
prints when it runs the work itself (`service.operations`).

- `GET /v1/admin/schema`: the served database's applied migrations and this process.
- `POST /v1/admin/check`: one detection pass and one delivery pass, now.
- `POST /v1/admin/rollup`: one rollup pass, now.
- `POST /v1/jobs`: queue a backfill (the scheduler's `jobs.run` starts it at once).
- `POST /v1/jobs/{job_id}/resume`: run a paused or interrupted job as soon as possible.

A project key gets 403 `admin_only`; without TA_API_KEYS (loopback only) every caller is
an admin, as for every other endpoint.
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from typing_extensions import TypedDict

import service
from service.api.body import read_body
from service.api.endpoint import Body, Endpoint, endpoint
from service.api.jobs import JobOne, job_json
from service.api.params import NoParams
from service.api.state import context, principal
from service.context import AppContext
from service.errors import AdminOnly, Conflict, InvalidBody, NotFound
from service.jobs.requests import BackfillRequest, create_backfill, parse_backfill_request
from service.jobs.store import get_job
from service.migrations import applied_migrations, compare
from service.operations import run_check, run_rollup

log = logging.getLogger(__name__)

_MAX_BODY = 16 * 1024
JOBS_PASS = "jobs.run"


def require_admin(request: Request) -> AppContext:
    """The context, once the caller is known to hold an admin key (403 `admin_only` if not)."""
    if not principal(request).is_admin:
        raise AdminOnly("this endpoint needs an admin key (key=* in TA_API_KEYS)")
    return context(request)


def jobs_run_here(ctx: AppContext) -> tuple[bool, str | None]:
    """Whether this process runs queued jobs, and why not."""
    if not ctx.settings.scheduler_enabled:
        return False, "TA_SCHEDULER_ENABLED=false"
    if ctx.settings.shard_index != 0:
        return False, f"jobs run on shard 0 only (this is shard {ctx.settings.shard_index})"
    return True, None


class AppliedMigration(TypedDict):
    name: str
    checksum: str


class JobsHere(TypedDict):
    run_here: bool
    reason: str | None


class SchemaOut(TypedDict):
    """The served database, this process, and the schema compared with this build."""

    database: str
    pid: int
    version: str
    applied: list[AppliedMigration]
    current: str | None
    wanted: str | None
    pending: list[str]
    changed: list[str]
    unknown: list[str]
    jobs: JobsHere


class DeliveryCountsOut(TypedDict):
    delivered: int
    retrying: int
    dead: int
    pending: int
    dead_total: int
    errors: list[str]


class CheckOut(TypedDict):
    """One detection pass and one delivery pass (`delivery` null without TA_ANALYZE_URL)."""

    concluded: int
    delivery: DeliveryCountsOut | None


class RollupOut(TypedDict):
    """One rollup pass: the line the CLI prints and the buckets still dirty."""

    description: str
    pending_buckets: int
    dirty_traces: int
    chunks: int
    seconds: float


async def get_schema(request: Request, query: NoParams) -> Response:
    """Applied migrations of the served database, and who serves it (admin)."""
    ctx = require_admin(request)
    applied = await anyio.to_thread.run_sync(applied_migrations, ctx.clickhouse)
    status = compare(applied, ctx.migrations)
    runs_jobs, reason = jobs_run_here(ctx)
    body: dict[str, Any] = {
        "database": ctx.clickhouse.target.display,
        "pid": os.getpid(),
        "version": service.__version__,
        "applied": [{"name": name, "checksum": applied[name]} for name in sorted(applied)],
        "current": status.current,
        "wanted": status.wanted,
        "pending": status.pending,
        "changed": status.changed,
        "unknown": status.unknown,
        "jobs": {"run_here": runs_jobs, "reason": reason},
    }
    return JSONResponse(body)


def post_check(request: Request, query: NoParams) -> Response:
    """Run one conclusion pass (detect, then deliver) now and report it (admin)."""
    ctx = require_admin(request)
    locks = ctx.pass_locks
    with locks["conclusions.detect"], locks["conclusions.deliver"]:
        report = run_check(
            ctx.clickhouse,
            ctx.settings,
            ctx.sender,
            clock=ctx.clock,
            stamp=ctx.stamp,
            stopping=ctx.stopping,
            metrics=ctx.metrics,
            health=ctx.pipeline,
        )
    return JSONResponse(report.to_json())


def post_rollup(request: Request, query: NoParams) -> Response:
    """Run one rollup pass now and report what it did (admin)."""
    ctx = require_admin(request)
    with ctx.pass_locks["rollups.recompute"]:
        report = run_rollup(ctx.clickhouse, ctx.clock, ctx.ledger)
    return JSONResponse(report.to_json())


async def create_job_endpoint(request: Request, query: NoParams) -> Response:
    """Queue a backfill job (durations or rollups); this serve runs it (admin, 201)."""
    ctx = require_admin(request)
    raw = await read_body(request, _MAX_BODY, empty=InvalidBody("body", "expected a JSON object"))
    backfill = parse_backfill_request(raw)
    job = await anyio.to_thread.run_sync(
        lambda: create_backfill(ctx.clickhouse, backfill, ctx.settings, ctx.stamp.next())
    )
    log.info("backfill queued", extra={"job_id": job.id, "kind": job.kind})
    _start_jobs_now(ctx)
    return JSONResponse({"job": job_json(job)}, status_code=201)


def resume_job_endpoint(request: Request, query: NoParams) -> Response:
    """Run a paused or interrupted job as soon as possible (admin, 202)."""
    ctx = require_admin(request)
    job_id = request.path_params["job_id"]
    job = get_job(ctx.clickhouse, job_id)
    if job is None:
        raise NotFound(f"job_id: no job {job_id!r}")
    if job.finished:
        raise Conflict(f"job_id: job {job_id!r} is {job.status}; there is nothing to resume")
    _start_jobs_now(ctx)
    return JSONResponse({"job": job_json(job)}, status_code=202)


def _start_jobs_now(ctx: AppContext) -> None:
    """Bring the scheduler's next `jobs.run` forward instead of waiting for its interval."""
    scheduler = ctx.scheduler
    if scheduler is None or not scheduler.running or scheduler.get_job(JOBS_PASS) is None:
        return
    scheduler.modify_job(JOBS_PASS, next_run_time=datetime.now(UTC))


def routes() -> list[Endpoint]:
    admin_only = (403,)
    return [
        endpoint(
            "GET",
            "/v1/admin/schema",
            get_schema,
            query=NoParams,
            responses={200: SchemaOut},
            errors=admin_only,
        ),
        endpoint(
            "POST",
            "/v1/admin/check",
            post_check,
            query=NoParams,
            responses={200: CheckOut},
            errors=admin_only,
        ),
        endpoint(
            "POST",
            "/v1/admin/rollup",
            post_rollup,
            query=NoParams,
            responses={200: RollupOut},
            errors=admin_only,
        ),
        endpoint(
            "POST",
            "/v1/jobs",
            create_job_endpoint,
            query=NoParams,
            body=Body(BackfillRequest),
            responses={201: JobOne},
            errors=admin_only,
        ),
        endpoint(
            "POST",
            "/v1/jobs/{job_id}/resume",
            resume_job_endpoint,
            query=NoParams,
            responses={202: JobOne},
            errors=(*admin_only, 409),
        ),
    ]
