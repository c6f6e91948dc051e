"""A job's state and the arithmetic on it (rate, ETA): plain data, no ClickHouse.

Rate and ETA come from a *window* of the current run, stored on the job as
`run_started_at`/`run_rows_start` (a point in time and the rows processed by then). The
runner opens the window only after a run's first chunk, so the count query and a first
chunk that indexes the whole range do not count as throughput, and then slides it to keep
roughly the last `RATE_WINDOW_SECONDS` (see `service.jobs.runner`). Until the window
holds a finished chunk there is no rate and no ETA, rather than a wild guess.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from service.times import format_time

# How much recent history the rate (and so the ETA) averages over.
RATE_WINDOW_SECONDS = 30.0

JobStatus = Literal["queued", "running", "paused", "done", "failed"]
STATUSES: tuple[JobStatus, ...] = ("queued", "running", "paused", "done", "failed")
# Jobs the scheduler (re)starts: `running` here means a process died while running it.
RESUMABLE: tuple[JobStatus, ...] = ("queued", "running", "paused")


@dataclass(frozen=True)
class Job:
    """One persisted job; every change is written as a new version of its row."""

    id: str
    project_id: str
    kind: str
    params: dict[str, Any]
    status: JobStatus
    rows_processed: int
    rows_total: int
    cursor: dict[str, Any]
    snapshot_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    run_started_at: datetime | None
    run_rows_start: int
    finished_at: datetime | None
    updated_at: datetime
    error: str

    @property
    def finished(self) -> bool:
        return self.status in ("done", "failed")


@dataclass(frozen=True)
class Progress:
    """Rows per second of the current run and the seconds it still needs (None if unknown)."""

    rate: float | None
    eta_seconds: float | None


def progress(job: Job) -> Progress:
    """Rate over the job's window of the current run, and the ETA from it."""
    if job.run_started_at is None:
        return Progress(None, None)
    elapsed = (job.updated_at - job.run_started_at).total_seconds()
    done_this_run = job.rows_processed - job.run_rows_start
    rate = done_this_run / elapsed if elapsed > 0 and done_this_run > 0 else None
    if job.status == "done":
        return Progress(rate, 0.0)
    if job.status != "running" or rate is None:
        return Progress(rate, None)
    remaining = max(job.rows_total - job.rows_processed, 0)
    return Progress(rate, remaining / rate)


@dataclass
class RateWindow:
    """(time, rows) samples of one run, after its first chunk; `add` says where the window starts.

    The start is the newest sample at least `seconds` old (or the oldest one kept), so the
    rate averages over roughly the last `seconds` and always over whole chunks.
    """

    seconds: float = RATE_WINDOW_SECONDS
    samples: deque[tuple[datetime, int]] = field(default_factory=deque)

    def add(self, at: datetime, rows: int) -> tuple[datetime, int]:
        self.samples.append((at, rows))
        cutoff = at - timedelta(seconds=self.seconds)
        while len(self.samples) > 1 and self.samples[1][0] <= cutoff:
            self.samples.popleft()
        return self.samples[0]


def job_to_json(job: Job) -> dict[str, Any]:
    """A job as the API shows it (and the CLI prints it), with rate and ETA."""
    derived = progress(job)
    return {
        "id": job.id,
        "kind": job.kind,
        "project_id": job.project_id or None,
        "params": job.params,
        "status": job.status,
        "rows_processed": job.rows_processed,
        "rows_total": job.rows_total,
        "rate": None if derived.rate is None else round(derived.rate, 3),
        "eta_seconds": None if derived.eta_seconds is None else round(derived.eta_seconds, 1),
        "error": job.error or None,
        "created_at": format_time(job.created_at),
        "started_at": format_time(job.started_at),
        "updated_at": format_time(job.updated_at),
        "finished_at": format_time(job.finished_at),
    }
