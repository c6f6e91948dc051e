"""The rollup ledger's write side: stage traces, then bring them up to date chunk by chunk.

Why this is exact under replays, upserts, deletes, late rows, crashes and repeated runs:

* The ledger holds, per trace, what its rows contributed to each (kind, hour, group keys)
  when it was last brought up to date. Bringing a chunk of traces up to date is ONE
  `INSERT ... SELECT` (queries/rollups/apply.sql): their live rows' contribution now (read
  by primary key, `FINAL`, deleted rows hidden) minus what their ledger rows hold, rows that
  cancel dropped, plus that same change summed into every bucket view the reads use.
* So the operation is idempotent: run twice, the second finds nothing to change. A replayed
  batch, a repeated pass or a backfill over consistent data inserts nothing. A row that moved
  to another hour, a trace whose environment or name changed, a soft delete: the old
  contribution is retracted because the ledger remembers it, whatever merges did to the
  raw rows' old versions.
* One insert of one block is one part, so the trace rows and the bucket views it changes
  appear to readers together. A crash before it lands leaves the ledger as it was, and the
  traces stay dirty (the pass cursor has not moved), so the next pass applies the change.
* Concurrency is the one thing it cannot absorb: two writers taking the delta against the
  same ledger state would both add it. Ledger writes therefore have ONE writer: rollup
  passes and rollup backfills run only in the process on shard 0, under one `LedgerWriter`.

Every statement's key set is staged in `rollup_batches` and read back by primary key, so no
statement carries a key list, and a chunk is bounded by `size` traces.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from service.clickhouse import ClickHouse

# A position in a staged batch: (project_id, trace_id); chunks take the keys after it.
Key = tuple[str, str]
START: Key = ("", "")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Past the last second a DateTime column holds: an open upper bound.
END_OF_TIME = datetime(2106, 1, 1, tzinfo=UTC)
# Traces per apply statement: bounds its memory and how long it holds the writer (its insert
# stays one part at any size: apply.sql sets squashing thresholds no chunk reaches).
CHUNK_TRACES = 2000


class LedgerWriter:
    """The single writer of the ledger in this process: passes and backfills hold it in turn.

    `serve` runs rollup passes and rollup backfills only on shard 0, so holding this lock
    there makes every ledger write in the deployment sequential.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()

    @contextmanager
    def hold(self) -> Iterator[None]:
        with self._lock:
            yield


@contextmanager
def writing(writer: LedgerWriter | None) -> Iterator[None]:
    """Hold `writer` if there is one (a CLI process or a test is its own only writer)."""
    if writer is None:
        yield
        return
    with writer.hold():
        yield


@dataclass(frozen=True)
class Chunk:
    """One applied chunk: how many staged traces it covered and the last of them."""

    traces: int
    last: Key


def new_batch() -> int:
    """A fresh batch id: random, so passes and jobs never share one."""
    return secrets.randbits(63)


def stage_activity(ch: ClickHouse, batch: int, cursor: datetime | None) -> int:
    """Stage every trace with activity after `cursor` (None: all that is kept); returns how many."""
    ch.command("rollups/stage_activity", {"batch": batch, "cursor": cursor or EPOCH})
    return batch_size(ch, batch)


def stage_range(ch: ClickHouse, batch: int, lo: datetime | None, hi: datetime | None) -> int:
    """Stage every trace with rows (raw or ledger) starting in [lo, hi); a None bound is open."""
    params = {
        "batch": batch,
        "everything": lo is None and hi is None,
        "lo": lo or EPOCH,
        "hi": hi or END_OF_TIME,
    }
    ch.command("rollups/stage_range", params)
    return batch_size(ch, batch)


def batch_size(ch: ClickHouse, batch: int) -> int:
    """How many traces `batch` holds."""
    return int(ch.query_rows("rollups/batch_size", {"batch": batch})[0][0])


def apply_chunk(ch: ClickHouse, batch: int, after: Key, size: int = CHUNK_TRACES) -> Chunk:
    """Bring the (at most `size`) staged traces after `after` up to date; 0 traces at the end."""
    if size < 1:
        raise ValueError("chunk size must be positive")
    params = {"batch": batch, "after_project": after[0], "after_trace": after[1]}
    count, last = ch.query_rows("rollups/chunk_end", {**params, "size": size})[0]
    if not count:
        return Chunk(traces=0, last=after)
    end: Key = (str(last[0]), str(last[1]))
    ch.command("rollups/apply", {**params, "last_project": end[0], "last_trace": end[1]})
    return Chunk(traces=int(count), last=end)


def apply_batch(ch: ClickHouse, batch: int, size: int = CHUNK_TRACES) -> int:
    """Bring every staged trace of `batch` up to date, chunk by chunk; returns the chunks."""
    after, chunks = START, 0
    while True:
        chunk = apply_chunk(ch, batch, after, size)
        if not chunk.traces:
            return chunks
        after, chunks = chunk.last, chunks + 1


def rebuild_range(
    ch: ClickHouse,
    lo: datetime | None,
    hi: datetime | None,
    *,
    writer: LedgerWriter | None = None,
    size: int = CHUNK_TRACES,
) -> int:
    """Bring every trace with rows in [lo, hi) up to date at once; returns how many.

    The backfill primitive without the pacing: on a consistent ledger it inserts nothing.
    """
    with writing(writer):
        batch = new_batch()
        staged = stage_range(ch, batch, lo, hi)
        apply_batch(ch, batch, size)
    return staged
