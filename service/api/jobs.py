"""`GET /v1/jobs` and `GET /v1/jobs/{job_id}`: backfill progress.

A project key sees its project's jobs; an admin (or auth off) sees every job, including
the cross-project ones (rollup backfills), and may filter with `?project_id=`.
"""

from __future__ import annotations

from typing import Any, cast

from pydantic import Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from typing_extensions import TypedDict

from service.api.endpoint import Endpoint, endpoint
from service.api.params import NoParams, ProjectParams
from service.api.schemas import Time
from service.api.state import context, principal
from service.errors import NotFound
from service.jobs.model import Job, JobStatus, job_to_json
from service.jobs.store import get_job, list_jobs


class JobsParams(ProjectParams):
    """Filters of the job list (`project_id`: an admin's filter; default every project)."""

    status: list[JobStatus] = Field(
        default_factory=list, description="Comma-separated statuses to list (default: all)."
    )
    limit: int = Field(100, ge=1, le=1000, description="Most jobs listed, newest first.")


class JobOut(TypedDict):
    """A job with its progress; `rate` (rows/s) and `eta_seconds` are null until known."""

    id: str
    kind: str
    project_id: str | None
    params: dict[str, Any]
    status: JobStatus
    rows_processed: int
    rows_total: int
    rate: float | None
    eta_seconds: float | None
    error: str | None
    created_at: Time | None
    started_at: Time | None
    updated_at: Time | None
    finished_at: Time | None


class JobList(TypedDict):
    data: list[JobOut]


class JobOne(TypedDict):
    job: JobOut


def job_json(job: Job) -> JobOut:
    """A job as the API shows it, with rate and ETA derived from its progress."""
    return cast(JobOut, job_to_json(job))


def list_jobs_endpoint(request: Request, query: JobsParams) -> Response:
    """Backfill jobs, newest first: status, rows_processed/rows_total, rate, eta, error."""
    caller = principal(request)
    project = caller.project if caller.project is not None else query.project_id
    jobs = list_jobs(context(request).clickhouse, project, [*query.status], query.limit)
    body: JobList = {"data": [job_json(j) for j in jobs]}
    return JSONResponse(body)


def get_job_endpoint(request: Request, query: NoParams) -> Response:
    """One job; another project's job is a 404."""
    caller = principal(request)
    job_id = request.path_params["job_id"]
    job = get_job(context(request).clickhouse, job_id)
    if job is None or (caller.project is not None and job.project_id != caller.project):
        raise NotFound(f"job_id: no job {job_id!r}")
    body: JobOne = {"job": job_json(job)}
    return JSONResponse(body)


def routes() -> list[Endpoint]:
    return [
        endpoint("GET", "/v1/jobs", list_jobs_endpoint, query=JobsParams, responses={200: JobList}),
        endpoint(
            "GET", "/v1/jobs/{job_id}", get_job_endpoint, query=NoParams, responses={200: JobOne}
        ),
    ]
