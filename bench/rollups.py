"""Benchmark: rollup reads vs raw FINAL reads over HTTP, and what a rollup pass costs.

    python bench/rollups.py [--sizes 1000000,10000000] [--iterations 60] [--raw-iterations 6]
                            [--hour-rows 1000000] [--changed 1000]

Three parts, each on fresh embedded chDB data generated server-side (INSERT ... SELECT FROM
numbers), in one run:

1. **Connections.** chDB runs one statement at a time per connection; the service gives
   background jobs their own connection. This checks that a second clickhouse-connect client
   on the same chdb:// path answers while the first runs a ~1 s statement.
2. **Pass cost.** An hour holding `--hour-rows` observations and an empty hour, the ledger
   built; then, alternately, `--changed` new observations land in the full hour or in the
   empty one and one pass runs. Printed: median pass time for each and their ratio (the
   target: within 2x, i.e. the cost follows the change, not the bucket).
3. **Reads.** For each size (10 observations per trace, ~60 days), the ledger is built by
   the first pass, then `GET /v1/usage` and `GET /v1/latency` are timed through HTTP
   (uvicorn on 127.0.0.1, an httpx client) against the same requests with `source=raw`,
   while new observations keep landing (on their own connection) and a rollup pass runs
   every `--pass-interval` seconds on its own connection, as `serve` schedules it. Printed:
   p50 and p95 of both, and the raw/ours ratios (targets at 10M: p95 <= 20 ms and >= 30x).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import uvicorn

from service.api import create_app
from service.clickhouse import ClickHouse, connect
from service.clock import system_clock
from service.migrations import apply
from service.rollups import LedgerWriter, run_rollup_pass
from service.settings import Settings

PROJECT = "bench"
SPAN_DAYS = 60
BUILD_CHUNK = 5000

# Traces: ~60 days before `end`, environment from a small set.
TRACES_SQL = """
INSERT INTO traces
SELECT {project:String}, concat({prefix:String}, toString(number)),
       ['chat', 'rag', 'agent'][number % 3 + 1],
       {start:DateTime64(3, 'UTC')}
         + toIntervalMillisecond(intDiv(number * {span_ms:UInt64}, {traces:UInt64})),
       concat('u', toString(number % 1000)), concat('s', toString(number % 5000)),
       ['prod', 'staging', 'dev'][number % 3 + 1], [], map(), {ingested:DateTime64(6, 'UTC')}, 0
FROM numbers({traces:UInt64})
"""

# Observations: 10 per trace, seconds apart; durations log-spread 10 ms .. ~20 s; 2% orphans,
# 0.5% clock skew; several models, providers, types and names.
OBSERVATIONS_SQL = """
INSERT INTO observations
SELECT {project:String}, concat({prefix:String}, toString(t)),
       concat({prefix:String}, 'o', toString(number)), '',
       ['generation', 'span', 'tool'][number % 3 + 1],
       ['llm', 'retrieve', 'rerank', 'tool-call', 'embed', 'answer'][number % 6 + 1],
       st,
       multiIf(h % 50 = 0, NULL,
               h % 200 = 1, st - toIntervalMillisecond(5),
               st + toIntervalMillisecond(toUInt64(10 * exp((h % 1000) / 130.0)))),
       NULL,
       ['gpt-4o', 'gpt-4o-mini', 'claude-sonnet', 'claude-haiku', 'llama-70b'][t % 5 + 1],
       ['openai', 'openai', 'anthropic', 'anthropic', 'meta'][t % 5 + 1],
       h % 4000, h % 700, (h % 1000) / 100000.0, if(h % 97 = 0, 'error', 'ok'), map(),
       {ingested:DateTime64(6, 'UTC')}, 0
FROM
(
    SELECT number, intDiv(number, 10) AS t, cityHash64(number, {prefix:String}) AS h,
           {start:DateTime64(3, 'UTC')}
             + toIntervalMillisecond(intDiv(intDiv(number, 10) * {span_ms:UInt64}, {traces:UInt64}))
             + toIntervalSecond(number % 10) AS st
    FROM numbers({rows:UInt64})
)
"""

SLOW_STATEMENT = "SELECT sum(cityHash64(number)) FROM numbers(600000000)"


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def load(
    ch: ClickHouse,
    prefix: str,
    rows: int,
    start: datetime,
    span: timedelta,
    ingested: datetime | None = None,
) -> None:
    """`rows` observations in traces of 10, spread evenly over [start, start + span).

    History is stamped as ingested an hour ago; pass `ingested` for rows that just landed.
    """
    traces = max(1, rows // 10)
    params = {
        "project": PROJECT,
        "prefix": prefix,
        "start": start,
        "span_ms": int(span.total_seconds() * 1000),
        "traces": traces,
        "rows": rows,
        "ingested": ingested or datetime.now(UTC) - timedelta(hours=1),
    }
    for offset in range(0, rows, 1_000_000):
        count = min(1_000_000, rows - offset)
        block = {**params, "rows": count, "prefix": f"{prefix}{offset // 1_000_000}-"}
        block["traces"] = max(1, count // 10)
        ch.command("bench:traces", block, sql=TRACES_SQL)
        ch.command("bench:observations", block, sql=OBSERVATIONS_SQL)


def open_store(tmp: str, **overrides: Any) -> tuple[Settings, ClickHouse]:
    settings = Settings(
        clickhouse_url=f"chdb://{tmp}/data",
        scheduler_enabled=False,
        query_timeout_seconds=3600,
        log_level="WARNING",
        **overrides,
    )
    ch = connect(settings)
    apply(ch)
    return settings, ch


def check_connections() -> None:
    """SELECT 1 on a second client of the same chdb:// path while the first is busy."""
    with tempfile.TemporaryDirectory(prefix="ta-bench-conn-") as tmp:
        settings, busy = open_store(tmp)
        other = connect(settings)
        try:
            started = time.perf_counter()
            busy.query_rows("bench:slow", sql=SLOW_STATEMENT)
            alone = time.perf_counter() - started
            worker = threading.Thread(
                target=lambda: busy.query_rows("bench:slow", sql=SLOW_STATEMENT)
            )
            worker.start()
            time.sleep(0.05)
            samples = []
            while worker.is_alive():
                began = time.perf_counter()
                other.query_rows("bench:ping", sql="SELECT 1")
                samples.append((time.perf_counter() - began) * 1000)
                time.sleep(0.01)
            worker.join()
            print(
                f"connections: a {alone:.2f} s statement on one client; SELECT 1 on a second "
                f"client of the same path meanwhile: p50 {statistics.median(samples):.1f} ms, "
                f"max {max(samples):.1f} ms ({len(samples)} samples)"
            )
        finally:
            other.close()
            busy.close()


def pass_cost(hour_rows: int, changed: int, rounds: int) -> None:
    """A pass after `changed` new observations in a full hour vs in an empty hour."""
    with tempfile.TemporaryDirectory(prefix="ta-bench-pass-") as tmp:
        _, ch = open_store(tmp)
        try:
            full = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
            empty = full - timedelta(hours=5)
            started = time.perf_counter()
            load(ch, "full", hour_rows, full, timedelta(minutes=59))
            built = run_rollup_pass(ch, system_clock, chunk_traces=BUILD_CHUNK)
            print(
                f"\npass cost: {hour_rows:,} observations in one hour, ledger built in "
                f"{time.perf_counter() - started:.1f} s ({built.dirty_traces:,} traces)"
            )
            times: dict[str, list[float]] = {"full hour": [], "empty hour": []}
            for i in range(rounds):
                for label, hour in (("full hour", full), ("empty hour", empty)):
                    landed = datetime.now(UTC)
                    load(ch, f"c{i}{label[0]}", changed, hour, timedelta(minutes=59), landed)
                    # Nothing else writes here, so no safety lag: each pass sees only its own.
                    result = run_rollup_pass(ch, system_clock, safety_lag=timedelta(0))
                    times[label].append(result.seconds * 1000)
            full_ms = statistics.median(times["full hour"])
            empty_ms = statistics.median(times["empty hour"])
            print(
                f"pass after {changed:,} new observations ({changed // 10:,} traces), median of "
                f"{rounds}: full hour {full_ms:.0f} ms, empty hour {empty_ms:.0f} ms, "
                f"ratio {full_ms / empty_ms:.2f}x (target <= 2x)"
            )
        finally:
            ch.close()


class Trickle(threading.Thread):
    """New observations landing and a rollup pass every `interval` s, each on its own client."""

    def __init__(self, settings: Settings, interval: float, per_tick: int) -> None:
        super().__init__(daemon=True)
        self.writer = connect(settings)
        self.passer = connect(settings)
        self.interval = interval
        self.per_tick = per_tick
        self.stop = threading.Event()
        self.passes: list[float] = []
        self.ledger = LedgerWriter()

    def run(self) -> None:
        tick = 0
        while not self.stop.wait(self.interval):
            now = datetime.now(UTC)
            # Rows starting from now on: after every read window, so both paths agree.
            params = {
                "project": PROJECT,
                "prefix": f"live{tick}-",
                "start": now,
                "span_ms": 300_000,
                "traces": max(1, self.per_tick // 10),
                "rows": self.per_tick,
                "ingested": now,
            }
            self.writer.command("bench:traces", params, sql=TRACES_SQL)
            self.writer.command("bench:observations", params, sql=OBSERVATIONS_SQL)
            result = run_rollup_pass(self.passer, system_clock, writer=self.ledger)
            self.passes.append(result.seconds * 1000)
            tick += 1

    def close(self) -> None:
        self.stop.set()
        self.join()
        self.writer.close()
        self.passer.close()


def time_requests(
    client: httpx.Client, path: str, params: dict[str, str], iterations: int
) -> tuple[list[float], Any]:
    """Per-request wall times in ms and the last body."""
    body: Any = None
    samples: list[float] = []
    client.get(path, params=params)  # warm caches, as a dashboard would
    for _ in range(iterations):
        started = time.perf_counter()
        response = client.get(path, params=params)
        samples.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.text
        body = response.json()
    return samples, body


def serve(settings: Settings, ch: ClickHouse, port: int) -> Callable[[], None]:
    """The API on 127.0.0.1:`port` in a thread; returns its stop function."""
    app = create_app(settings, ch, clock=system_clock)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)

    def stop() -> None:
        server.should_exit = True
        thread.join()

    return stop


def reads(rows: int, iterations: int, raw_iterations: int, interval: float, port: int) -> None:
    with tempfile.TemporaryDirectory(prefix="ta-bench-rollups-") as tmp:
        settings, ch = open_store(tmp)
        try:
            # Read windows end at an hour boundary; the rows landing meanwhile start after it.
            now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
            started = time.perf_counter()
            load(ch, "t", rows, now - timedelta(days=SPAN_DAYS), timedelta(days=SPAN_DAYS))
            print(f"\n== {rows:,} observations ({rows // 10:,} traces, {SPAN_DAYS} days) ==")
            print(f"load:        {time.perf_counter() - started:8.1f} s")
            result = run_rollup_pass(ch, system_clock, chunk_traces=BUILD_CHUNK)
            print(
                f"first pass:  {result.seconds:8.1f} s ({result.dirty_traces:,} traces, "
                f"{result.chunks} chunks: the ledger built)"
            )
            for table in ("observations", "traces", "rollup_ledger"):
                ch.command("bench:optimize", sql=f"OPTIMIZE TABLE {table} FINAL")
            stop_server = serve(settings, ch, port)
            trickle = Trickle(settings, interval, per_tick=1000)
            trickle.start()
            window = {
                "project_id": PROJECT,
                "from": (now - timedelta(days=30)).isoformat(),
                "to": now.isoformat(),
                "granularity": "day",
            }
            requests = [
                ("/v1/usage 30d by model", "/v1/usage", {**window, "group_by": "model"}),
                ("/v1/latency 30d by name", "/v1/latency", {**window, "group_by": "name"}),
                ("/v1/latency 30d traces", "/v1/latency", {**window, "level": "trace"}),
                (
                    "/v1/usage 24h hourly",
                    "/v1/usage",
                    {
                        "project_id": PROJECT,
                        "from": (now - timedelta(days=2)).isoformat(),
                        "to": (now - timedelta(days=1)).isoformat(),
                        "group_by": "model",
                    },
                ),
            ]
            try:
                with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
                    print(
                        f"{'request (HTTP, pass running)':30} {'ours p50':>9} {'p95':>7} "
                        f"{'raw p50':>9} {'p95':>8} {'p50 x':>7} {'p95 x':>7}  same rows"
                    )
                    for label, path, params in requests:
                        ours, body = time_requests(client, path, params, iterations)
                        naive, raw_body = time_requests(
                            client, path, {**params, "source": "raw"}, raw_iterations
                        )
                        same = body["data"] == raw_body["data"]
                        print(
                            f"{label:30} {statistics.median(ours):7.1f}ms "
                            f"{percentile(ours, 0.95):5.1f}ms "
                            f"{statistics.median(naive):7.0f}ms {percentile(naive, 0.95):6.0f}ms "
                            f"{statistics.median(naive) / statistics.median(ours):6.0f}x "
                            f"{percentile(naive, 0.95) / percentile(ours, 0.95):6.0f}x  {same}"
                        )
            finally:
                trickle.close()
                stop_server()
            print(
                f"meanwhile: {len(trickle.passes)} passes every {interval:g} s, each after "
                f"1,000 new observations; pass p50 {statistics.median(trickle.passes):.0f} ms"
                if trickle.passes
                else "meanwhile: no pass completed"
            )
        finally:
            ch.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,10000000", help="observation counts")
    parser.add_argument("--iterations", type=int, default=60, help="rollup requests per case")
    parser.add_argument("--raw-iterations", type=int, default=6, help="raw requests per case")
    parser.add_argument("--hour-rows", type=int, default=1_000_000, help="rows in the full hour")
    parser.add_argument("--changed", type=int, default=1000, help="new observations per pass")
    parser.add_argument("--rounds", type=int, default=5, help="passes per hour in the cost test")
    parser.add_argument("--pass-interval", type=float, default=2.0, help="seconds between passes")
    parser.add_argument("--port", type=int, default=18792)
    parser.add_argument("--skip", default="", help="comma list of parts to skip: conn,pass,reads")
    args = parser.parse_args()
    skip = set(args.skip.split(","))
    if "conn" not in skip:
        check_connections()
    if "pass" not in skip:
        pass_cost(args.hour_rows, args.changed, args.rounds)
    if "reads" not in skip:
        for size in (int(s) for s in args.sizes.split(",") if s.strip()):
            reads(size, args.iterations, args.raw_iterations, args.pass_interval, args.port)


if __name__ == "__main__":
    main()
