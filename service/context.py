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
from service.engine_roles import API, INGEST
from service.ingest.writer import IngestWriter
from service.metrics import Metrics
from service.migrations import Migration, discover
from service.rollups.cache import ReadCache
from service.rollups.ledger import LedgerWriter
from service.settings import Settings


class PassLocks:
    """One lock per periodic pass, so a scheduled run and one asked for over the admin API
    (`POST /v1/admin/check`, `/v1/admin/rollup`) never run the same pass at once."""

    def __init__(self) -> None:
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def __getitem__(self, name: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(name, threading.Lock())


@dataclass
class AppContext:
    """Shared resources of one running app (tests build several side by side)."""

    settings: Settings
    # The API's engine: role `api`, a pool of TA_API_CONNECTIONS connections (embedded).
    # Background work runs on other roles' engines (`engine(role)`), so it never queues it.
    clickhouse: ClickHouse
    metrics: Metrics
    clock: Clock
    stamp: VersionStamp
    keyring: KeyRing
    migrations: list[Migration]
    # Group commit for every ingest endpoint (/v1/ingest, OTLP), on the `ingest` role's
    # engine; started and drained by the app's lifespan.
    ingest: IngestWriter
    # How the conclusion passes have been doing (/readyz).
    pipeline: PipelineHealth
    # Rollup answers until the ledger or the watermark changes (TA_ROLLUP_READ_CACHE_MB).
    read_cache: ReadCache
    stopping: threading.Event = field(default_factory=threading.Event)
    scheduler: BaseScheduler | None = None
    # Open while the app runs (its lifespan), when TA_ANALYZE_URL is set.
    sender: Sender | None = None
    pass_locks: PassLocks = field(default_factory=PassLocks)
    # Rollup passes and rollup backfills both write the ledger: one writer, held in turn.
    ledger: LedgerWriter = field(default_factory=LedgerWriter)

    def engine(self, role: str) -> ClickHouse:
        """The engine of one role (`service.engine_roles`: ingest, detect, deliver, ...)."""
        return self.clickhouse.role(role)


def build_context(
    settings: Settings,
    clickhouse: ClickHouse,
    *,
    clock: Clock = system_clock,
    registry: CollectorRegistry | None = None,
) -> AppContext:
    """Everything an app needs, wired from settings and one engine (any of its roles)."""
    metrics = Metrics(registry)
    clickhouse.add_observer(metrics.observe_query)
    stamp = VersionStamp(clock)
    return AppContext(
        settings=settings,
        clickhouse=clickhouse.role(API),
        metrics=metrics,
        clock=clock,
        stamp=stamp,
        keyring=KeyRing(settings.api_key_map()),
        migrations=discover(),
        ingest=IngestWriter(
            clickhouse.role(INGEST),
            stamp,
            metrics,
            linger_seconds=settings.ingest_linger_ms / 1000,
            max_queue_rows=settings.ingest_max_queue_rows,
            max_group_rows=settings.ingest_max_group_rows,
            min_retry_after=settings.ingest_retry_after_seconds,
        ),
        pipeline=PipelineHealth.start(clock),
        read_cache=ReadCache(settings.rollup_read_cache_mb * 1024 * 1024),
    )
