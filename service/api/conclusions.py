"""`GET /v1/conclusions` (the conclusion feed) and `POST /v1/conclusions/redrive`."""

from __future__ import annotations

from typing import Any

import anyio
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service.api.body import read_body
from service.api.params import int_param, reject_unknown, time_param
from service.api.state import caller_project, context
from service.conclusions import store
from service.conclusions.delivery import redrive_dead
from service.conclusions.feed import decode_cursor, encode_cursor
from service.conclusions.models import Status
from service.errors import InvalidBody, InvalidParameter, first_validation_error

FEED_PARAMETERS = {"since", "status", "limit", "cursor", "project_id"}
DEFAULT_PAGE = 100
MAX_PAGE = 1000
REDRIVE_MAX_BYTES = 64 * 1024


class RedriveRequest(BaseModel):
    """Optional body of `POST /v1/conclusions/redrive`: limit the redrive to one trace."""

    model_config = ConfigDict(extra="forbid")

    trace_id: str | None = Field(None, min_length=1, description="Only this trace's deliveries.")


def list_conclusions(request: Request) -> Response:
    """The conclusion feed, oldest first: `since`, `status`, `limit`, `cursor` paging."""
    reject_unknown(request, FEED_PARAMETERS)
    ctx = context(request)
    project = caller_project(request)
    since = time_param(request, "since")
    limit = int_param(request, "limit", DEFAULT_PAGE, low=1, high=MAX_PAGE)
    status = _parse_status(request.query_params.get("status"))
    token = request.query_params.get("cursor")
    after = decode_cursor(token) if token else None
    rows = store.feed_page(
        ctx.clickhouse,
        project_id=project,
        since=since,
        status=status,
        after=after,
        limit=limit + 1,
    )
    page = rows[:limit]
    body: dict[str, Any] = {
        "data": [c.to_json() for c in page],
        "next_cursor": encode_cursor(page[-1]) if len(rows) > limit else None,
    }
    return JSONResponse(body)


async def redrive(request: Request) -> Response:
    """Re-queue the caller's project's dead deliveries (optionally one trace's); says how many."""
    reject_unknown(request, {"project_id"})
    ctx = context(request)
    project = caller_project(request)
    raw = await read_body(request, REDRIVE_MAX_BYTES, empty=None)
    try:
        body = RedriveRequest.model_validate_json(raw) if raw.strip() else RedriveRequest()
    except ValidationError as exc:
        raise InvalidBody(*first_validation_error(exc)) from None

    requeued = await anyio.to_thread.run_sync(
        lambda: redrive_dead(
            ctx.clickhouse, project, body.trace_id, clock=ctx.clock, stamp=ctx.stamp
        )
    )
    return JSONResponse({"requeued": requeued})


def _parse_status(raw: str | None) -> Status | None:
    if raw is None or raw == "":
        return None
    try:
        return Status(raw)
    except ValueError:
        allowed = ", ".join(s.value for s in Status)
        raise InvalidParameter("status", f"{raw!r} is not one of {allowed}") from None


def routes() -> list[Route]:
    return [
        Route("/v1/conclusions", list_conclusions, methods=["GET"]),
        Route("/v1/conclusions/redrive", redrive, methods=["POST"]),
    ]
