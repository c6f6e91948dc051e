"""API reads while a heavy background statement loops: one shared connection vs engine roles.

Embedded chDB runs one statement at a time per connection. Before engine roles, the API and
the scheduled jobs shared one connection, so every read queued behind whatever background
statement was running. This builds `--rows` observations, runs a rollup pass, serves the API
over HTTP on 127.0.0.1 from this process, and measures `GET /v1/usage` and
`GET /v1/traces/{id}` latency through HTTP in three phases of `--seconds` each:

  idle     nothing else runs
  shared   a heavy statement loops on the API's own connection (an engine opened with
           TA_API_CONNECTIONS=1, the heavy loop on its `api` role): the old single connection
  roles    the same loop on the `rollups` role, the API on its own pool (the default, 4)

The heavy statement is synthetic (`--heavy-rows` hashed numbers, about a second here), as
long as a rollup pass's or a backfill chunk's biggest statement, repeated with a `--gap`
pause (TA_BACKFILL_PAUSE_SECONDS' default). Same data, same process,
same run; it prints p50/p95/p99 per phase and the shared/roles ratio at p95.

    python bench/connections.py [--rows 500000] [--seconds 20] [--heavy-rows 30000000]
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import uvicorn
from starlette.applications import Starlette

from bench.backfill import GENERATE_TRACES, SAMPLE_TRACES
from bench.served import percentile
from service.api import create_app
from service.clickhouse import ClickHouse, connect
from service.clock import system_clock
from service.engine_roles import API, ROLLUPS
from service.migrations import apply
from service.rollups import run_rollup_pass
from service.settings import Settings

BASE = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=2)

# Synthetic data for the benchmark only (not a service query): 10 observations per trace over
# two days, random-looking trace ids, a mix of types and models.
GENERATE_OBSERVATIONS = """
INSERT INTO observations
SELECT 'bench', lower(hex(cityHash64(intDiv(number, 10)))), concat('o', toString(number)), '',
    ['generation', 'span', 'tool', 'generation', 'event'][number % 5 + 1],
    ['llm', 'retrieve', 'search', 'llm', 'log'][number % 5 + 1],
    toDateTime64({base:DateTime64(3, 'UTC')}, 3, 'UTC')
        + toIntervalMillisecond(intDiv(number, 10) * {spacing_ms:UInt64} + (number % 10) * 200)
        AS start_time,
    start_time + toIntervalMillisecond(100 + number % 900), NULL,
    if(number % 5 IN (0, 3), ['gpt-4o', 'claude-sonnet', 'gpt-4o-mini'][number % 3 + 1], ''),
    if(number % 5 IN (0, 3), ['openai', 'anthropic', 'openai'][number % 3 + 1], ''),
    number % 500, number % 120, (number % 500) * 0.00001, if(number % 97 = 0, 'error', 'ok'),
    map(), now64(6), 0
FROM numbers({count:UInt64})
"""
# The synthetic background statement: CPU-bound, about as long as a large rollup statement.
HEAVY = "SELECT sum(sipHash64(number)) FROM numbers({rows:UInt64})"


def serve(app: Starlette, port: int) -> tuple[uvicorn.Server, threading.Thread]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return server, thread


def read_for(base_url: str, traces: list[str], seconds: float) -> dict[str, list[float]]:
    """Latencies (ms) of the two read endpoints, alternating, for `seconds`."""
    rng = random.Random(11)
    usage = {
        "from": BASE.isoformat(),
        "to": (BASE + timedelta(days=2)).isoformat(),
        "group_by": "model",
        "project_id": "bench",
    }
    out: dict[str, list[float]] = {"usage": [], "trace": []}
    with httpx.Client(base_url=base_url, timeout=120) as client:
        calls: dict[str, Callable[[], httpx.Response]] = {
            "usage": lambda: client.get("/v1/usage", params=usage),
            "trace": lambda: client.get(
                f"/v1/traces/{rng.choice(traces)}", params={"project_id": "bench"}
            ),
        }
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            for endpoint, call in calls.items():
                started = time.perf_counter()
                response = call()
                out[endpoint].append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200, response.text
    return out


class HeavyLoop(threading.Thread):
    """Runs the heavy statement on one engine, back to back, until stopped."""

    def __init__(self, engine: ClickHouse, rows: int, gap: float) -> None:
        super().__init__(daemon=True)
        self.engine = engine
        self.rows = rows
        self.gap = gap
        self.stop = threading.Event()
        self.durations: list[float] = []

    def run(self) -> None:
        while not self.stop.is_set():
            started = time.perf_counter()
            self.engine.query_rows("bench:heavy", {"rows": self.rows}, sql=HEAVY)
            self.durations.append(time.perf_counter() - started)
            self.stop.wait(self.gap)


def with_heavy_loop(
    engine: ClickHouse, args: argparse.Namespace, measure: Callable[[], dict[str, list[float]]]
) -> tuple[dict[str, list[float]], list[float]]:
    loop = HeavyLoop(engine, args.heavy_rows, args.gap)
    loop.start()
    time.sleep(0.5)  # the first heavy statement is in flight before reads start
    try:
        return measure(), loop.durations
    finally:
        loop.stop.set()
        loop.join()


def select_one_behind_heavy(busy: ClickHouse, other: ClickHouse, rows: int) -> float:
    """ms a `SELECT 1` on `other` takes while `busy` runs one heavy statement."""
    heavy = threading.Thread(
        target=busy.query_rows, args=("bench:heavy", {"rows": rows}), kwargs={"sql": HEAVY}
    )
    heavy.start()
    time.sleep(0.2)
    started = time.perf_counter()
    other.query_rows("bench:one", sql="SELECT 1")
    elapsed = (time.perf_counter() - started) * 1000
    heavy.join()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--seconds", type=float, default=20.0, help="per phase")
    parser.add_argument("--heavy-rows", type=int, default=30_000_000)
    parser.add_argument(
        "--gap",
        type=float,
        default=0.2,
        help="seconds between heavy statements (a backfill's pause)",
    )
    parser.add_argument("--port", type=int, default=18795)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="ta-bench-connections-") as tmp:
        settings = Settings(
            clickhouse_url=f"chdb://{Path(tmp) / 'data'}",
            scheduler_enabled=False,
            log_level="WARNING",
            query_timeout_seconds=600,
        )
        ch = connect(settings)
        # A second engine on the same directory whose API has one connection: the old shape.
        single = connect(settings.model_copy(update={"api_connections": 1}))
        try:
            apply(ch)
            traces = max(args.rows // 10, 1)
            params = {"base": BASE, "spacing_ms": max(2 * 86_400_000 // traces, 1)}
            ch.command("bench:obs", {**params, "count": args.rows}, sql=GENERATE_OBSERVATIONS)
            ch.command("bench:traces", {**params, "count": traces}, sql=GENERATE_TRACES)
            run_rollup_pass(ch.role(ROLLUPS), system_clock)
            sample = [str(r[0]) for r in ch.query_rows("bench:sample", sql=SAMPLE_TRACES)]
            started = time.perf_counter()
            ch.query_rows("bench:heavy", {"rows": args.heavy_rows}, sql=HEAVY)
            heavy_alone = time.perf_counter() - started
            print(
                f"{args.rows:,} observations, {traces:,} traces; heavy statement alone: "
                f"{heavy_alone:.2f}s; {args.seconds:g}s per phase"
            )
            # The engine-level claim first: a second connection on the same directory is not
            # blocked by the first one's statement.
            same = select_one_behind_heavy(ch.role(ROLLUPS), ch.role(ROLLUPS), args.heavy_rows)
            other = select_one_behind_heavy(ch.role(ROLLUPS), ch.role(API), args.heavy_rows)
            print(
                f"SELECT 1 behind a heavy statement: same connection {same:.0f} ms, "
                f"another connection {other:.1f} ms ({same / other:.0f}x)"
            )

            roles_server, roles_thread = serve(create_app(settings, ch), args.port)
            single_server, single_thread = serve(create_app(settings, single), args.port + 1)
            roles_url = f"http://127.0.0.1:{args.port}"
            single_url = f"http://127.0.0.1:{args.port + 1}"

            results: dict[str, dict[str, list[float]]] = {}
            heavy: dict[str, list[float]] = {}
            results["idle"] = read_for(roles_url, sample, args.seconds)
            results["shared"], heavy["shared"] = with_heavy_loop(
                single.role(API),
                args,
                lambda: read_for(single_url, sample, args.seconds),
            )
            results["roles"], heavy["roles"] = with_heavy_loop(
                ch.role(ROLLUPS),
                args,
                lambda: read_for(roles_url, sample, args.seconds),
            )
            for server in (roles_server, single_server):
                server.should_exit = True
            roles_thread.join()
            single_thread.join()
        finally:
            single.close()
            ch.close()
    report(results, heavy)


def report(results: dict[str, dict[str, list[float]]], heavy: dict[str, list[float]]) -> None:
    print()
    print(f"{'phase':<8} {'endpoint':<8} {'reads':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}")
    for phase, by_endpoint in results.items():
        for endpoint, values in by_endpoint.items():
            print(
                f"{phase:<8} {endpoint:<8} {len(values):>6} {percentile(values, 0.5):>8.1f} "
                f"{percentile(values, 0.95):>8.1f} {percentile(values, 0.99):>8.1f}"
            )
    for phase, durations in heavy.items():
        print(f"heavy statements during {phase}: {len(durations)} (last took {durations[-1]:.2f}s)")
    print()
    for endpoint in ("usage", "trace"):
        idle = percentile(results["idle"][endpoint], 0.95)
        shared = percentile(results["shared"][endpoint], 0.95)
        roles = percentile(results["roles"][endpoint], 0.95)
        print(
            f"{endpoint}: p95 shared {shared:.1f} ms vs roles {roles:.1f} ms: "
            f"{shared / roles:.1f}x faster with roles; roles vs idle {roles / idle:.2f}x"
        )


if __name__ == "__main__":
    main()
