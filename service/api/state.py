"""How a route reaches the app's shared resources: one typed helper over the lifespan state."""

from __future__ import annotations

from typing import TypedDict, cast

from starlette.requests import Request

from service.auth import Principal
from service.context import AppContext

_PRINCIPAL = "principal"


class State(TypedDict):
    """What the lifespan yields; Starlette copies it into every request's `state`."""

    ctx: AppContext


def context(request: Request) -> AppContext:
    """The app's context (settings, engine, metrics, clock, ...)."""
    return cast(AppContext, request.state.ctx)


def authenticate(request: Request) -> Principal:
    """Check the request's key (raises `Unauthorized`) and remember the caller for it.

    `service.api.endpoint` calls this before anything else of a /v1 request is looked at.
    """
    caller = context(request).keyring.principal_for(request.headers.get("authorization"))
    request.scope.setdefault("state", {})[_PRINCIPAL] = caller
    return caller


def principal(request: Request) -> Principal:
    """The authenticated caller of this request (raises `Unauthorized`)."""
    caller = request.scope.get("state", {}).get(_PRINCIPAL)
    return caller if isinstance(caller, Principal) else authenticate(request)


def caller_project(request: Request) -> str:
    """The project a request is scoped to: the key's, else `?project_id=` (admin or no auth).

    A project key naming another project is a 403 (`ForbiddenProject`).
    """
    return principal(request).read_project(request.query_params.get("project_id") or None)
