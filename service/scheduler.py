"""APScheduler wiring only: which job runs, how often. No logic lives here.

Jobs are plain synchronous functions run in worker threads (clickhouse-connect blocks), with
an explicit id, `max_instances=1` (a slow pass never overlaps itself) and `coalesce=True`
(missed runs collapse into one). APScheduler's job stores can't be shared between
processes, so `serve` runs one uvicorn worker; replicas split work by shard instead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from service.conclusions import jobs as conclusions
from service.jobs import scheduled as backfill_jobs
from service.rollups import job as rollups
from service.rollups.ledger import LedgerWriter

if TYPE_CHECKING:
    from service.api.app import AppContext

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScheduledJob:
    """One periodic job: a stable id, a function of no arguments, an interval."""

    id: str
    run: Callable[[], object]
    every_seconds: float


def build_scheduler(jobs: list[ScheduledJob], *, threads: int = 4) -> AsyncIOScheduler:
    """A scheduler with the given jobs; `start()` it inside the running event loop."""
    scheduler = AsyncIOScheduler(
        executors={"default": ThreadPoolExecutor(max_workers=threads)},
        job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": 30},
        timezone="UTC",
    )
    for job in jobs:
        scheduler.add_job(
            _logged(job),
            "interval",
            seconds=job.every_seconds,
            id=job.id,
            name=job.id,
            replace_existing=True,
        )
    return scheduler


def _logged(job: ScheduledJob) -> Callable[[], None]:
    def run() -> None:
        try:
            job.run()
        except Exception:
            log.exception("scheduled job failed", extra={"job": job.id})

    return run


def default_jobs(ctx: AppContext) -> list[ScheduledJob]:
    """Every periodic job `serve` runs, with its interval from settings."""
    # Rollup passes and rollup backfills both write the ledger: one writer, held in turn.
    ledger_writer = LedgerWriter()
    jobs: list[ScheduledJob] = []
    jobs.append(
        ScheduledJob(
            "conclusions.detect",
            lambda: conclusions.detect(ctx),
            ctx.settings.check_interval_seconds,
        )
    )
    jobs.append(
        ScheduledJob(
            "conclusions.deliver",
            lambda: conclusions.deliver(ctx),
            conclusions.delivery_interval(ctx),
        )
    )
    jobs.append(
        ScheduledJob(
            "rollups.recompute",
            lambda: rollups.run_scheduled_pass(ctx, ledger_writer),
            ctx.settings.rollup_interval_seconds,
        )
    )
    jobs.append(
        ScheduledJob(
            "jobs.run",
            lambda: backfill_jobs.run_scheduled(ctx, ledger_writer),
            ctx.settings.jobs_interval_seconds,
        )
    )
    return jobs
