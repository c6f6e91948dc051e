"""Backfills vs readers: chunked backfill jobs against one unchunked statement each.

Builds `--rows` observations (10 per trace, random-looking trace ids, spread over `--days`)
server-side with INSERT ... SELECT FROM numbers(), settles the parts, builds the rollup
ledger with one pass, serves the API on 127.0.0.1 from this process, and runs a reader
thread that loops over `GET /v1/usage` (the whole range, by model), `GET /v1/latency` (the
whole range, by name) and `GET /v1/traces/{id}` over HTTP. The rollup reads send
`Cache-Control: no-cache, no-store`, so every answer is computed (the service otherwise
keeps answers until the ledger changes). The backfills run on the `jobs` engine role, as
`serve` runs them (chDB runs one statement at a time per connection, several connections
of one process at once). For two backfills:

  rollups    the `rollups.backfill` job (`--traces-per-chunk` staged traces per chunk) over
             the consistent ledger (every chunk reads its traces and writes nothing), then
             over an emptied ledger, as on a database upgraded from the bucket design
             (every chunk writes), vs one statement bringing every trace up to date at once
  durations  the `durations.backfill` job (`--batch` concluded traces per chunk, key range)
             vs one INSERT ... SELECT computing every trace's trace_start..trace_end

it prints reader p50/p95 before (idle, full ledger), during, and after each, and each
way's rows/s. Both jobs pause `--pause` seconds between chunks, as `serve` and the CLI run
them. Same data, same process, same run. The default 1M observations take about five
minutes on a 2-core machine (10M: the rollup part alone takes over ten).

    python bench/backfill.py [--rows 1000000] [--days 30] [--traces-per-chunk 2000] [--batch 500]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import uvicorn

from bench.served import load_average, percentile
from service.api import create_app
from service.clickhouse import ClickHouse, connect
from service.clock import system_clock
from service.durations.catalog import save_definition
from service.durations.definitions import DurationSpec, parse_definition
from service.engine_roles import JOBS
from service.jobs.durations_backfill import KIND as DURATIONS
from service.jobs.durations_backfill import backfill_params
from service.jobs.kinds import default_kinds
from service.jobs.rollups_backfill import KIND as ROLLUPS
from service.jobs.rollups_backfill import rollup_backfill_params
from service.jobs.runner import RunOptions, run_job
from service.jobs.store import create_job
from service.migrations import apply
from service.rollups import rebuild_range, run_rollup_pass
from service.settings import Settings

T = TypeVar("T")
BASE = datetime(2026, 10, 1, tzinfo=UTC)
BLOCK = 1_000_000

# Synthetic data for the benchmark only (not a service query): 10 observations per trace,
# traces evenly spaced over the range, random-looking trace ids (as SDKs send: their key
# order has nothing to do with time), a mix of types and models, all ingested now.
GENERATE_OBSERVATIONS = """
INSERT INTO observations
SELECT
    'bench' AS project_id,
    lower(hex(cityHash64(intDiv(number, 10)))) AS trace_id,
    concat('o', toString(number)) AS id,
    '' AS parent_id,
    ['generation', 'span', 'tool', 'generation', 'event'][number % 5 + 1] AS type,
    ['llm', 'retrieve', 'search', 'llm', 'log'][number % 5 + 1] AS name,
    toDateTime64({base:DateTime64(3, 'UTC')}, 3, 'UTC')
        + toIntervalMillisecond(intDiv(number, 10) * {spacing_ms:UInt64} + (number % 10) * 200)
        AS start_time,
    start_time + toIntervalMillisecond(100 + number % 900) AS end_time,
    if(number % 5 IN (0, 3), start_time + toIntervalMillisecond(40), NULL)
        AS completion_start_time,
    if(number % 5 IN (0, 3), ['gpt-4o', 'claude-sonnet', 'gpt-4o-mini'][number % 3 + 1], '')
        AS model,
    if(number % 5 IN (0, 3), ['openai', 'anthropic', 'openai'][number % 3 + 1], '') AS provider,
    number % 500 AS input_tokens,
    number % 120 AS output_tokens,
    (number % 500) * 0.00001 AS cost,
    if(number % 97 = 0, 'error', 'ok') AS status,
    map() AS metadata,
    now64(6) AS ingested_at,
    0 AS is_deleted
FROM numbers({offset:UInt64}, {count:UInt64})
"""
GENERATE_TRACES = """
INSERT INTO traces
SELECT 'bench', lower(hex(cityHash64(number))), 'chat',
       toDateTime64({base:DateTime64(3, 'UTC')}, 3, 'UTC')
           + toIntervalMillisecond(number * {spacing_ms:UInt64}),
       '', '', 'production', [], map(), now64(6), 0
FROM numbers({count:UInt64})
"""
SAMPLE_TRACES = "SELECT id FROM traces LIMIT 2000"
# Rollup reads computed every time (the service keeps answers until the ledger changes,
# which a rollups backfill does every chunk): what the engine costs under the backfill.
COLD = {"Cache-Control": "no-cache, no-store"}
ENDPOINTS = ("usage", "latency", "trace")
# Every trace is concluded (revision 1): the registry a durations backfill pages through.
REGISTER_CONCLUDED = """
INSERT INTO duration_traces
SELECT project_id, id, 1, timestamp, now64(6) FROM traces
"""
# The naive durations backfill: one statement over all history for trace_start..trace_end.
NAIVE_DURATIONS = """
INSERT INTO trace_durations
    (project_id, trace_id, definition, definition_version, revision, trace_time, duration_ms,
     start_time, end_time, reason, skewed, computed_at, is_deleted)
SELECT project_id, trace_id, 'total', {version:UInt32}, 1, first_start,
       if(last_end IS NOT NULL AND last_end >= first_start,
          toFloat64(toUnixTimestamp64Milli(assumeNotNull(last_end))
                    - toUnixTimestamp64Milli(first_start)), NULL),
       first_start, last_end, '', 0, now64(6), 0
FROM
(
    SELECT project_id, trace_id, min(start_time) AS first_start, maxOrNull(end_time) AS last_end
    FROM observations FINAL
    GROUP BY project_id, trace_id
)
"""


def generate(ch: ClickHouse, rows: int, days: int) -> None:
    traces = max(rows // 10, 1)
    spacing_ms = max(int(days * 86_400_000 / traces), 1)
    params = {"base": BASE, "spacing_ms": spacing_ms}
    for offset in range(0, rows, BLOCK):
        count = min(BLOCK, rows - offset)
        ch.command(
            "bench:observations",
            {**params, "offset": offset, "count": count},
            sql=GENERATE_OBSERVATIONS,
        )
    ch.command("bench:traces", {**params, "count": traces}, sql=GENERATE_TRACES)


class Reader(threading.Thread):
    """Loops over the two read endpoints, recording each request's latency per phase."""

    def __init__(self, base_url: str, traces: list[str], days: int) -> None:
        super().__init__(daemon=True)
        self.client = httpx.Client(base_url=base_url, timeout=60)
        self.traces = traces
        self.usage = {
            "from": BASE.isoformat(),
            "to": (BASE + timedelta(days=days)).isoformat(),
            "granularity": "day",
            "group_by": "model",
            "project_id": "bench",
        }
        self.latency = {**self.usage, "group_by": "name"}
        self.phase: str | None = None
        self.requests: list[tuple[str, float, float]] = []
        self.windows: list[tuple[str, float, float]] = []
        self.stop = threading.Event()
        self.errors = 0

    def run(self) -> None:
        rng = random.Random(5)
        while not self.stop.is_set():
            if self.phase is None:
                time.sleep(0.01)
                continue
            trace_id = rng.choice(self.traces)
            calls: list[tuple[str, Callable[[], httpx.Response]]] = [
                (
                    "usage",
                    lambda: self.client.get("/v1/usage", params=self.usage, headers=COLD),
                ),
                (
                    "latency",
                    lambda: self.client.get("/v1/latency", params=self.latency, headers=COLD),
                ),
                (
                    "trace",
                    lambda t=trace_id: self.client.get(  # type: ignore[misc]
                        f"/v1/traces/{t}", params={"project_id": "bench"}
                    ),
                ),
            ]
            for endpoint, call in calls:
                started = time.perf_counter()
                response = call()
                self.requests.append((endpoint, started, time.perf_counter()))
                if response.status_code != 200:
                    self.errors += 1

    def measure(self, phase: str, work: Callable[[], T]) -> T:
        """Record reads while `work` runs; returns what it returns."""
        self.phase = phase
        began = time.perf_counter()
        try:
            return work()
        finally:
            self.windows.append((phase, began, time.perf_counter()))
            self.phase = None

    def samples(self) -> dict[str, dict[str, list[float]]]:
        """Latencies (ms) by phase and endpoint; a request belongs to the phase it overlapped
        most, so a read stuck behind a long statement counts where it was stuck."""
        out: dict[str, dict[str, list[float]]] = {}
        for endpoint, start, end in self.requests:
            overlaps = [(min(end, w1) - max(start, w0), name) for name, w0, w1 in self.windows]
            overlap, phase = max(overlaps)
            if overlap > 0:
                out.setdefault(phase, {}).setdefault(endpoint, []).append((end - start) * 1000)
        return out

    def idle(self, phase: str, seconds: float) -> None:
        """Record reads for `seconds` with nothing else running."""
        self.measure(phase, lambda: time.sleep(seconds))


def run_chunked(ch: ClickHouse, kind: str, params: dict[str, object], pause: float) -> float:
    """Run one backfill job to the end on `ch` (the jobs' own connection); returns rows/s."""
    job = create_job(ch, kind, "" if kind == ROLLUPS else "bench", params, system_clock())
    began = time.perf_counter()
    done = run_job(ch, job, default_kinds(), system_clock, RunOptions(pause_seconds=pause))
    assert done.status == "done", done.error
    return done.rows_processed / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--traces-per-chunk", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=500, help="traces per durations chunk")
    parser.add_argument(
        "--pause", type=float, default=0.2, help="seconds between chunks (serve's default)"
    )
    parser.add_argument(
        "--quiet-seconds", type=float, default=10.0, help="idle windows (twice this before)"
    )
    parser.add_argument("--port", type=int, default=18791)
    parser.add_argument(
        "--only", choices=("rollups", "durations"), help="run one of the two backfills"
    )
    args = parser.parse_args()

    rates: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="ta-bench-backfill-") as tmp:
        settings = Settings(
            clickhouse_url=f"chdb://{Path(tmp) / 'data'}",
            scheduler_enabled=False,
            log_level="WARNING",
            query_timeout_seconds=3600,
        )
        ch = connect(settings)
        try:
            apply(ch)
            started = time.perf_counter()
            generate(ch, args.rows, args.days)
            for table in ("observations", "traces"):
                ch.command("bench:optimize", sql=f"OPTIMIZE TABLE {table} FINAL")
            ch.command("bench:register", sql=REGISTER_CONCLUDED)
            total = parse_definition(
                DurationSpec, {"start": {"anchor": "trace_start"}, "end": {"anchor": "trace_end"}}
            )
            version = save_definition(ch, "bench", "total", total, system_clock()).version
            print(
                f"generated {args.rows:,} observations ({args.rows // 10:,} concluded traces) "
                f"over {args.days} days in {time.perf_counter() - started:.1f}s"
            )
            built = run_rollup_pass(ch, system_clock, chunk_traces=5000)
            print(
                f"ledger built by one pass in {built.seconds:.1f}s; load average {load_average()}"
            )

            app = create_app(settings, ch, clock=system_clock)
            server = uvicorn.Server(
                uvicorn.Config(app, host="127.0.0.1", port=args.port, log_level="warning")
            )
            serving = threading.Thread(target=server.run, daemon=True)
            serving.start()
            while not server.started:
                time.sleep(0.05)
            sample = [str(r[0]) for r in ch.query_rows("bench:sample", sql=SAMPLE_TRACES)]
            reader = Reader(f"http://127.0.0.1:{args.port}", sample, args.days)
            reader.start()
            reader.idle("before", 2 * args.quiet_seconds)

            # Backfills run on the `jobs` engine role, as `serve` runs them; the API reads on
            # its own connections (engine roles), so it waits for no backfill statement.
            jobs = ch.role(JOBS)
            if args.only != "durations":
                bench_rollups(jobs, reader, args, rates)
            if args.only != "rollups":
                bench_durations(jobs, reader, args, rates, version)
            reader.stop.set()
            reader.join()
            server.should_exit = True
            serving.join()
        finally:
            ch.close()
    report(reader, rates, args)


def bench_rollups(
    ch: ClickHouse, reader: Reader, args: argparse.Namespace, rates: dict[str, float]
) -> None:
    """The rollups backfill job over the consistent ledger, then over an emptied one (as
    after an upgrade), then one statement bringing every trace up to date at once (after
    emptying the ledger again)."""
    rollup_params = rollup_backfill_params(None, None, args.traces_per_chunk)
    rates["rollups chunked no-op"] = reader.measure(
        "rollups chunked no-op",
        lambda: run_chunked(ch, ROLLUPS, rollup_params, args.pause),
    )
    ch.command("bench:empty", sql="TRUNCATE TABLE rollup_ledger")
    rates["rollups chunked"] = reader.measure(
        "rollups chunked",
        lambda: run_chunked(ch, ROLLUPS, rollup_params, args.pause),
    )
    reader.idle("rollups after", args.quiet_seconds)
    ch.command("bench:empty", sql="TRUNCATE TABLE rollup_ledger")

    def rollups_unchunked() -> float:
        began = time.perf_counter()
        traces = rebuild_range(ch, None, None, size=args.rows)
        return float(traces) / (time.perf_counter() - began)

    rates["rollups unchunked"] = reader.measure("rollups unchunked", rollups_unchunked)
    reader.idle("rollups after unchunked", args.quiet_seconds)


def bench_durations(
    ch: ClickHouse,
    reader: Reader,
    args: argparse.Namespace,
    rates: dict[str, float],
    version: int,
) -> None:
    """The durations backfill job, then one unchunked INSERT ... SELECT of every trace."""
    duration_params = backfill_params("total", args.batch)
    rates["durations chunked"] = reader.measure(
        "durations chunked",
        lambda: run_chunked(ch, DURATIONS, duration_params, args.pause),
    )
    reader.idle("durations after", args.quiet_seconds)

    def durations_unchunked() -> float:
        began = time.perf_counter()
        ch.command("bench:naive", {"version": version}, sql=NAIVE_DURATIONS)
        return float(args.rows // 10) / (time.perf_counter() - began)

    rates["durations unchunked"] = reader.measure("durations unchunked", durations_unchunked)
    reader.idle("durations after unchunked", args.quiet_seconds)


def report(reader: Reader, rates: dict[str, float], args: argparse.Namespace) -> None:
    print()
    print(f"reader: GET /v1/usage (30 d by model) and /v1/latency (30 d by name) with {COLD},")
    print("and GET /v1/traces/{id}, in a loop through HTTP; load average: " + load_average())
    print(f"{'phase':<27}{'endpoint':<9}{'reads':>7}{'p50 ms':>9}{'p95 ms':>9}{'p95/before':>12}")
    samples = reader.samples()
    before = {e: percentile(samples["before"][e], 0.95) for e in ENDPOINTS}
    for phase, by_endpoint in samples.items():
        for endpoint in ENDPOINTS:
            values = by_endpoint.get(endpoint)
            if not values:
                continue
            p95 = percentile(values, 0.95)
            print(
                f"{phase:<27}{endpoint:<9}{len(values):>7}{percentile(values, 0.5):>9.1f}"
                f"{p95:>9.1f}{p95 / before[endpoint]:>11.2f}x"
            )
    print(f"reader errors: {reader.errors}")
    print()
    units = {"rollups": "traces/s", "durations": "traces/s"}
    for name, rate in rates.items():
        kind = name.split()[0]
        if "unchunked" in name:
            how = "one statement for everything"
        elif kind == "rollups":
            how = f"{args.traces_per_chunk} traces/chunk, {args.pause}s pauses"
        else:
            how = f"{args.batch} traces/chunk, {args.pause}s pauses"
        print(f"{name + ' (' + how + ')':<58}{rate:>12,.0f} {units[kind]}")
    print("target: reader p95 during a chunked backfill <= 2x before")


if __name__ == "__main__":
    main()
