"""APScheduler wiring only: which job runs, how often. No logic lives here.

Jobs are plain synchronous functions run in worker threads (clickhouse-connect blocks), with
an explicit id, `max_instances=1` (a slow pass never overlaps itself) and `coalesce=True`
(missed runs collapse into one). APScheduler's job stores can't be shared between
processes, so `serve` runs one uvicorn worker; replicas split work by shard instead.

A run that comes due while the job's previous run is still going is skipped, and so is one
whose pass is running on request (`POST /v1/admin/check`, `/v1/admin/rollup`; `PassLocks`).
APScheduler logs a WARNING for every skip of the first kind (one a second for a slow
delivery job); here both kinds are counted in `ta_scheduler_skipped_runs_total{job_id}` and
logged by `SkipLog`: the first skip, then at most one line a minute per job with the number
skipped since.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from apscheduler.events import EVENT_JOB_MAX_INSTANCES
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from service.conclusions.delivery import delivery_interval, run_delivery_pass
from service.conclusions.detector import run_detection_pass
from service.context import AppContext, PassLocks
from service.engine_roles import DELIVER, DETECT, JOBS, ROLLUPS
from service.jobs.kinds import default_kinds
from service.jobs.scheduled import run_pending_jobs
from service.metrics import Metrics
from service.rollups.job import run_scheduled_pass

log = logging.getLogger(__name__)

SKIP_LOG_INTERVAL_SECONDS = 60.0
# Why a scheduled run was skipped (both mean the same pass was already running).
STILL_RUNNING = "its previous run is still going"
ON_REQUEST = "the same pass is running on request (admin API)"


class _DropSkipWarnings(logging.Filter):
    """Drops APScheduler's own line per skipped run (`SkipLog` reports skips instead)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances reached" not in str(record.msg)


# The logger our schedulers hand to APScheduler (its `logger` option), a child of its own
# so `configure_logging`'s level for "apscheduler" still applies: every record but the
# skip lines reaches the usual handlers unchanged.
_engine_log = logging.getLogger("apscheduler.scheduler.trace_analytics")
_engine_log.addFilter(_DropSkipWarnings())


class SkipLog:
    """Counts skipped runs per job and logs them rarely: the first, then once a minute."""

    def __init__(
        self,
        metrics: Metrics | None,
        *,
        interval: float = SKIP_LOG_INTERVAL_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.metrics = metrics
        self.interval = interval
        self.monotonic = monotonic
        self._last_logged: dict[str, float] = {}
        self._unlogged: dict[str, int] = {}
        self._lock = threading.Lock()

    def skipped(self, job_id: str, reason: str = STILL_RUNNING) -> None:
        """Count one skipped run of `job_id`; log it if this job's last line is old enough."""
        if self.metrics is not None:
            self.metrics.scheduler_skipped_runs.labels(job_id).inc()
        now = self.monotonic()
        with self._lock:
            count = self._unlogged.get(job_id, 0) + 1
            last = self._last_logged.get(job_id)
            if last is not None and now - last < self.interval:
                self._unlogged[job_id] = count
                return
            self._last_logged[job_id] = now
            self._unlogged[job_id] = 0
        log.warning(
            "scheduled run skipped: %s",
            reason,
            extra={"job": job_id, "skipped": count, "log_interval_seconds": self.interval},
        )

    def on_event(self, event: Any) -> None:
        """APScheduler listener for EVENT_JOB_MAX_INSTANCES."""
        self.skipped(str(event.job_id))


@dataclass(frozen=True)
class ScheduledJob:
    """One periodic job: a stable id, a function of no arguments, an interval."""

    id: str
    run: Callable[[], object]
    every_seconds: float


def build_scheduler(
    jobs: list[ScheduledJob],
    *,
    threads: int = 4,
    locks: PassLocks | None = None,
    metrics: Metrics | None = None,
    skip_log: SkipLog | None = None,
) -> AsyncIOScheduler:
    """A scheduler with the given jobs; `start()` it inside the running event loop.

    With `locks`, a run whose pass is already running on request (admin API) is skipped.
    Every skip, for either reason, goes to `skip_log` (by default one counting into
    `metrics`).
    """
    skips = skip_log or SkipLog(metrics)
    scheduler = AsyncIOScheduler(
        executors={"default": ThreadPoolExecutor(max_workers=threads)},
        job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": 30},
        timezone="UTC",
        logger=_engine_log,
    )
    scheduler.add_listener(skips.on_event, EVENT_JOB_MAX_INSTANCES)
    for job in jobs:
        scheduler.add_job(
            _logged(job, skips, None if locks is None else locks[job.id]),
            "interval",
            seconds=job.every_seconds,
            id=job.id,
            name=job.id,
            replace_existing=True,
        )
    return scheduler


def _logged(
    job: ScheduledJob, skips: SkipLog, lock: threading.Lock | None = None
) -> Callable[[], None]:
    def run() -> None:
        if lock is not None and not lock.acquire(blocking=False):
            skips.skipped(job.id, ON_REQUEST)
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
                health=ctx.pipeline.detect,
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
                health=ctx.pipeline.deliver,
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
