"""The ingest writer: requests that arrive together are written together (group commit).

Every ingest endpoint (`POST /v1/ingest`, the OTLP trace export) validates its request on
its own (a bad request is a 400 and never reaches the writer), resolves the projects, and
hands the rows to `IngestWriter.submit` (or awaits `IngestWriter.write`); the app holds
ONE writer (`AppContext.ingest`), on the `ingest` engine role's own connection, so spans
and JSON batches that arrive together share a group. One writer thread takes whatever has
queued up — after a short linger, at once when a group is already full — and writes the
whole group with ONE insert per table. Only when those inserts have returned does each
request's future resolve, so no request is answered 2xx before its rows are written.

chDB pays a fixed cost per insert (tens of ms): small SDK batches written one insert per
request are slow, a few large inserts are fast. The queue is bounded in rows; when it is
full, `submit` (and `ensure_room`, which endpoints call before reading a body) raises
`Overloaded` (503 with Retry-After: the time the queue needs to drain at the recent rate,
at least TA_INGEST_RETRY_AFTER_SECONDS, at most 30 s) instead of buffering without end.
Inserts go through `ClickHouse.insert`, so on a server they carry the raw tables'
`async_insert=1, wait_for_async_insert=1` (`service.engine_roles`).

Failure: ClickHouse has no multi-table transaction. If the traces insert of a group fails,
nothing is written and every request of the group gets `WriteFailed` (503, retry); if the
observations insert fails after it, the group's traces are written but every request still
gets `WriteFailed` and none a 2xx. A retry is exact: rows are upserts by id, and the retry
carries a newer `ingested_at`, so it replaces whatever the failed attempt left.

Versions: each request in a group gets its own `ingested_at` from the `VersionStamp`, in
arrival order, so when two requests of one group carry the same id the later one wins,
exactly as if they had been written one after the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from service.clickhouse import ClickHouse
from service.clock import VersionStamp
from service.errors import Overloaded, WriteFailed
from service.ingest.rows import OBSERVATION_COLUMNS, TRACE_COLUMNS, IngestRows
from service.metrics import Metrics
from service.times import EPOCH

log = logging.getLogger(__name__)

_MICROSECOND = timedelta(microseconds=1)
# The longest Retry-After an overloaded answer asks for, whatever the drain estimate says.
MAX_RETRY_AFTER = 30.0


@dataclass(frozen=True)
class IngestResult:
    traces: int
    observations: int


def _ticks(stamp: datetime) -> int:
    """`ingested_at` as DateTime64(6) ticks: one int per request, not a datetime per row."""
    return (stamp - EPOCH) // _MICROSECOND


def insert_group(ch: ClickHouse, group: list[IngestRows], stamps: list[datetime]) -> None:
    """Write every request of `group` with one insert per table; `stamps[i]` versions group[i].

    Raises whatever the engine raised; see the module docstring for what is then written.
    """
    versioned = list(zip(group, [_ticks(stamp) for stamp in stamps], strict=True))
    _insert_table(ch, "traces", TRACE_COLUMNS, [(r.traces, t) for r, t in versioned])
    _insert_table(
        ch, "observations", OBSERVATION_COLUMNS, [(r.observations, t) for r, t in versioned]
    )


def _insert_table(
    ch: ClickHouse, table: str, columns: tuple[str, ...], parts: list[tuple[list[list[Any]], int]]
) -> None:
    """One insert of every part's columns, each part's rows stamped with its own version."""
    parts = [(cols, ticks) for cols, ticks in parts if cols and cols[0]]
    if not parts:
        return
    if len(parts) == 1:
        cols, ticks = parts[0]
        count = len(cols[0])
        ch.insert(table, columns, [*cols, [ticks] * count, [0] * count], by_column=True)
        return
    data: list[list[Any]] = [[] for _ in columns]
    for cols, ticks in parts:
        count = len(cols[0])
        for target, values in zip(data, cols, strict=False):
            target.extend(values)
        data[-2].extend([ticks] * count)
        data[-1].extend([0] * count)
    ch.insert(table, columns, data, by_column=True)


def write_rows(ch: ClickHouse, rows: IngestRows, stamp: VersionStamp) -> IngestResult:
    """Write one request's rows directly, without the queue (CLI, demo, tests)."""
    insert_group(ch, [rows], [stamp.next()])
    return IngestResult(traces=rows.trace_count, observations=rows.observation_count)


@dataclass
class _Pending:
    rows: IngestRows
    future: Future[IngestResult]
    arrived: float


class IngestWriter:
    """Group commit for ingest: `submit(rows)` -> a future resolved once the rows are written.

    The seam every ingest endpoint shares. Call `start()` before the first `submit` and
    `close()` at shutdown (the app's lifespan does both); `close` writes what is queued.
    `ch` should be a connection of its own (engine role "ingest"), so a group's insert never
    waits behind a background job's statement.
    """

    def __init__(
        self,
        ch: ClickHouse,
        stamp: VersionStamp,
        metrics: Metrics,
        *,
        linger_seconds: float = 0.010,
        max_queue_rows: int = 200_000,
        max_group_rows: int = 50_000,
        min_retry_after: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ch = ch
        self.stamp = stamp
        self.metrics = metrics
        self.linger_seconds = linger_seconds
        self.max_queue_rows = max_queue_rows
        self.max_group_rows = max_group_rows
        self.min_retry_after = min_retry_after
        self._monotonic = monotonic
        self._queue: deque[_Pending] = deque()
        self._queued_rows = 0
        self._cond = threading.Condition()
        self._accepting = False
        self._thread: threading.Thread | None = None
        self._held = False
        # When the last group insert returned (monotonic): lingering counts from there too.
        self._free_since = 0.0
        # Rows per second the writer has recently sustained, for Retry-After.
        self._rate = 0.0

    # -- the seam ---------------------------------------------------------------------------

    def submit(self, rows: IngestRows) -> Future[IngestResult]:
        """Queue one request's rows; the future resolves after the insert holding them.

        The future fails with `WriteFailed` when that insert failed. Raises `Overloaded`
        at once when the queue is full or the writer is not running. A request larger than
        the whole queue bound is still taken when nothing else waits (its body was capped).
        """
        future: Future[IngestResult] = Future()
        size = rows.size
        if size == 0:
            future.set_result(IngestResult(traces=0, observations=0))
            return future
        with self._cond:
            if not self._accepting:
                raise Overloaded("the ingest writer is not running (shutting down); retry")
            if self._queue and self._queued_rows + size > self.max_queue_rows:
                raise Overloaded(
                    f"ingest queue is full ({self._queued_rows} rows waiting, "
                    f"TA_INGEST_MAX_QUEUE_ROWS={self.max_queue_rows}); retry",
                    retry_after=self._retry_after(),
                )
            self._queue.append(_Pending(rows, future, self._monotonic()))
            self._queued_rows += size
            self._set_queue_gauges()
            self._cond.notify()
        return future

    def ensure_room(self) -> None:
        """Raise `Overloaded` now if the queue is already full (before a body is parsed)."""
        with self._cond:
            if self._accepting and self._queued_rows >= self.max_queue_rows:
                raise Overloaded(
                    f"ingest queue is full ({self._queued_rows} rows waiting, "
                    f"TA_INGEST_MAX_QUEUE_ROWS={self.max_queue_rows}); retry",
                    retry_after=self._retry_after(),
                )

    async def write(self, rows: IngestRows) -> IngestResult:
        """`submit`, awaited from the event loop."""
        return await asyncio.wrap_future(self.submit(rows))

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        with self._cond:
            if self._thread is not None:
                return
            self._accepting = True
            self._thread = threading.Thread(target=self._run, name="ingest-writer", daemon=True)
            self._thread.start()

    def close(self, timeout: float | None = None) -> None:
        """Stop taking requests, write everything queued, then stop the thread."""
        with self._cond:
            self._accepting = False
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                log.error("ingest writer did not drain in time", extra={"timeout": timeout})
        with self._cond:
            self._thread = None

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Write nothing while inside: requests queue up (tests fill the queue this way)."""
        with self._cond:
            self._held = True
        try:
            yield
        finally:
            with self._cond:
                self._held = False
                self._cond.notify_all()

    @property
    def queued_rows(self) -> int:
        with self._cond:
            return self._queued_rows

    # -- the writer thread ------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            group = self._next_group()
            if group is None:
                return
            self._flush(group)

    def _next_group(self) -> list[_Pending] | None:
        """Wait for work, linger, then take whole requests up to `max_group_rows`.

        The linger counts from the later of the oldest request's arrival and the end of
        the previous insert: senders answered by that insert usually come straight back
        with their next batch, and waiting a few ms for them halves the inserts when
        clients send one batch at a time (the common SDK pattern). A full group never
        waits.
        """
        with self._cond:
            while True:
                if not self._queue or (self._held and self._accepting):
                    if not self._queue and not self._accepting:
                        return None
                    self._cond.wait()
                    continue
                if self._accepting and self._queued_rows < self.max_group_rows:
                    since = max(self._queue[0].arrived, self._free_since)
                    wait = since + self.linger_seconds - self._monotonic()
                    if wait > 0:
                        self._cond.wait(wait)
                        continue
                group: list[_Pending] = []
                rows = 0
                while self._queue and (
                    not group or rows + self._queue[0].rows.size <= self.max_group_rows
                ):
                    pending = self._queue.popleft()
                    self._queued_rows -= pending.rows.size
                    # A request whose caller gave up (cancelled) before this point is dropped.
                    if pending.future.set_running_or_notify_cancel():
                        group.append(pending)
                        rows += pending.rows.size
                self._set_queue_gauges()
                if group:
                    return group

    def _flush(self, group: list[_Pending]) -> None:
        rows = sum(p.rows.size for p in group)
        started = time.perf_counter()
        try:
            stamps = [self.stamp.next() for _ in group]
            insert_group(self.ch, [p.rows for p in group], stamps)
        except Exception:
            self.metrics.ingest_flush_failures.inc()
            log.exception(
                "ingest group insert failed; every request of the group gets a 503",
                extra={"requests": len(group), "rows": rows},
            )
            for pending in group:
                pending.future.set_exception(
                    WriteFailed(
                        "the batch could not be written (engine error); nothing of it is "
                        "acknowledged, retry it (writes are upserts by id, a retry is exact)"
                    )
                )
            return
        finally:
            self._free_since = self._monotonic()
            elapsed = time.perf_counter() - started
            self.metrics.ingest_flush_duration.observe(elapsed)
            self.metrics.ingest_group_requests.observe(len(group))
            self.metrics.ingest_group_rows.observe(rows)
        if elapsed > 0:
            current = rows / elapsed
            self._rate = current if self._rate == 0 else 0.8 * self._rate + 0.2 * current
        results = [
            IngestResult(traces=p.rows.trace_count, observations=p.rows.observation_count)
            for p in group
        ]
        self.metrics.ingested_rows.labels("traces").inc(sum(r.traces for r in results))
        self.metrics.ingested_rows.labels("observations").inc(sum(r.observations for r in results))
        for pending, result in zip(group, results, strict=True):
            pending.future.set_result(result)

    def _retry_after(self) -> float:
        """Seconds until the queue has likely drained (TA_INGEST_RETRY_AFTER_SECONDS .. 30 s)."""
        if self._rate <= 0:
            return self.min_retry_after
        return min(MAX_RETRY_AFTER, max(self.min_retry_after, self._queued_rows / self._rate))

    def _set_queue_gauges(self) -> None:
        self.metrics.ingest_queue_rows.set(self._queued_rows)
        self.metrics.ingest_queue_requests.set(len(self._queue))
