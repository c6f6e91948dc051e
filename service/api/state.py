"""How a route reaches the app's shared resources: one typed helper over the lifespan state."""

from __future__ import annotations

from typing import TypedDict, cast

from starlette.requests import Request

from service.auth import Principal
from service.context import AppContext


class State(TypedDict):
    """What the lifespan yields; Starlette copies it into every request's `state`."""

    ctx: AppContext


def context(request: Request) -> AppContext:
    """The app's context (settings, engine, metrics, clock, ...)."""
    return cast(AppContext, request.state.ctx)


def principal(request: Request) -> Principal:
    """The authenticated caller of this request (raises `Unauthorized`)."""
    return context(request).keyring.principal_for(request.headers.get("authorization"))


def caller_project(request: Request) -> str:
    """The project a read is scoped to: the key's, else `?project_id=` (admin or no auth)."""
    return principal(request).read_project(request.query_params.get("project_id"))
