"""`GET /v1/conclusions` (the conclusion feed) and `POST /v1/conclusions/redrive`."""

from __future__ import annotations

from typing import Literal

import anyio
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from typing_extensions import TypedDict

from service.api.body import read_body
from service.api.endpoint import Body, Endpoint, endpoint
from service.api.params import ProjectParams, QueryTime
from service.api.schemas import Time
from service.api.state import caller_project, context
from service.api.traces import TraceSummaryOut
from service.conclusions import store
from service.conclusions.delivery import redrive_dead
from service.conclusions.feed import decode_cursor, encode_cursor
from service.conclusions.models import Status
from service.errors import InvalidBody, first_validation_error

DEFAULT_PAGE = 100
MAX_PAGE = 1000
REDRIVE_MAX_BYTES = 64 * 1024


class FeedParams(ProjectParams):
    """The feed's filters and paging."""

    since: QueryTime | None = Field(
        None, description="Only conclusions concluded at or after this time."
    )
    status: Status | None = Field(None, description="Only conclusions in this delivery state.")
    limit: int = Field(DEFAULT_PAGE, ge=1, le=MAX_PAGE, description="Page size.")
    cursor: str | None = Field(
        None, description="`next_cursor` of the previous page: the page after it."
    )


class UnreadableSummaryOut(TypedDict):
    """A stored summary that is not a JSON object, as text (its first 2000 characters).

    Its delivery goes dead with the reason in `last_error` instead of being sent.
    """

    unreadable_summary: str


class ConclusionOut(TypedDict):
    """One revision of a concluded trace: the webhook payload plus its delivery state."""

    type: Literal["trace.concluded"]
    project_id: str
    trace_id: str
    revision: int
    concluded_at: Time
    last_activity_at: Time
    summary: TraceSummaryOut | UnreadableSummaryOut
    idempotency_key: str
    status: Status
    attempts: int
    next_attempt_at: Time | None
    last_error: str | None
    delivered_at: Time | None


class FeedPage(TypedDict):
    """A page of the feed, oldest first; `next_cursor` is null on the last page."""

    data: list[ConclusionOut]
    next_cursor: str | None


class RedriveRequest(BaseModel):
    """Optional body of `POST /v1/conclusions/redrive`: limit the redrive to one trace."""

    model_config = ConfigDict(extra="forbid")

    trace_id: str | None = Field(None, min_length=1, description="Only this trace's deliveries.")


class Redriven(TypedDict):
    """How many dead deliveries were queued again."""

    requeued: int


def list_conclusions(request: Request, query: FeedParams) -> Response:
    """The conclusion feed, oldest first: `since`, `status`, `limit`, `cursor` paging."""
    ctx = context(request)
    project = caller_project(request)
    after = decode_cursor(query.cursor) if query.cursor else None
    rows = store.feed_page(
        ctx.clickhouse,
        project_id=project,
        since=query.since,
        status=query.status,
        after=after,
        limit=query.limit + 1,
    )
    page = rows[: query.limit]
    body = {
        "data": [c.to_json() for c in page],
        "next_cursor": encode_cursor(page[-1]) if len(rows) > query.limit else None,
    }
    return JSONResponse(body)


async def redrive(request: Request, query: ProjectParams) -> Response:
    """Re-queue the caller's project's dead deliveries (optionally one trace's); says how many."""
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
    answer: Redriven = {"requeued": requeued}
    return JSONResponse(answer)


def routes() -> list[Endpoint]:
    return [
        endpoint(
            "GET",
            "/v1/conclusions",
            list_conclusions,
            query=FeedParams,
            responses={200: FeedPage},
        ),
        endpoint(
            "POST",
            "/v1/conclusions/redrive",
            redrive,
            query=ProjectParams,
            body=Body(RedriveRequest, required=False),
            responses={200: Redriven},
        ),
    ]
