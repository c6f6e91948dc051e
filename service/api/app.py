"""The app factory: `create_app(settings, clickhouse, clock=...)` builds everything explicitly.

The lifespan starts the ingest writer and the scheduler inside the running loop, yields the
`AppContext` as typed state (routes read it with `service.api.state.context`), and on
shutdown first writes what the ingest queue holds (waiting requests get their answer),
then stops the scheduler. Nothing lives in module globals, so two apps can run side by side
in one process (tests, and the two-shard check).
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable

import anyio
import httpx
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api import (
    admin,
    conclusions,
    durations,
    health,
    ingest,
    jobs,
    openapi,
    otlp,
    rollups,
    traces,
)
from service.api.endpoint import ApiRoute, build_routes
from service.api.errors import handle_client_error, handle_http_exception, handle_unexpected
from service.api.state import State
from service.clickhouse import ClickHouse
from service.clock import Clock, system_clock
from service.conclusions.delivery import Sender
from service.context import AppContext, build_context
from service.errors import ClientError
from service.logs import request_context
from service.metrics import Metrics
from service.scheduler import ScheduledJob, build_scheduler, default_jobs
from service.settings import Settings

log = logging.getLogger(__name__)
access_log = logging.getLogger("service.access")
# Probes and scrapes arrive every few seconds per replica: logged at DEBUG, not INFO.
_QUIET_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})


def create_app(
    settings: Settings,
    clickhouse: ClickHouse,
    *,
    clock: Clock = system_clock,
    registry: CollectorRegistry | None = None,
    scheduled_jobs: Callable[[AppContext], list[ScheduledJob]] | None = None,
    delivery_transport: httpx.BaseTransport | None = None,
) -> Starlette:
    """Build the ASGI app.

    `scheduled_jobs` overrides the job list (tests; default is all of them);
    `delivery_transport` replaces the network under webhook delivery (tests).
    """
    ctx = build_context(settings, clickhouse, clock=clock, registry=registry)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[State]:
        ctx.ingest.start()
        try:
            if settings.analyze_url is not None:
                ctx.sender = Sender(settings, transport=delivery_transport)
            if settings.scheduler_enabled:
                jobs = (scheduled_jobs or default_jobs)(ctx)
                ctx.scheduler = build_scheduler(jobs, locks=ctx.pass_locks, metrics=ctx.metrics)
                ctx.scheduler.start()
                log.info("scheduler started", extra={"jobs": [j.id for j in jobs]})
            yield {"ctx": ctx}
        finally:
            # Drain the ingest queue first: requests still waiting on it get their answer.
            await anyio.to_thread.run_sync(ctx.ingest.close, 4 * settings.query_timeout_seconds)
            ctx.stopping.set()
            if ctx.scheduler is not None:
                ctx.scheduler.shutdown(wait=True)
                log.info("scheduler stopped")
            if ctx.sender is not None:
                ctx.sender.close()

    app = Starlette(
        routes=api_routes(),
        exception_handlers={
            ClientError: handle_client_error,
            HTTPException: handle_http_exception,
            Exception: handle_unexpected,
        },
        middleware=[Middleware(RequestMetricsMiddleware, metrics=ctx.metrics)],
        lifespan=lifespan,
    )
    app.state.ctx = ctx
    return app


def api_routes() -> list[ApiRoute]:
    """Every route of the API, from each resource module's declarations (`Endpoint`s)."""
    return build_routes(
        [
            *health.routes(),
            *ingest.routes(),
            *otlp.routes(),
            *traces.routes(),
            *conclusions.routes(),
            *rollups.routes(),
            *durations.routes(),
            *jobs.routes(),
            *admin.routes(),
            *openapi.routes(),
        ]
    )


def app_context(app: Starlette) -> AppContext:
    """The context an app was built with (for the CLI, tests and benchmarks)."""
    ctx = app.state.ctx
    assert isinstance(ctx, AppContext)
    return ctx


class RequestMetricsMiddleware:
    """Counts and times requests by route template, and tags each with a request id."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        with request_context(request_id):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                route = scope.get("route")
                template = getattr(route, "path", None) or "unmatched"
                method = scope.get("method", "")
                elapsed = time.perf_counter() - started
                self.metrics.http_requests.labels(template, method, str(status)).inc()
                self.metrics.http_latency.labels(template, method).observe(elapsed)
                access_log.log(
                    logging.DEBUG if template in _QUIET_ROUTES else logging.INFO,
                    "request",
                    extra={
                        "method": method,
                        "route": template,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 3),
                        "request_id": request_id,
                    },
                )


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == b"x-request-id" and 0 < len(value) <= 128:
            return str(value.decode("latin-1"))
    return uuid.uuid4().hex
