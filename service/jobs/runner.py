"""Runs a job in bounded chunks, persisting progress after each one.

The guarantees (each tested in tests/test_jobs.py):
- **Snapshot upper bound.** The first run records `snapshot_at`; every chunk only visits
  rows at or before it, so inserts that arrive during the backfill cannot keep it alive.
- **Termination.** A chunk must move the cursor forward or say it is finished; a chunk
  that does neither fails the job instead of looping on rows it cannot change.
- **Yielding.** The runner sleeps `pause_seconds` between chunks so readers get the engine.
- **Resume.** The cursor is persisted after every chunk; a process that dies mid-job
  leaves it `running`, and the next run continues from the cursor. Chunks are idempotent
  (they recompute and replace), so re-running the chunk that was in flight is harmless.
- **Failure.** An exception from the count/snapshot step or from a chunk marks the job
  `failed` with the error; it is never reported `done` with nothing processed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

from service.clickhouse import ClickHouse
from service.clock import Clock
from service.errors import JobFailed
from service.jobs.model import Job, RateWindow
from service.jobs.store import save_job

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Chunk:
    """What one chunk did: rows it covered, where the next one starts, whether that was all."""

    rows: int
    cursor: dict[str, Any]
    finished: bool


class JobKind(Protocol):
    """One kind of job: how to count its work at a snapshot and how to do one chunk."""

    @property
    def name(self) -> str:
        """The `kind` persisted with the job."""
        ...

    def plan(self, ch: ClickHouse, job: Job) -> int:
        """Rows the job will cover (for progress), given `job.snapshot_at` and params."""
        ...

    def run_chunk(self, ch: ClickHouse, job: Job, clock: Clock) -> Chunk:
        """Do the chunk after `job.cursor`; must advance the cursor unless finished."""
        ...


@dataclass(frozen=True)
class RunOptions:
    """How a run paces itself and when it stops early."""

    pause_seconds: float = 0.0
    sleep: Callable[[float], None] = time.sleep
    should_stop: Callable[[], bool] = lambda: False
    on_progress: Callable[[Job], None] | None = None


def run_job(
    ch: ClickHouse,
    job: Job,
    kinds: Mapping[str, JobKind],
    clock: Clock,
    options: RunOptions | None = None,
) -> Job:
    """Run (or resume) `job` until it is done, fails, or `should_stop` asks it to pause."""
    options = options or RunOptions()
    if job.finished:
        return job
    kind = kinds.get(job.kind)
    if kind is None:
        return _fail(ch, job, clock, f"unknown job kind {job.kind!r}")
    now = clock()
    if job.snapshot_at is None:
        job = replace(job, snapshot_at=now, started_at=now)
        try:
            total = kind.plan(ch, job)
        except Exception as exc:
            return _fail(ch, job, clock, _describe(exc))
        job = replace(job, rows_total=total)
    # The rate window opens after this run's first chunk (see `service.jobs.model`).
    job = replace(job, status="running", run_started_at=None, run_rows_start=job.rows_processed)
    job = save_job(ch, job, now)
    window = RateWindow()
    log.info(
        "job running",
        extra={"job_id": job.id, "kind": job.kind, "cursor": job.cursor, "total": job.rows_total},
    )
    _notify(options, job)
    while True:
        if options.should_stop():
            job = save_job(ch, replace(job, status="paused"), clock())
            log.info("job paused", extra={"job_id": job.id, "rows": job.rows_processed})
            _notify(options, job)
            return job
        try:
            chunk = kind.run_chunk(ch, job, clock)
            if not chunk.finished and chunk.cursor == job.cursor:
                raise JobFailed(f"chunk did not advance the cursor past {job.cursor}")
        except Exception as exc:
            return _fail(ch, job, clock, _describe(exc))
        job = replace(job, rows_processed=job.rows_processed + chunk.rows, cursor=chunk.cursor)
        opened_at, rows_then = window.add(clock(), job.rows_processed)
        job = replace(job, run_started_at=opened_at, run_rows_start=rows_then)
        if chunk.finished:
            if job.rows_processed == 0 and job.rows_total > 0:
                return _fail(
                    ch,
                    job,
                    clock,
                    f"source returned no rows although {job.rows_total} were counted",
                )
            now = clock()
            job = save_job(ch, replace(job, status="done", finished_at=now), now)
            log.info("job done", extra={"job_id": job.id, "rows": job.rows_processed})
            _notify(options, job)
            return job
        job = save_job(ch, job, clock())
        _notify(options, job)
        if options.pause_seconds > 0:
            options.sleep(options.pause_seconds)


def _fail(ch: ClickHouse, job: Job, clock: Clock, error: str) -> Job:
    now = clock()
    job = save_job(ch, replace(job, status="failed", error=error, finished_at=now), now)
    log.error("job failed", extra={"job_id": job.id, "kind": job.kind, "error": error})
    return job


def _notify(options: RunOptions, job: Job) -> None:
    if options.on_progress is not None:
        options.on_progress(job)


def _describe(exc: BaseException) -> str:
    """`Type: first line of the message`, capped, for the job's `error` field."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:1000]
