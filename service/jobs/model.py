"""A job's state and the arithmetic on it (rate, ETA): plain data, no ClickHouse."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

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
    """Rate over the current run (so time spent stopped is not counted) and the ETA from it."""
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
