"""One-shot operations (`check`, `rollup`, the schema status) as plain data and their text.

The CLI runs them here, or — when a running embedded `serve` holds the data directory —
asks that `serve` to run them through its admin API (`service.api.admin`), which returns
the same report as JSON. Both paths print `lines()` of the same report, so the output is
the same wherever the work ran.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from typing import Any

from service.clickhouse import ClickHouse
from service.clock import Clock, VersionStamp
from service.conclusions.delivery import Sender
from service.conclusions.health import PipelineHealth
from service.engine_roles import DELIVER, DETECT, ROLLUPS
from service.metrics import Metrics
from service.migrations import SchemaStatus
from service.rollups.ledger import LedgerWriter
from service.settings import Settings


@dataclass(frozen=True)
class DeliveryCounts:
    """What one delivery pass did, and the outbox after it."""

    delivered: int
    retrying: int
    dead: int
    pending: int
    dead_total: int
    # The first few distinct reasons deliveries failed in this pass (none when all went).
    errors: tuple[str, ...] = ()


@dataclass(frozen=True)
class CheckReport:
    """One detection pass and one delivery pass (`delivery` None: TA_ANALYZE_URL unset)."""

    concluded: int
    delivery: DeliveryCounts | None

    def lines(self) -> list[str]:
        out = [f"concluded {self.concluded} trace(s)"]
        if self.delivery is None:
            out.append("TA_ANALYZE_URL is unset: conclusions recorded, not delivered")
            return out
        d = self.delivery
        out.append(
            f"delivered {d.delivered}, retrying {d.retrying}, dead {d.dead}; "
            f"open now: {d.pending} pending, {d.dead_total} dead"
        )
        out += [f"  failed: {error}" for error in d.errors]
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "concluded": self.concluded,
            "delivery": None if self.delivery is None else asdict(self.delivery),
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> CheckReport:
        delivery = raw.get("delivery")
        return cls(
            concluded=int(raw["concluded"]),
            delivery=None
            if delivery is None
            else DeliveryCounts(**{**delivery, "errors": tuple(delivery.get("errors", ()))}),
        )


def run_check(
    ch: ClickHouse,
    settings: Settings,
    sender: Sender | None,
    *,
    clock: Clock,
    stamp: VersionStamp,
    stopping: threading.Event,
    metrics: Metrics | None = None,
    health: PipelineHealth | None = None,
) -> CheckReport:
    """Conclude this shard's quiet traces, then attempt their due deliveries once.

    Each pass runs on its role's engine (`service.engine_roles`), as under `serve`, and
    counts in `health` (a serve's /readyz) like a scheduled pass.
    """
    from service.conclusions import run_delivery_pass, run_detection_pass

    concluded = run_detection_pass(
        ch.role(DETECT),
        settings,
        clock=clock,
        stamp=stamp,
        metrics=metrics,
        health=None if health is None else health.detect,
    )
    if settings.analyze_url is None or sender is None:
        return CheckReport(len(concluded), None)
    report = run_delivery_pass(
        ch.role(DELIVER),
        settings,
        sender,
        clock=clock,
        stamp=stamp,
        stopping=stopping,
        metrics=metrics,
        health=None if health is None else health.deliver,
    )
    counts = DeliveryCounts(
        delivered=report.delivered,
        retrying=report.retrying,
        dead=report.dead,
        pending=report.pending,
        dead_total=report.dead_total,
        errors=tuple(report.errors),
    )
    return CheckReport(len(concluded), counts)


@dataclass(frozen=True)
class RollupReport:
    """One rollup pass: its one-line description and the buckets still dirty after it."""

    description: str
    pending_buckets: int
    dirty_traces: int
    chunks: int
    seconds: float

    def lines(self) -> list[str]:
        return [self.description, f"buckets still pending: {self.pending_buckets}"]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> RollupReport:
        return cls(
            description=str(raw["description"]),
            pending_buckets=int(raw["pending_buckets"]),
            dirty_traces=int(raw["dirty_traces"]),
            chunks=int(raw["chunks"]),
            seconds=float(raw["seconds"]),
        )


def run_rollup(ch: ClickHouse, clock: Clock, writer: LedgerWriter | None = None) -> RollupReport:
    """Bring every trace touched since the watermark up to date, then advance the watermark.

    `writer` is the process's ledger writer when one exists (`serve`: passes and backfills
    hold it in turn); a CLI process is its own only writer.
    """
    from service.rollups import pending_buckets, run_rollup_pass

    rollups = ch.role(ROLLUPS)
    result = run_rollup_pass(rollups, clock, writer=writer)
    return RollupReport(
        description=result.describe(),
        pending_buckets=pending_buckets(rollups),
        dirty_traces=result.dirty_traces,
        chunks=result.chunks,
        seconds=result.seconds,
    )


def schema_lines(database: str, status: SchemaStatus) -> list[str]:
    """What `migrate --status` prints."""
    out = [
        f"database: {database}",
        f"current:  {status.current or 'none'}",
        f"wanted:   {status.wanted}",
    ]
    out += [f"pending:  {name}" for name in status.pending]
    out += [f"CHANGED:  {name} (edited after it was applied)" for name in status.changed]
    out += [f"UNKNOWN:  {name} (applied by a newer build)" for name in status.unknown]
    return out
