"""The rollup pass: bring every trace touched since the watermark up to date, then advance it.

Dirty traces come from `trace_activity` (fed by materialized views on both raw tables for
every insert, upsert and soft delete), read after the watermark. The pass stages them as one
batch and applies it in bounded chunks (service/rollups/ledger.py), so its cost follows the
number of changed traces, not the size of the hours they touch or of history. The watermark
advances only after every chunk succeeded, to (pass start - safety lag), so rows whose insert
was still landing when the pass read are read again next time (applying is idempotent).
With no watermark yet (a fresh database), the first pass takes every trace the activity
table keeps (30 days). On a database upgraded from the bucket design, migration 0009 queues
a rollups backfill over all history and starts the watermark an hour before the upgrade.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from service.clickhouse import ClickHouse
from service.clock import Clock
from service.rollups.ledger import (
    CHUNK_TRACES,
    EPOCH,
    LedgerWriter,
    apply_batch,
    new_batch,
    stage_activity,
    writing,
)
from service.times import format_time

log = logging.getLogger(__name__)

CURSOR_NAME = "rollups.ledger"
SAFETY_LAG = timedelta(seconds=10)


@dataclass(frozen=True)
class RollupPassResult:
    """What one pass did, for the CLI, the log and the metrics."""

    started_at: datetime
    previous_watermark: datetime | None
    watermark: datetime
    dirty_traces: int
    chunks: int
    seconds: float

    def describe(self) -> str:
        """One line for an operator."""
        since = format_time(self.previous_watermark) if self.previous_watermark else "the beginning"
        return (
            f"rollup pass: {self.dirty_traces} dirty trace(s) since {since}, "
            f"applied in {self.chunks} chunk(s) in {self.seconds:.3f}s; "
            f"watermark {format_time(self.watermark)}"
        )


def next_watermark(previous: datetime | None, started_at: datetime, lag: timedelta) -> datetime:
    """Where a successful pass leaves the cursor: its start minus the lag, never backwards.

    Rows stamped just before the pass started may still have been landing while it read;
    stopping `lag` short makes the next pass read them again (applying is idempotent).
    """
    candidate = started_at - lag
    return candidate if previous is None or candidate > previous else previous


def read_watermark(ch: ClickHouse) -> datetime | None:
    """How far the rollups have caught up (None before the first pass)."""
    cursor, passes = ch.query_rows("rollups/read_cursor", {"name": CURSOR_NAME})[0]
    return cursor if passes else None


def pending_buckets(ch: ClickHouse) -> int:
    """(project, hour) buckets touched since the watermark, waiting for the next pass."""
    watermark = read_watermark(ch) or EPOCH
    return int(ch.query_rows("rollups/pending_buckets", {"cursor": watermark})[0][0])


def run_rollup_pass(
    ch: ClickHouse,
    clock: Clock,
    *,
    writer: LedgerWriter | None = None,
    safety_lag: timedelta = SAFETY_LAG,
    chunk_traces: int = CHUNK_TRACES,
) -> RollupPassResult:
    """One pass: apply every trace touched since the watermark, then advance it.

    Holds `writer` throughout, so a rollups backfill in the same process waits its turn.
    Any failure raises before the cursor moves: the same traces are dirty again next time.
    """
    with writing(writer):
        began = time.perf_counter()
        started_at = clock()
        previous = read_watermark(ch)
        batch = new_batch()
        dirty = stage_activity(ch, batch, previous)
        chunks = apply_batch(ch, batch, chunk_traces) if dirty else 0
        watermark = next_watermark(previous, started_at, safety_lag)
        ch.command("rollups/write_cursor", {"name": CURSOR_NAME, "cursor": watermark})
    result = RollupPassResult(
        started_at=started_at,
        previous_watermark=previous,
        watermark=watermark,
        dirty_traces=dirty,
        chunks=chunks,
        seconds=time.perf_counter() - began,
    )
    log.info(
        "rollup pass done",
        extra={
            "dirty_traces": dirty,
            "chunks": chunks,
            "seconds": round(result.seconds, 3),
            "watermark": format_time(watermark),
        },
    )
    return result
