"""Conclusions: detection vs the seed's query, deliveries/s vs sequential, delivery vs history.

For each size, a fresh embedded chDB gets N observations (10 per trace, UUID-shaped ids)
generated server-side with INSERT ... SELECT FROM numbers(), spread over 20 days of
history, with only the newest 2000 traces active in the last 3 minutes. Then, on the same
data, in steady state (the previous pass ran one interval earlier):

- query: our "which traces concluded" step (cursor read + the window/anti-join query);
- pass: all of `run_detection_pass`: the query, the traces' summaries from raw rows, and
  the durable conclusion records (outbox, conclusions, cursor);
- seed: the query of shared/reference/004 (`observations FINAL` over all history, GROUP BY
  trace, join to `traces FINAL`), adapted to our column names; it only finds trace ids,
  so `seed/query` compares like with like.

Deliveries: conclusions queued in the outbox, POSTed to a local HTTP receiver on
127.0.0.1 by `run_delivery_pass` (TA_ANALYZE_CONCURRENCY in flight, state written back to
ClickHouse) vs the seed's way: one POST after another.

History: a fresh engine holds H conclusions that were delivered in the past (records in
`conclusions`, and in `delivery_outbox` the pending and delivered rows the service wrote,
spread over the two hours before now). The first delivery pass compacts that history away
(timed on its own: a one-off after downtime, per slot in steady state); then each measured
pass delivers 1000 new conclusions to the local receiver. Ours at 100k vs 2M should be
about equal. For contrast, the same history in the old outbox (migration 0003's
`conclusion_outbox`, tombstones not yet cleaned up) and its due query with FINAL.

    python bench/conclusions.py [--sections detection,deliveries,history]
        [--sizes 1000000,10000000] [--deliveries 5000] [--history 100000,2000000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import orjson

from service.clickhouse import ClickHouse, connect
from service.clock import ManualClock, VersionStamp
from service.conclusions import run_delivery_pass, run_detection_pass, store
from service.conclusions.delivery import Sender
from service.conclusions.models import Conclusion, Status
from service.engine_roles import DELIVER, DETECT
from service.migrations import apply
from service.settings import Settings

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
PER_TRACE = 10
HISTORY_DAYS = 20
RECENT_TRACES = 2000  # traces active in the last RECENT_SECONDS
RECENT_SECONDS = 180
IDLE = 60
INTERVAL = 10

# Benchmark data, generated inside the engine. Trace k's observations are ingested at one
# instant: the oldest traces 20 days ago, the newest RECENT_TRACES in the last 3 minutes.
INGESTED_AT = """
    if({traces:UInt64} - trace_no <= {recent:UInt64},
       {now:DateTime64(6, 'UTC')}
         - toIntervalMicrosecond(({traces:UInt64} - trace_no) * {recent_us:UInt64}),
       {now:DateTime64(6, 'UTC')} - toIntervalDay({days:UInt64})
         + toIntervalMicrosecond(trace_no * {history_us:UInt64}))
"""
# Ids shaped like real ones (36-character UUIDs), derived from the trace number.
TRACE_ID = "UUIDNumToString(sipHash128('trace', trace_no))"
INSERT_OBSERVATIONS = f"""
INSERT INTO observations
SELECT 'bench', {TRACE_ID}, UUIDNumToString(sipHash128('observation', number)), '',
       if(number % 3 = 0, 'tool', 'generation'), 'step', start, start + toIntervalMillisecond(900),
       NULL, if(number % 3 = 0, '', 'gpt-4o'), 'openai', 100, 20, 0.001,
       if(number % 97 = 0, 'error', 'ok'), map('step', toString(number % 10)), ingested_at, 0
FROM
(
    SELECT number, intDiv(number, {PER_TRACE}) AS trace_no,
           {INGESTED_AT} AS ingested_at,
           toDateTime64(ingested_at, 3, 'UTC') - toIntervalSecond(30) AS start
    FROM numbers({{n:UInt64}})
)
"""
INSERT_TRACES = f"""
INSERT INTO traces
SELECT 'bench', {TRACE_ID}, 'agent-run',
       toDateTime64(ingested_at, 3, 'UTC') - toIntervalSecond(30), 'u1', 's1', 'prod', [],
       map('release', 'v42', 'tier', 'pro'), ingested_at, 0
FROM
(
    SELECT number AS trace_no, {INGESTED_AT} AS ingested_at
    FROM numbers({{traces:UInt64}})
)
"""
# shared/reference/004: observations FINAL over all history, GROUP BY trace, join traces FINAL.
SEED_QUERY = """
WITH trace_latest_updates AS (
  SELECT trace_id, max(ingested_at) AS last_updated
  FROM observations FINAL
  WHERE ingested_at < {now:DateTime64(6, 'UTC')} - INTERVAL 60 SECOND
  GROUP BY trace_id
)
SELECT DISTINCT t.id AS trace_id
FROM traces AS t FINAL
INNER JOIN trace_latest_updates tlu ON t.id = tlu.trace_id
WHERE NOT has(mapKeys(t.metadata), 'feature_id')
AND t.timestamp < {now:DateTime64(6, 'UTC')} - INTERVAL 60 SECOND
LIMIT 1000
"""


def timed(run: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = run()
    return time.perf_counter() - started, result


def build(ch: ClickHouse, observations: int) -> None:
    traces = observations // PER_TRACE
    params = {
        "n": observations,
        "traces": traces,
        "recent": RECENT_TRACES,
        "recent_us": RECENT_SECONDS * 1_000_000 // RECENT_TRACES,
        "history_us": (HISTORY_DAYS * 86400 - 3600) * 1_000_000 // max(1, traces),
        "days": HISTORY_DAYS,
        "now": NOW,
    }
    ch.command("bench:observations", params, sql=INSERT_OBSERVATIONS)
    ch.command("bench:traces", params, sql=INSERT_TRACES)


@dataclass
class DetectionFigures:
    """Medians over the measured passes, and the seed query's median."""

    query_ms: float  # our cursor read + find query: "which traces concluded"
    pass_ms: float  # the whole pass: + summaries from raw rows + durable conclusion records
    concluded: int  # conclusions per pass
    seed_ms: float
    seed_ids: int


def wait_for_merges(ch: ClickHouse, limit_seconds: float = 120) -> None:
    """Let background merges after the bulk load finish, so no figure pays for them."""
    deadline = time.monotonic() + limit_seconds
    while time.monotonic() < deadline:
        if not ch.query_rows("bench:merges", sql="SELECT count() FROM system.merges")[0][0]:
            return
        time.sleep(0.5)


def bench_detection(ch: ClickHouse, passes: int = 5) -> DetectionFigures:
    settings = Settings(
        idle_seconds=IDLE, check_interval_seconds=INTERVAL, analyze_url="http://127.0.0.1:9/x"
    )
    clock = ManualClock(NOW - timedelta(seconds=INTERVAL))
    stamp = VersionStamp(clock)
    # Steady state: the service has been running; the previous pass ran one interval ago.
    store.write_cursor(ch, 1, 0, NOW - timedelta(minutes=10), stamp)
    detect = ch.role(DETECT)  # as serve runs it
    run_detection_pass(detect, settings, clock=clock, stamp=stamp)
    query_seconds: list[float] = []

    def observe(name: str, seconds: float) -> None:
        if name in ("conclusions/read_cursor", "conclusions/find_concluded"):
            query_seconds[-1] += seconds

    ch.add_observer(observe)
    pass_seconds, concluded = [], []
    for k in range(passes):  # the traces active in the last minute conclude, pass by pass
        clock.set(NOW + timedelta(seconds=k * INTERVAL))
        query_seconds.append(0.0)
        seconds, recorded = timed(
            lambda: run_detection_pass(detect, settings, clock=clock, stamp=stamp)
        )
        pass_seconds.append(seconds)
        concluded.append(len(recorded))
    seed_seconds, found = [], 0
    for _ in range(3):
        seconds, rows = timed(lambda: ch.query_rows("bench:seed", {"now": NOW}, sql=SEED_QUERY))
        seed_seconds.append(seconds)
        found = len(rows)
    return DetectionFigures(
        query_ms=statistics.median(query_seconds) * 1000,
        pass_ms=statistics.median(pass_seconds) * 1000,
        concluded=int(statistics.median(concluded)),
        seed_ms=statistics.median(seed_seconds) * 1000,
        seed_ids=found,
    )


class Receiver:
    """A minimal HTTP/1.1 keep-alive server on 127.0.0.1 answering 200, in its own thread."""

    def __init__(self, delay_seconds: float) -> None:
        self.delay = delay_seconds
        self.received = 0
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.port = 0
        self._server: asyncio.Server | None = None

    def __enter__(self) -> Receiver:
        self._thread.start()
        self._ready.wait()
        return self

    def __exit__(self, *exc: object) -> None:
        async def close() -> None:
            # Cancelled keep-alive handlers are expected here, not errors worth a traceback.
            self._loop.set_exception_handler(lambda loop, context: None)
            if self._server is not None:
                self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(close(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", 0, backlog=1024)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                await reader.readexactly(length)
                if self.delay:
                    await asyncio.sleep(self.delay)
                self.received += 1
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def queue(ch: ClickHouse, count: int, prefix: str, stamp: VersionStamp) -> list[Conclusion]:
    summary = {"name": "agent-run", "observations": 10, "input_tokens": 1000, "models": ["x"]}
    conclusions = [
        Conclusion("bench", f"{prefix}{i}", 1, NOW, NOW, summary, Status.PENDING, 0, NOW)
        for i in range(count)
    ]
    store.record_conclusions(ch, conclusions, stamp)
    return conclusions


def bench_delivery(ch: ClickHouse, count: int, delay: float) -> tuple[float, float]:
    """(ours/s, sequential/s) against a receiver that takes `delay` seconds per request."""
    clock = ManualClock(NOW + timedelta(minutes=10))
    stamp = VersionStamp(clock)
    with Receiver(delay) as receiver:
        url = f"http://127.0.0.1:{receiver.port}/analyze"
        settings = Settings(
            analyze_url=url, webhook_secret="whsec_" + "a" * 43, check_batch_limit=count
        )
        queue(ch, count, f"d{delay}-", stamp)
        with Sender(settings) as sender:
            seconds, report = timed(
                lambda: run_delivery_pass(
                    ch.role(DELIVER),
                    settings,
                    sender,
                    clock=clock,
                    stamp=stamp,
                    stopping=threading.Event(),
                )
            )
        # The detection passes above queued their conclusions too: all of them count.
        assert report.delivered >= count, report
        ours = report.delivered / seconds

        sequential = queue(ch, count, f"s{delay}-", stamp)

        def one_by_one() -> None:
            with httpx.Client() as client:
                for c in sequential:
                    response = client.post(url, content=orjson.dumps(c.payload()))
                    response.raise_for_status()

        seconds, _ = timed(one_by_one)
        return ours, count / seconds


# History for the delivery pass: H conclusions delivered in the two hours before NOW, as
# the service wrote them (a pending row when recorded, a delivered row a second later).
HISTORY_SPAN_SECONDS = 2 * 3600 - 15 * 60
HISTORY_RECORDS = """
INSERT INTO conclusions
SELECT 'bench', concat('hist-', toString(number)), 1, at, at - toIntervalSecond(60),
       '{"name": "agent-run", "observations": 10}', 'delivered', 1, NULL, '',
       at + toIntervalSecond(1), at + toIntervalSecond(1)
FROM
(
    SELECT number, {now:DateTime64(6, 'UTC')} - toIntervalSecond(7200)
             + toIntervalMicrosecond(number * {step_us:UInt64}) AS at
    FROM numbers({history:UInt64})
)
"""
HISTORY_OUTBOX = """
INSERT INTO delivery_outbox
SELECT toStartOfFiveMinutes(version), 'bench', concat('hist-', toString(n)), 1, at,
       at - toIntervalSecond(60), if(delivered, '', '{"name": "agent-run", "observations": 10}'),
       if(delivered, 'delivered', 'pending'), toUInt16(delivered), if(delivered, at, NULL),
       at, '', version
FROM
(
    SELECT intDiv(number, 2) AS n, number % 2 = 1 AS delivered,
           {now:DateTime64(6, 'UTC')} - toIntervalSecond(7200)
             + toIntervalMicrosecond(n * {step_us:UInt64}) AS at,
           at + toIntervalSecond(if(delivered, 1, 0)) AS version
    FROM numbers({rows:UInt64})
)
"""
# The old outbox (migration 0003) with the same history: a pending row, then a tombstone.
OLD_OUTBOX_TABLE = """
CREATE TABLE bench_old_outbox
(
    project_id LowCardinality(String), trace_id String, revision UInt32,
    concluded_at DateTime64(6, 'UTC'), last_activity_at DateTime64(6, 'UTC'), summary String,
    status LowCardinality(String), attempts UInt16, next_attempt_at DateTime64(6, 'UTC'),
    last_error String, updated_at DateTime64(6, 'UTC'), is_deleted UInt8
)
ENGINE = ReplacingMergeTree(updated_at, is_deleted)
ORDER BY (project_id, trace_id, revision)
"""
OLD_OUTBOX_ROWS = """
INSERT INTO bench_old_outbox
SELECT 'bench', concat('hist-', toString(intDiv(number, 2))), 1, at, at - toIntervalSecond(60),
       '{"name": "agent-run", "observations": 10}', if(number % 2 = 1, 'delivered', 'pending'),
       toUInt16(number % 2), at, '', at + toIntervalSecond(number % 2), toUInt8(number % 2)
FROM
(
    SELECT number, {now:DateTime64(6, 'UTC')} - toIntervalSecond(7200)
             + toIntervalMicrosecond(intDiv(number, 2) * {step_us:UInt64}) AS at
    FROM numbers({rows:UInt64})
)
"""
OLD_DUE_QUERY = """
SELECT project_id, trace_id, revision, concluded_at, last_activity_at, summary,
       status, attempts, next_attempt_at, last_error
FROM bench_old_outbox FINAL
WHERE status = 'pending' AND next_attempt_at <= {now:DateTime64(6, 'UTC')}
  AND cityHash64(trace_id) % 1 = 0
ORDER BY next_attempt_at, project_id, trace_id, revision
LIMIT 5000
"""


@dataclass
class HistoryFigures:
    """Medians over the measured passes, for one history size."""

    compact_s: float  # the one-off compaction of the whole history
    pass_ms: float  # a delivery pass of DUE_PER_PASS new conclusions, history compacted
    due_ms: float  # its due query alone
    old_due_ms: float  # the old outbox's due query with the same history
    outbox_rows: int  # rows in delivery_outbox after the measured passes


DUE_PER_PASS = 1000


def bench_history(ch: ClickHouse, history: int, passes: int = 9) -> HistoryFigures:
    params = {
        "now": NOW,
        "history": history,
        "rows": 2 * history,
        "step_us": HISTORY_SPAN_SECONDS * 1_000_000 // history,
    }
    ch.command("bench:history_records", params, sql=HISTORY_RECORDS)
    ch.command("bench:history_outbox", params, sql=HISTORY_OUTBOX)
    ch.command("bench:old_outbox", sql=OLD_OUTBOX_TABLE)
    ch.command("bench:old_outbox_rows", params, sql=OLD_OUTBOX_ROWS)
    wait_for_merges(ch)

    clock = ManualClock(NOW)
    stamp = VersionStamp(clock)
    deliver = ch.role(DELIVER)  # as serve runs the pass
    compact_s, _ = timed(lambda: store.compact_outbox(deliver, clock()))
    due_seconds: list[float] = []  # the first due query of each pass

    def observe(name: str, seconds: float) -> None:
        if name == "conclusions/due_deliveries" and len(due_seconds) < len(pass_seconds) + 1:
            due_seconds.append(seconds)

    ch.add_observer(observe)
    pass_seconds: list[float] = []
    with Receiver(0.0) as receiver:
        url = f"http://127.0.0.1:{receiver.port}/analyze"
        settings = Settings(analyze_url=url, check_batch_limit=DUE_PER_PASS)
        with Sender(settings) as sender:
            for k in range(passes + 1):
                clock.advance(1)
                queue(ch, DUE_PER_PASS, f"h{history}-{k}-", stamp)
                if not k:
                    due_seconds.clear()
                seconds, report = timed(
                    lambda: run_delivery_pass(
                        deliver,
                        settings,
                        sender,
                        clock=clock,
                        stamp=stamp,
                        stopping=threading.Event(),
                    )
                )
                assert report.delivered == DUE_PER_PASS, report
                if k:  # the first pass warms the connection pool
                    pass_seconds.append(seconds)
                else:
                    due_seconds.clear()
    outbox_rows = ch.query_rows("bench:rows", sql="SELECT count() FROM delivery_outbox")[0][0]
    assert outbox_rows < history, "the history was not compacted away"
    old_seconds = []
    for _ in range(passes):
        seconds, _ = timed(lambda: ch.query_rows("bench:old_due", {"now": NOW}, sql=OLD_DUE_QUERY))
        old_seconds.append(seconds)
    return HistoryFigures(
        compact_s=compact_s,
        pass_ms=statistics.median(pass_seconds) * 1000,
        due_ms=statistics.median(due_seconds) * 1000,
        old_due_ms=statistics.median(old_seconds) * 1000,
        outbox_rows=int(outbox_rows),
    )


def run_history(sizes: list[int]) -> None:
    print(f"delivery pass vs history: {DUE_PER_PASS} new conclusions per pass, to 127.0.0.1")
    print(
        f"{'history':>10} {'compact s':>9} {'outbox rows':>11} {'pass ms':>8} {'due ms':>7} "
        f"{'old due ms':>10} {'old/ours due':>12}"
    )
    figures: dict[int, HistoryFigures] = {}
    with tempfile.TemporaryDirectory(prefix="ta-bench-history-") as tmp:
        for size in sizes:
            ch = connect(Settings(clickhouse_url=f"chdb://{Path(tmp) / str(size)}"))
            try:
                apply(ch)
                f = figures[size] = bench_history(ch, size)
            finally:
                ch.close()
            print(
                f"{size:>10,} {f.compact_s:>9.1f} {f.outbox_rows:>11,} {f.pass_ms:>8.1f} "
                f"{f.due_ms:>7.1f} "
                f"{f.old_due_ms:>10.1f} {f.old_due_ms / f.due_ms:>11.1f}x"
            )
    if len(sizes) > 1:
        small, large = figures[sizes[0]], figures[sizes[-1]]
        print(
            f"ours at {sizes[-1]:,} vs {sizes[0]:,} delivered conclusions of history: pass "
            f"{large.pass_ms / small.pass_ms:.2f}x, due query {large.due_ms / small.due_ms:.2f}x "
            f"(target: within 1.5x); old due query {large.old_due_ms / small.old_due_ms:.2f}x"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,10000000", help="observation counts")
    parser.add_argument("--deliveries", type=int, default=5000)
    parser.add_argument(
        "--receiver-delays-ms", default="0,10", help="receiver think time per request"
    )
    parser.add_argument("--history", default="100000,2000000", help="delivered conclusions")
    parser.add_argument(
        "--sections", default="detection,deliveries,history", help="which parts to run"
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    delays = [float(d) / 1000 for d in args.receiver_delays_ms.split(",")]
    sections = set(args.sections.split(","))
    if "history" in sections:
        run_history([int(h) for h in args.history.split(",")])
        print()
    if not sections & {"detection", "deliveries"}:
        return

    print(f"detection: median of 5 steady-state passes (interval {INTERVAL} s, idle {IDLE} s)")
    print(
        f"{'observations':>13} {'traces':>9} {'build s':>7} {'query ms':>8} {'pass ms':>8} "
        f"{'concl':>5} {'seed ms':>8} {'seed/query':>10} {'seed/pass':>9}"
    )
    figures: dict[int, DetectionFigures] = {}
    with tempfile.TemporaryDirectory(prefix="ta-bench-conclusions-") as tmp:
        for size in sizes:
            ch = connect(Settings(clickhouse_url=f"chdb://{Path(tmp) / str(size)}"))
            try:
                apply(ch)
                build_seconds, _ = timed(partial(build, ch, size))
                wait_for_merges(ch)
                f = figures[size] = bench_detection(ch)
                print(
                    f"{size:>13,} {size // PER_TRACE:>9,} {build_seconds:>7.1f} "
                    f"{f.query_ms:>8.1f} {f.pass_ms:>8.1f} {f.concluded:>5} {f.seed_ms:>8.1f} "
                    f"{f.seed_ms / f.query_ms:>9.0f}x {f.seed_ms / f.pass_ms:>8.0f}x"
                )
                if size == sizes[-1]:
                    print()
                    print(f"deliveries: ~{args.deliveries} conclusions to a receiver on 127.0.0.1")
                    print(f"{'receiver ms':>11} {'ours /s':>9} {'sequential /s':>14} {'ratio':>7}")
                    for delay in delays:
                        ours_rate, seq_rate = bench_delivery(ch, args.deliveries, delay)
                        print(
                            f"{delay * 1000:>11.0f} {ours_rate:>9.0f} {seq_rate:>14.0f} "
                            f"{ours_rate / seq_rate:>6.1f}x"
                        )
            finally:
                ch.close()
    if len(sizes) > 1:
        small, large = figures[sizes[0]], figures[sizes[-1]]
        print()
        print(
            f"ours at {sizes[-1]:,} vs {sizes[0]:,} observations: query "
            f"{large.query_ms / small.query_ms:.2f}x, pass {large.pass_ms / small.pass_ms:.2f}x "
            f"the time; seed {large.seed_ms / small.seed_ms:.2f}x"
        )


if __name__ == "__main__":
    main()
