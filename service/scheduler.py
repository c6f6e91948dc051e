"""APScheduler wiring only: which job runs, how often. No logic lives here.

Jobs are plain synchronous functions run in worker threads (clickhouse-connect blocks), with
an explicit id, `max_instances=1` (a slow pass never overlaps itself) and `coalesce=True`
(missed runs collapse into one). APScheduler's job stores can't be shared between
processes, so `serve` runs one uvicorn worker; replicas split work by shard instead.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from service.conclusions.delivery import delivery_interval, run_delivery_pass
from service.conclusions.detector import run_detection_pass
from service.context import AppContext, PassLocks
from service.engine_roles import DELIVER, DETECT, JOBS, ROLLUPS
from service.jobs.kinds import default_kinds
from service.jobs.scheduled import run_pending_jobs
from service.rollups.job import run_scheduled_pass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScheduledJob:
    """One periodic job: a stable id, a function of no arguments, an interval."""

    id: str
    run: Callable[[], object]
    every_seconds: float


def build_scheduler(
    jobs: list[ScheduledJob], *, threads: int = 4, locks: PassLocks | None = None
) -> AsyncIOScheduler:
    """A scheduler with the given jobs; `start()` it inside the running event loop.

    With `locks`, a run whose pass is already running on request (admin API) is skipped.
    """
    scheduler = AsyncIOScheduler(
        executors={"default": ThreadPoolExecutor(max_workers=threads)},
        job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": 30},
        timezone="UTC",
    )
    for job in jobs:
        scheduler.add_job(
            _logged(job, None if locks is None else locks[job.id]),
            "interval",
            seconds=job.every_seconds,
            id=job.id,
            name=job.id,
            replace_existing=True,
        )
    return scheduler


def _logged(job: ScheduledJob, lock: threading.Lock | None = None) -> Callable[[], None]:
    def run() -> None:
        if lock is not None and not lock.acquire(blocking=False):
            log.debug("scheduled job skipped: running on request", extra={"job": job.id})
            return
        try:
            job.run()
        except Exception:
            log.exception("scheduled job failed", extra={"job": job.id})
        finally:
            if lock is not None:
                lock.release()

    return run


def default_jobs(ctx: AppContext) -> list[ScheduledJob]:
    """Every periodic job `serve` runs, each given only what it needs, intervals from settings.

    Each job runs on its own engine role, so a long pass never queues another job or an API
    read behind it (embedded chDB runs one statement at a time per connection).
    """
    settings = ctx.settings
    return [
        ScheduledJob(
            "conclusions.detect",
            partial(
                run_detection_pass,
                ctx.engine(DETECT),
                settings,
                clock=ctx.clock,
                stamp=ctx.stamp,
                metrics=ctx.metrics,
            ),
            settings.check_interval_seconds,
        ),
        ScheduledJob(
            "conclusions.deliver",
            partial(
                run_delivery_pass,
                ctx.engine(DELIVER),
                settings,
                ctx.sender,
                clock=ctx.clock,
                stamp=ctx.stamp,
                stopping=ctx.stopping,
                metrics=ctx.metrics,
            ),
            delivery_interval(settings),
        ),
        ScheduledJob(
            "rollups.recompute",
            partial(
                run_scheduled_pass,
                ctx.engine(ROLLUPS),
                ctx.clock,
                ctx.metrics,
                ctx.stopping,
                settings.shard_index,
                ctx.ledger,
            ),
            settings.rollup_interval_seconds,
        ),
        ScheduledJob(
            "jobs.run",
            partial(
                run_pending_jobs,
                ctx.engine(JOBS),
                default_kinds(ctx.ledger),
                ctx.clock,
                settings,
                ctx.metrics,
                ctx.stopping.is_set,
            ),
            settings.jobs_interval_seconds,
        ),
    ]
