"""Benchmark: /v1/usage and /v1/latency from the rollups vs from raw rows, same data, same run.

    python bench/rollups.py [--sizes 1000000,10000000] [--iterations 40] [--raw-iterations 5]

For each size it writes N observations (10 per trace, ~60 days, several models and names)
server-side into a fresh embedded chDB directory, runs the first rollup pass (the backfill),
then times the two read APIs through the ASGI app (Starlette TestClient) against the same
requests with `source=raw`, checks both return the same rows, and times one incremental
pass after 10k new observations land in the current hour.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from starlette.testclient import TestClient

from service.api import create_app
from service.clickhouse import ClickHouse, connect
from service.clock import system_clock
from service.migrations import apply
from service.rollups import run_rollup_pass
from service.settings import Settings

PROJECT = "bench"
SPAN_DAYS = 60

# Traces: ~60 days before `end`, environment from a small set.
TRACES_SQL = """
INSERT INTO traces
SELECT {project:String}, concat('t', toString(number)), ['chat', 'rag', 'agent'][number % 3 + 1],
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
SELECT {project:String}, concat('t', toString(t)), concat('o', toString(number)), '',
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
    SELECT number, intDiv(number, 10) AS t, cityHash64(number) AS h,
           {start:DateTime64(3, 'UTC')}
             + toIntervalMillisecond(intDiv(intDiv(number, 10) * {span_ms:UInt64}, {traces:UInt64}))
             + toIntervalSecond(number % 10) AS st
    FROM numbers({rows:UInt64})
)
"""

# 10k new observations in the current hour, on 1,000 new traces.
FRESH_SQL = """
INSERT INTO observations
SELECT {project:String}, concat('fresh', toString(intDiv(number, 10))),
       concat('f', toString(number)), '',
       'generation', 'llm', {now:DateTime64(3, 'UTC')} - toIntervalMillisecond(number),
       {now:DateTime64(3, 'UTC')} - toIntervalMillisecond(number) + toIntervalMillisecond(800),
       NULL, 'gpt-4o', 'openai', 100, 20, 0.001, 'ok', map(), {ingested:DateTime64(6, 'UTC')}, 0
FROM numbers(10000)
"""


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def time_requests(
    client: TestClient, path: str, params: dict[str, str], iterations: int
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


def load(ch: ClickHouse, rows: int, end: datetime) -> None:
    traces = max(1, rows // 10)
    params = {
        "project": PROJECT,
        "start": end - timedelta(days=SPAN_DAYS),
        "span_ms": SPAN_DAYS * 86_400_000,
        "traces": traces,
        "rows": rows,
        # Ingested an hour ago: the backfill pass's watermark covers all of it.
        "ingested": datetime.now(UTC) - timedelta(hours=1),
    }
    ch.command("bench:traces", params, sql=TRACES_SQL)
    ch.command("bench:observations", params, sql=OBSERVATIONS_SQL)


def run_size(rows: int, iterations: int, raw_iterations: int) -> None:
    with tempfile.TemporaryDirectory(prefix="ta-bench-rollups-") as tmp:
        settings = Settings(clickhouse_url=f"chdb://{tmp}/data", scheduler_enabled=False)
        ch = connect(settings)
        try:
            apply(ch)
            now = datetime.now(UTC)
            started = time.perf_counter()
            load(ch, rows, now)
            print(f"\n== {rows:,} observations ({rows // 10:,} traces, {SPAN_DAYS} days) ==")
            print(f"load:                 {time.perf_counter() - started:8.1f} s")
            result = run_rollup_pass(ch, system_clock)
            print(
                f"backfill pass:        {result.seconds:8.1f} s "
                f"({len(result.buckets)} buckets, {result.dirty_traces:,} traces)"
            )
            app = create_app(settings, ch)
            window = {
                "project_id": PROJECT,
                "from": (now - timedelta(days=30)).isoformat(),
                "to": now.isoformat(),
                "granularity": "day",
            }
            requests = [
                ("/v1/usage  30d by model", "/v1/usage", {**window, "group_by": "model"}),
                (
                    "/v1/latency 30d by name",
                    "/v1/latency",
                    {**window, "group_by": "name", "level": "observation"},
                ),
                ("/v1/latency 30d traces", "/v1/latency", {**window, "level": "trace"}),
            ]
            with TestClient(app) as client:
                print(
                    f"{'request':26} {'rollup p50':>11} {'p95':>8} "
                    f"{'raw p50':>10} {'p95':>9} {'ratio p50':>10}  same rows"
                )
                for label, path, params in requests:
                    ours, body = time_requests(client, path, params, iterations)
                    naive, raw_body = time_requests(
                        client, path, {**params, "source": "raw"}, raw_iterations
                    )
                    same = (
                        body["data"] == raw_body["data"]
                        if path == "/v1/latency"
                        else (_same_usage(body["data"], raw_body["data"]))
                    )
                    print(
                        f"{label:26} {statistics.median(ours):9.2f}ms "
                        f"{percentile(ours, 0.95):6.2f}ms "
                        f"{statistics.median(naive):8.1f}ms {percentile(naive, 0.95):7.1f}ms "
                        f"{statistics.median(naive) / statistics.median(ours):9.0f}x  {same}"
                    )
            fresh_at = datetime.now(UTC)
            ch.command(
                "bench:fresh",
                {"project": PROJECT, "now": fresh_at, "ingested": fresh_at},
                sql=FRESH_SQL,
            )
            incremental = run_rollup_pass(ch, system_clock)
            print(
                f"pass after 10k new rows in the current hour: {incremental.seconds * 1000:.0f} ms "
                f"({len(incremental.buckets)} bucket(s), {incremental.dirty_traces:,} traces)"
            )
        finally:
            ch.close()


def _same_usage(ours: list[dict[str, Any]], raw: list[dict[str, Any]]) -> bool:
    if len(ours) != len(raw):
        return False
    for a, b in zip(ours, raw, strict=True):
        if {**a, "cost": 0} != {**b, "cost": 0} or abs(a["cost"] - b["cost"]) > 1e-6 * max(
            1.0, abs(b["cost"])
        ):
            return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,10000000", help="observation counts")
    parser.add_argument("--iterations", type=int, default=40, help="rollup requests per case")
    parser.add_argument("--raw-iterations", type=int, default=5, help="raw requests per case")
    args = parser.parse_args()
    for size in (int(s) for s in args.sizes.split(",") if s.strip()):
        run_size(size, args.iterations, args.raw_iterations)


if __name__ == "__main__":
    main()
