"""`AppContext`: what the API and the scheduled jobs share, built once per app.

It sits below both `service.api` and the job packages, so neither imports the other: the
API's lifespan yields it as typed state, and the scheduler hands each job only the parts
it needs.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from apscheduler.schedulers.base import BaseScheduler
from prometheus_client import CollectorRegistry

from service.auth import KeyRing
from service.clickhouse import ClickHouse
from service.clock import Clock, VersionStamp, system_clock
from service.conclusions.delivery import Sender
from service.conclusions.health import PipelineHealth
from service.metrics import Metrics
from service.migrations import Migration, discover
from service.settings import Settings


@dataclass
class AppContext:
    """Shared resources of one running app (tests build several side by side)."""

    settings: Settings
    clickhouse: ClickHouse
    metrics: Metrics
    clock: Clock
    stamp: VersionStamp
    keyring: KeyRing
    migrations: list[Migration]
    # How the conclusion passes have been doing (/readyz).
    pipeline: PipelineHealth
    stopping: threading.Event = field(default_factory=threading.Event)
    scheduler: BaseScheduler | None = None
    # Open while the app runs (its lifespan), when TA_ANALYZE_URL is set.
    sender: Sender | None = None


def build_context(
    settings: Settings,
    clickhouse: ClickHouse,
    *,
    clock: Clock = system_clock,
    registry: CollectorRegistry | None = None,
) -> AppContext:
    """Everything an app needs, wired from settings and one engine."""
    metrics = Metrics(registry)
    clickhouse.add_observer(metrics.observe_query)
    return AppContext(
        settings=settings,
        clickhouse=clickhouse,
        metrics=metrics,
        clock=clock,
        stamp=VersionStamp(clock),
        keyring=KeyRing(settings.api_key_map()),
        migrations=discover(),
        pipeline=PipelineHealth.start(clock),
    )
