"""The `jobs.run` scheduled job: start or resume persisted jobs, oldest first.

One job runs at a time per process (the scheduler never overlaps `jobs.run`), so a
backfill never competes with another backfill for the engine. Only shard 0 runs jobs:
chunks are idempotent, so an overlap would be harmless, but it would double the load.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from clickhouse_connect.driver.exceptions import ClickHouseError

from service.clickhouse import ClickHouse
from service.clock import Clock
from service.jobs.kinds import default_kinds
from service.jobs.model import Job, progress
from service.jobs.runner import JobKind, RunOptions, run_job
from service.jobs.store import runnable_jobs, status_counts
from service.metrics import Metrics
from service.rollups.ledger import LedgerWriter
from service.settings import Settings

if TYPE_CHECKING:
    from service.api.app import AppContext

log = logging.getLogger(__name__)


def run_pending_jobs(
    ch: ClickHouse,
    kinds: Mapping[str, JobKind],
    clock: Clock,
    settings: Settings,
    metrics: Metrics,
    should_stop: Callable[[], bool],
) -> list[Job]:
    """Run every runnable job to completion (or until `should_stop`); returns their end states."""
    if settings.shard_index != 0:
        return []
    finished: list[Job] = []
    options = RunOptions(
        pause_seconds=settings.backfill_pause_seconds,
        sleep=_interruptible_sleep(should_stop),
        should_stop=should_stop,
        on_progress=lambda job: record_job_progress(metrics, job),
    )
    for job in runnable_jobs(ch):
        if should_stop():
            break
        finished.append(run_job(ch, job, kinds, clock, options))
    refresh_job_counts(ch, metrics)
    return finished


def record_job_progress(metrics: Metrics, job: Job) -> None:
    """Per-kind gauges of the job that just made progress."""
    metrics.job_rows_processed.labels(job.kind).set(job.rows_processed)
    metrics.job_rows_total.labels(job.kind).set(job.rows_total)
    rate = progress(job).rate
    metrics.job_rate.labels(job.kind).set(
        rate if rate is not None and job.status == "running" else 0
    )


def refresh_job_counts(ch: ClickHouse, metrics: Metrics) -> dict[str, int]:
    """Set the jobs-by-status gauge from the jobs table; returns the counts."""
    counts = status_counts(ch)
    for status, count in counts.items():
        metrics.jobs.labels(status).set(count)
    return counts


def _interruptible_sleep(should_stop: Callable[[], bool]) -> Callable[[float], None]:
    """Sleep in short steps so a shutdown does not wait out a long pause."""

    def sleep(seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not should_stop() and time.monotonic() < deadline:
            time.sleep(min(0.05, max(deadline - time.monotonic(), 0)))

    return sleep


def run_scheduled(ctx: AppContext, ledger_writer: LedgerWriter | None = None) -> list[Job]:
    """The `jobs.run` scheduled job: stops between chunks when the app shuts down."""
    return run_pending_jobs(
        ctx.clickhouse,
        default_kinds(ledger_writer),
        ctx.clock,
        ctx.settings,
        ctx.metrics,
        ctx.stopping.is_set,
    )


def jobs_readiness(ch: ClickHouse, metrics: Metrics) -> dict[str, Any]:
    """The `/readyz` jobs entry: counts by status and the progress of active jobs.

    Never raises: readiness must not depend on the jobs table (it may not exist yet on a
    database that is being migrated).
    """
    try:
        counts = refresh_job_counts(ch, metrics)
        active = runnable_jobs(ch, limit=5) if counts["running"] or counts["paused"] else []
    except (ClickHouseError, OSError) as exc:
        return {"error": str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}
    detail: dict[str, Any] = {
        "running": counts["running"],
        "queued": counts["queued"],
        "paused": counts["paused"],
        "failed": counts["failed"],
    }
    detail["active"] = [
        {
            "id": job.id,
            "kind": job.kind,
            "status": job.status,
            "rows_processed": job.rows_processed,
            "rows_total": job.rows_total,
            "eta_seconds": progress(job).eta_seconds,
        }
        for job in active
        if job.status != "queued"
    ]
    return detail
