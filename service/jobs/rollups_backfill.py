"""The `rollups.backfill` job: bring every trace with rows in a time range up to date, paced.

`plan` stages the range's traces once (service/rollups/ledger.py `stage_range`: traces with
any stored observation starting in the range, and traces the ledger holds there), into a
batch whose id derives from the job's, so a restarted process finds it again. Each chunk
then applies the next `batch_size` staged traces in key order, holding the process's ledger
writer (so it never runs beside a rollup pass); the cursor is the last trace applied. On a
consistent ledger every chunk inserts nothing, so a backfill is safe to run at any time;
after a change of contribution rules, or on a database upgraded from the bucket design
(migration 0009 queues one), it writes what is missing. Progress counts traces.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from service.clickhouse import ClickHouse
from service.clock import Clock
from service.jobs.model import Job
from service.jobs.runner import Chunk
from service.rollups.ledger import (
    CHUNK_TRACES,
    START,
    Key,
    LedgerWriter,
    apply_chunk,
    batch_size,
    stage_range,
    writing,
)
from service.times import ceil_hour, floor_hour, format_time, parse_time

KIND = "rollups.backfill"


def rollup_backfill_params(
    start: datetime | None, end: datetime | None, batch_size: int = CHUNK_TRACES
) -> dict[str, Any]:
    """Params of a rollups backfill; a missing bound leaves that side of the range open."""
    return {
        "from": format_time(None if start is None else floor_hour(start)),
        "to": format_time(None if end is None else ceil_hour(end)),
        "batch_size": batch_size,
    }


def job_batch(job: Job) -> int:
    """The staging batch of a job: derived from its id, stable across restarts."""
    return int(hashlib.sha256(job.id.encode()).hexdigest()[:15], 16)


def _time(raw: object) -> datetime | None:
    return None if raw in (None, "") else parse_time(str(raw))


@dataclass(frozen=True)
class RollupsBackfill:
    """Bring a range's traces up to date `batch_size` traces at a time."""

    writer: LedgerWriter | None = None
    name: str = KIND

    def plan(self, ch: ClickHouse, job: Job) -> int:
        return self._stage(ch, job)

    def run_chunk(self, ch: ClickHouse, job: Job, clock: Clock) -> Chunk:
        batch = job_batch(job)
        if job.rows_total and not batch_size(ch, batch):
            # Staged rows expire after days (a job paused that long): stage the range again;
            # the cursor still skips every trace already applied.
            self._stage(ch, job)
        raw_after = job.cursor.get("after")
        after: Key = START if raw_after is None else (str(raw_after[0]), str(raw_after[1]))
        size = max(int(job.params.get("batch_size", CHUNK_TRACES)), 1)
        with writing(self.writer):
            chunk = apply_chunk(ch, batch, after, size)
        return Chunk(
            rows=chunk.traces,
            cursor={"after": list(chunk.last)},
            finished=chunk.traces < size,
        )

    def _stage(self, ch: ClickHouse, job: Job) -> int:
        start, end = _time(job.params.get("from")), _time(job.params.get("to"))
        if start is not None and end is not None and start >= end:
            return 0
        return stage_range(ch, job_batch(job), start, end)
