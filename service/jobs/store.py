"""Jobs in ClickHouse: each save inserts the job's full state as a newer row version."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import orjson

from service.clickhouse import ClickHouse
from service.jobs.model import STATUSES, Job, JobStatus

_COLUMNS = (
    "id",
    "project_id",
    "kind",
    "params",
    "status",
    "rows_processed",
    "rows_total",
    "cursor",
    "snapshot_at",
    "created_at",
    "started_at",
    "run_started_at",
    "run_rows_start",
    "finished_at",
    "updated_at",
    "error",
)

# Project id of jobs that span every project (e.g. a rollup backfill); only admins see them.
ALL_PROJECTS = ""


def create_job(
    ch: ClickHouse, kind: str, project_id: str, params: dict[str, Any], now: datetime
) -> Job:
    """Persist a new queued job and return it."""
    job = Job(
        id=uuid.uuid4().hex,
        project_id=project_id,
        kind=kind,
        params=params,
        status="queued",
        rows_processed=0,
        rows_total=0,
        cursor={},
        snapshot_at=None,
        created_at=now,
        started_at=None,
        run_started_at=None,
        run_rows_start=0,
        finished_at=None,
        updated_at=now,
        error="",
    )
    _insert(ch, job)
    return job


def save_job(ch: ClickHouse, job: Job, now: datetime) -> Job:
    """Write `job` as its newest version; `updated_at` strictly increases so it always wins."""
    stamped = replace(job, updated_at=max(now, job.updated_at + timedelta(microseconds=1)))
    _insert(ch, stamped)
    return stamped


def _insert(ch: ClickHouse, job: Job) -> None:
    row = [
        job.id,
        job.project_id,
        job.kind,
        orjson.dumps(job.params).decode(),
        job.status,
        job.rows_processed,
        job.rows_total,
        orjson.dumps(job.cursor).decode(),
        job.snapshot_at,
        job.created_at,
        job.started_at,
        job.run_started_at,
        job.run_rows_start,
        job.finished_at,
        job.updated_at,
        job.error,
    ]
    ch.insert("jobs", _COLUMNS, [row], by_column=False)


def _job(row: dict[str, Any]) -> Job:
    status: JobStatus = row["status"] if row["status"] in STATUSES else "failed"
    return Job(
        id=row["id"],
        project_id=row["project_id"],
        kind=row["kind"],
        params=orjson.loads(row["params"]),
        status=status,
        rows_processed=int(row["rows_processed"]),
        rows_total=int(row["rows_total"]),
        cursor=orjson.loads(row["cursor"]) if row["cursor"] else {},
        snapshot_at=row["snapshot_at"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        run_started_at=row["run_started_at"],
        run_rows_start=int(row["run_rows_start"]),
        finished_at=row["finished_at"],
        updated_at=row["updated_at"],
        error=row["error"],
    )


def get_job(ch: ClickHouse, job_id: str) -> Job | None:
    """The newest state of one job, or None."""
    rows = ch.query_dicts("jobs/get", {"id": job_id})
    return _job(rows[0]) if rows else None


def list_jobs(
    ch: ClickHouse, project_id: str | None, statuses: list[str], limit: int = 100
) -> list[Job]:
    """Jobs newest first; `project_id` None lists every project's (admin)."""
    rows = ch.query_dicts(
        "jobs/list",
        {
            "project_id": "*" if project_id is None else project_id,
            "statuses": statuses,
            "limit": limit,
        },
    )
    return [_job(r) for r in rows]


def runnable_jobs(ch: ClickHouse, limit: int = 10) -> list[Job]:
    """Queued, interrupted or paused jobs, oldest first."""
    return [_job(r) for r in ch.query_dicts("jobs/runnable", {"limit": limit})]


def status_counts(ch: ClickHouse) -> dict[str, int]:
    """`{status: jobs}` for every status (zeros included)."""
    counts: dict[str, int] = dict.fromkeys(STATUSES, 0)
    for status, jobs in ch.query_rows("jobs/counts"):
        counts[str(status)] = int(jobs)
    return counts
