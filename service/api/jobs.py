"""`GET /v1/jobs` and `GET /v1/jobs/{job_id}`: backfill progress.

A project key sees its project's jobs; an admin (or auth off) sees every job, including
the cross-project ones (rollup backfills), and may filter with `?project_id=`.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service.api.params import int_param, reject_unknown
from service.api.state import context, principal
from service.errors import InvalidParameter, NotFound
from service.jobs.model import STATUSES, Job, job_to_json
from service.jobs.store import get_job, list_jobs


def job_json(job: Job) -> dict[str, Any]:
    """A job as the API shows it, with rate and ETA derived from its progress."""
    return job_to_json(job)


def list_jobs_endpoint(request: Request) -> Response:
    """Backfill jobs, newest first: status, rows_processed/rows_total, rate, eta, error."""
    reject_unknown(request, {"status", "project_id", "limit"})
    caller = principal(request)
    statuses = [s for s in (request.query_params.get("status") or "").split(",") if s]
    for status in statuses:
        if status not in STATUSES:
            raise InvalidParameter("status", f"must be among {list(STATUSES)}")
    limit = int_param(request, "limit", 100, low=1, high=1000)
    project = (
        caller.project if caller.project is not None else request.query_params.get("project_id")
    )
    jobs = list_jobs(context(request).clickhouse, project, statuses, limit)
    return JSONResponse({"data": [job_json(j) for j in jobs]})


def get_job_endpoint(request: Request) -> Response:
    """One job; another project's job is a 404."""
    reject_unknown(request, set())
    caller = principal(request)
    job_id = request.path_params["job_id"]
    job = get_job(context(request).clickhouse, job_id)
    if job is None or (caller.project is not None and job.project_id != caller.project):
        raise NotFound(f"job_id: no job {job_id!r}")
    return JSONResponse({"job": job_json(job)})


def routes() -> list[Route]:
    return [
        Route("/v1/jobs", list_jobs_endpoint, methods=["GET"]),
        Route("/v1/jobs/{job_id}", get_job_endpoint, methods=["GET"]),
    ]
