"""Benchmark: rollup reads vs raw FINAL reads over HTTP, and what a rollup pass costs.

    python bench/rollups.py [--sizes 1000000,10000000] [--seconds 45] [--iterations 60]
                            [--raw-iterations 6] [--hour-rows 1000000] [--changed 1000]
                            [--keep DIR] [--skip conn,pass,reads]

Three parts, each on fresh embedded chDB data generated server-side (INSERT ... SELECT FROM
numbers), in one run:

1. **Connections.** chDB runs one statement at a time per connection; the service gives
   background jobs their own connection. This checks that a second clickhouse-connect client
   on the same chdb:// path answers while the first runs a ~1 s statement.
2. **Pass cost.** An hour holding `--hour-rows` observations and an empty hour, the ledger
   built; then, alternately, `--changed` new observations land in the full hour or in the
   empty one and one pass runs. Printed: median pass time for each and their ratio (the
   target: within 2x, i.e. the cost follows the change, not the bucket).
3. **Reads.** For each size (10 observations per trace, 60 days), the ledger is built by the
   first pass, then a real `trace-analytics serve` process runs on the directory with every
   setting at its default — the scheduler runs rollup passes every 30 s, detection every
   10 s, delivery and jobs — while 1,000 new observations arrive through `POST /v1/ingest`
   every 2 s. The generated history counts as concluded (the detector's cursor starts after
   it), as in a deployment that has been running. Four reads are timed through HTTP (httpx
   over TCP) for `--seconds` each (at least `--iterations` pairs, so each spans passes):
   * cold: `Cache-Control: no-cache, no-store`, the answer computed every time (what the
     engine costs; the same path as with TA_ROLLUP_READ_CACHE_MB=0);
   * warm: the request as a dashboard sends it, alternating with the cold one; answers are
     kept until the ledger or watermark changes, so these miss once after every pass or
     merge (the `hits` column counts the ones served from the cache);
   * raw: the same request with `source=raw` (FINAL over raw rows), `--raw-iterations` times.
   Printed: p50/p95 of each, the raw/ours ratios, whether rollup and raw rows agree, and
   the targets at each size (p95 <= 20 ms and >= 30x at p95), for cold and warm apart.

`--keep DIR` builds the read data under DIR and reuses it on later runs of the same size.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from bench.served import load_average, percentile, serve
from service.clickhouse import ClickHouse, connect
from service.clock import VersionStamp, system_clock
from service.conclusions import store
from service.migrations import apply
from service.rollups import run_rollup_pass
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
    """New observations landing through `POST /v1/ingest` every `interval` s (100 traces).

    They start after every read window, so the rollup and raw answers stay comparable; the
    service's own scheduler picks them up at its default interval.
    """

    def __init__(self, url: str, interval: float, per_tick: int = 1000) -> None:
        super().__init__(daemon=True)
        self.client = httpx.Client(base_url=url, timeout=60)
        self.interval = interval
        self.per_tick = per_tick
        self.stop = threading.Event()
        self.sent = 0

    def run(self) -> None:
        tick = 0
        while not self.stop.wait(self.interval):
            now = datetime.now(UTC)
            traces = [f"live{tick}-{i}" for i in range(self.per_tick // 10)]
            body = {
                "traces": [
                    {"id": t, "name": "chat", "timestamp": now.isoformat(), "environment": "prod"}
                    for t in traces
                ],
                "observations": [
                    {
                        "id": f"{t}-o{j}",
                        "trace_id": t,
                        "type": "generation",
                        "name": "llm",
                        "start_time": (now + timedelta(seconds=j)).isoformat(),
                        "end_time": (
                            now + timedelta(seconds=j, milliseconds=40 * j + 5)
                        ).isoformat(),
                        "model": "gpt-4o",
                        "provider": "openai",
                        "input_tokens": 100,
                        "output_tokens": 20,
                        "cost": 0.01,
                    }
                    for t in traces
                    for j in range(10)
                ],
            }
            response = self.client.post("/v1/ingest", json=body, params={"project_id": PROJECT})
            if response.status_code == 202:
                self.sent += self.per_tick
            tick += 1

    def close(self) -> None:
        self.stop.set()
        self.join()
        self.client.close()


# A cold request has its answer computed and does not keep it, so the warm requests between
# them meet the cache as a dashboard would: missing once after every change of the ledger.
NO_CACHE = {"Cache-Control": "no-cache, no-store"}


def timed(
    client: httpx.Client, path: str, params: dict[str, str], **headers: str
) -> tuple[float, Any]:
    """One request's wall time in ms and its body."""
    started = time.perf_counter()
    response = client.get(path, params=params, headers=headers)
    elapsed = (time.perf_counter() - started) * 1000
    assert response.status_code == 200, response.text
    return elapsed, response.json()


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of metric `name` carrying `labels` in a Prometheus text page."""
    total = 0.0
    wanted = [f'{key}="{value}"' for key, value in labels.items()]
    for line in text.splitlines():
        if (line.startswith(name + " ") or line.startswith(name + "{")) and all(
            label in line for label in wanted
        ):
            total += float(line.rsplit(" ", 1)[1])
    return total


def outcomes(client: httpx.Client) -> dict[str, float]:
    """The service's rollup read cache outcomes so far (hit, miss, refresh)."""
    page = client.get("/metrics").text
    return {
        outcome: metric(page, "ta_rollup_read_cache_total", outcome=outcome)
        for outcome in ("hit", "miss", "refresh")
    }


@dataclass
class Case:
    """One request's timings: cold (Cache-Control: no-cache), warm (as a dashboard asks), raw."""

    label: str
    cold: list[float] = field(default_factory=list)
    warm: list[float] = field(default_factory=list)
    raw: list[float] = field(default_factory=list)
    warm_hits: float = 0.0
    same: bool = False

    def p95(self, which: str) -> float:
        return percentile(getattr(self, which), 0.95)

    def p50(self, which: str) -> float:
        return statistics.median(getattr(self, which))

    def line(self) -> str:
        hit_share = 100 * self.warm_hits / len(self.warm)
        return (
            f"{self.label:26} {self.p50('cold'):6.1f} {self.p95('cold'):6.1f} "
            f"{self.p50('warm'):7.1f} {self.p95('warm'):6.1f} {hit_share:5.0f}% "
            f"{self.p50('raw'):7.0f} {self.p95('raw'):6.0f} "
            f"{self.p50('raw') / self.p50('cold'):7.0f}x "
            f"{self.p95('raw') / self.p95('cold'):5.0f}x "
            f"{self.p95('raw') / self.p95('warm'):7.0f}x  {self.same}"
        )


HEADER = (
    f"{'request (HTTP, scheduler on)':26} {'cold':>6} {'':>6} {'warm':>7} {'':>6} {'hits':>6} "
    f"{'raw':>7} {'':>6} {'raw/cold':>8} {'':>6} {'raw/warm':>8}  same\n"
    f"{'':26} {'p50':>6} {'p95':>6} {'p50':>7} {'p95':>6} {'':>6} {'p50':>7} {'p95':>6} "
    f"{'p50':>8} {'p95':>6} {'p95':>8}  rows"
)


def measure(
    client: httpx.Client,
    label: str,
    path: str,
    params: dict[str, str],
    *,
    seconds: float,
    minimum: int,
    raw_iterations: int,
) -> Case:
    """Pairs of (cold, warm) requests 50 ms apart for `seconds` (at least `minimum` pairs),
    then `raw_iterations` raw ones; all in ms."""
    case = Case(label)
    timed(client, path, params)  # the first answer is computed; dashboards ask again
    before = outcomes(client)
    deadline = time.monotonic() + seconds
    ours: Any = None
    while len(case.cold) < minimum or time.monotonic() < deadline:
        elapsed, ours = timed(client, path, params, **NO_CACHE)
        case.cold.append(elapsed)
        case.warm.append(timed(client, path, params)[0])
        time.sleep(0.05)
    case.warm_hits = outcomes(client)["hit"] - before["hit"]
    raw_body: Any = None
    for _ in range(raw_iterations):
        elapsed, raw_body = timed(client, path, {**params, "source": "raw"})
        case.raw.append(elapsed)
    case.same = same_rows(ours["data"], raw_body["data"])
    return case


def same_rows(ours: list[dict[str, Any]], raw: list[dict[str, Any]]) -> bool:
    """Equal rows; costs are float sums the two paths add in another order."""
    if len(ours) != len(raw):
        return False
    for a, b in zip(ours, raw, strict=True):
        if {k: v for k, v in a.items() if k != "cost"} != {
            k: v for k, v in b.items() if k != "cost"
        }:
            return False
        if "cost" in a and abs(a["cost"] - b["cost"]) > 1e-9 * max(1.0, abs(b["cost"])):
            return False
    return True


def build(data: Path, rows: int) -> datetime:
    """`rows` observations over SPAN_DAYS ending at the last whole hour, the ledger built by
    the first pass, parts merged; returns that end. Reuses `data` built earlier for `rows`."""
    stamp = data.parent / f"built-{rows}.txt"
    if stamp.exists():
        end = datetime.fromisoformat(stamp.read_text().strip())
        print(f"\n== {rows:,} observations: reusing {data} (built for {end.isoformat()}) ==")
        return end
    _, ch = open_store(str(data.parent))
    try:
        end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        started = time.perf_counter()
        load(ch, "t", rows, end - timedelta(days=SPAN_DAYS), timedelta(days=SPAN_DAYS))
        print(f"\n== {rows:,} observations ({rows // 10:,} traces, {SPAN_DAYS} days) ==")
        print(f"load:        {time.perf_counter() - started:8.1f} s")
        result = run_rollup_pass(ch, system_clock, chunk_traces=BUILD_CHUNK)
        print(
            f"first pass:  {result.seconds:8.1f} s ({result.dirty_traces:,} traces, "
            f"{result.chunks} chunks: the ledger built)"
        )
        for table in ("observations", "traces", "rollup_ledger"):
            ch.command("bench:optimize", sql=f"OPTIMIZE TABLE {table} FINAL")
    finally:
        ch.close()
    stamp.write_text(end.isoformat())
    return end


def settle(data: Path) -> None:
    """Start the detector after the generated history, as in a deployment that has been
    running: the history counts as concluded long ago, and detection concludes what the
    trickle adds (without this, `serve` would spend the whole run concluding 10% of the
    history per minute, a catch-up after a bulk import, not the steady state measured)."""
    settings = Settings(clickhouse_url=f"chdb://{data}", log_level="WARNING")
    ch = connect(settings)
    try:
        store.write_cursor(ch, 1, 0, datetime.now(UTC), VersionStamp(system_clock))
    finally:
        ch.close()


def reads(
    rows: int, seconds: float, minimum: int, raw_iterations: int, keep: Path | None
) -> list[Case]:
    """Rollup reads vs raw FINAL reads through HTTP against `serve` at its defaults."""
    with tempfile.TemporaryDirectory(prefix="ta-bench-rollups-") as tmp:
        root = keep / f"rows-{rows}" if keep else Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        end = build(root / "data", rows)
        settle(root / "data")
        window = {
            "project_id": PROJECT,
            "from": (end - timedelta(days=30)).isoformat(),
            "to": end.isoformat(),
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
                    "from": (end - timedelta(days=2)).isoformat(),
                    "to": (end - timedelta(days=1)).isoformat(),
                    "group_by": "model",
                },
            ),
        ]
        print(f"load average before: {load_average()}")
        cases: list[Case] = []
        with serve(root / "data") as served:
            trickle = Trickle(served.url, interval=2.0)
            trickle.start()
            client = httpx.Client(base_url=served.url, timeout=120)
            before = client.get("/metrics").text
            began = time.perf_counter()
            try:
                print(HEADER)
                for label, path, params in requests:
                    case = measure(
                        client,
                        label,
                        path,
                        params,
                        seconds=seconds,
                        minimum=minimum,
                        raw_iterations=raw_iterations,
                    )
                    print(case.line())
                    cases.append(case)
            finally:
                elapsed = time.perf_counter() - began
                after = client.get("/metrics").text
                client.close()
                trickle.close()
        passes = metric(after, "ta_rollup_pass_duration_seconds_count") - metric(
            before, "ta_rollup_pass_duration_seconds_count"
        )
        print(
            f"meanwhile ({elapsed:.0f} s): {trickle.sent:,} observations ingested through "
            f"POST /v1/ingest, {passes:.0f} scheduled rollup passes (every 30 s), detection "
            f"and delivery at their defaults; load average after: {load_average()}"
        )
        return cases


def verdict(rows: int, cases: list[Case]) -> None:
    """The issue's targets for the 30-day reads, cold and warm, in words."""
    targeted = [case for case in cases if "30d" in case.label]
    print(f"targets at {rows:,} (the three 30-day reads): p95 <= 20 ms and raw/ours >= 30x at p95")
    for which, name in (("cold", "cold (every answer computed)"), ("warm", "warm (as asked)")):
        worst = max(case.p95(which) for case in targeted)
        ratio = min(case.p95("raw") / case.p95(which) for case in targeted)
        print(
            f"  {name:30} worst p95 {worst:5.1f} ms: {'met' if worst <= 20 else 'NOT met'}; "
            f"lowest ratio {ratio:.0f}x: {'met' if ratio >= 30 else 'NOT met'}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,10000000", help="observation counts")
    parser.add_argument(
        "--seconds", type=float, default=45, help="how long each read case runs (spans passes)"
    )
    parser.add_argument("--iterations", type=int, default=60, help="least (cold, warm) pairs")
    parser.add_argument("--raw-iterations", type=int, default=6, help="raw requests per case")
    parser.add_argument("--hour-rows", type=int, default=1_000_000, help="rows in the full hour")
    parser.add_argument("--changed", type=int, default=1000, help="new observations per pass")
    parser.add_argument("--rounds", type=int, default=5, help="passes per hour in the cost test")
    parser.add_argument(
        "--keep",
        type=Path,
        help="build the read data under this directory and reuse it on later runs (same size)",
    )
    parser.add_argument("--skip", default="", help="comma list of parts to skip: conn,pass,reads")
    args = parser.parse_args()
    skip = set(args.skip.split(","))
    if "conn" not in skip:
        check_connections()
    if "pass" not in skip:
        pass_cost(args.hour_rows, args.changed, args.rounds)
    if "reads" not in skip:
        for size in (int(s) for s in args.sizes.split(",") if s.strip()):
            cases = reads(size, args.seconds, args.iterations, args.raw_iterations, args.keep)
            verdict(size, cases)


if __name__ == "__main__":
    main()
