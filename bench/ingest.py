"""Ingest throughput: POST /v1/ingest (group commit) vs one client.insert per request batch.

Two shapes, in one run, against a real `trace-analytics serve` process on 127.0.0.1 with
its own embedded chDB and the scheduler running at its defaults (detection, delivery,
rollups, jobs):

  (a) small batches, as instrumentation SDKs send them: 8 senders x 200 observations;
  (b) large batches: 4 senders x 5,000 observations.

For each, the figure is observations/s over the whole shape (first request sent to last
answer received) and the POST latency percentiles. The naive figure beside it is what the
old write path did per request: one `client.insert` of that request's rows, one request
after another, on a fresh chDB in this process (pre-built columns, so no HTTP, no JSON and
no validation: it flatters the naive side). The ratio is ours / naive. The server's CPU
time per observation (all its threads: HTTP, validation, the insert inside chDB, the
scheduler) is printed too: unlike obs/s it barely depends on what else the machine runs.

    python bench/ingest.py [--small 100000] [--large 200000] [--source DIR]

`--source DIR` runs the server from another checkout (e.g. the previous commit, unpacked
with `git archive`), to print before/after figures with the same script.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson

from service.clickhouse import ClickHouse, connect
from service.demo import synthetic_batches
from service.ingest.rows import OBSERVATION_COLUMNS
from service.migrations import apply
from service.settings import Settings

PER_TRACE = 4.7  # the demo generator's average observations per trace


@dataclass(frozen=True)
class Shape:
    name: str
    senders: int
    batch: int
    observations: int


@dataclass(frozen=True)
class Figure:
    observations: int
    seconds: float
    latencies: list[float]
    cpu_seconds: float = 0.0  # the server process's CPU time (all threads) for the shape

    @property
    def rate(self) -> float:
        return self.observations / self.seconds

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def observation_bodies(shape: Shape, seed: int) -> list[bytes]:
    """Bodies of exactly `shape.batch` observations each (observations only)."""
    traces = int(shape.observations / PER_TRACE) + 1
    pending: list[dict[str, Any]] = []
    bodies: list[bytes] = []
    for body in synthetic_batches(
        traces=traces, batch_size=1000, now=datetime.now(UTC), hours=48, seed=seed
    ):
        pending.extend(orjson.loads(body)["observations"])
        while len(pending) >= shape.batch:
            bodies.append(orjson.dumps({"observations": pending[: shape.batch]}))
            pending = pending[shape.batch :]
    return bodies[: max(1, shape.observations // shape.batch)]


def start_server(data_dir: Path, port: int, source: Path | None = None) -> subprocess.Popen[bytes]:
    """`trace-analytics serve` with default scheduling, ready when /readyz says so."""
    env = {
        **os.environ,
        "TA_CLICKHOUSE_URL": f"chdb://{data_dir}",
        "TA_PORT": str(port),
        "TA_LOG_LEVEL": "WARNING",
        "TA_INGEST_MAX_BYTES": str(64 * 1024 * 1024),
    }
    env.pop("TA_SCHEDULER_ENABLED", None)
    if source is not None:
        env["PYTHONPATH"] = str(source)
    server = subprocess.Popen(
        [sys.executable, "-m", "service", "serve"], env=env, cwd=source or Path.cwd()
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    server.kill()
    raise SystemExit("server did not become ready within 90 s")


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def send_all(url: str, bodies: list[bytes], senders: int, pid: int | None = None) -> Figure:
    """Every body POSTed by `senders` threads, each with its own connection."""
    work: Iterator[bytes] = iter(bodies)
    lock = threading.Lock()
    latencies: list[float] = []
    failures: list[str] = []
    headers = {"content-type": "application/json"}

    def sender() -> None:
        with httpx.Client(timeout=120) as http:
            while True:
                with lock:
                    body = next(work, None)
                if body is None:
                    return
                began = time.perf_counter()
                response = http.post(url, content=body, headers=headers)
                elapsed = time.perf_counter() - began
                with lock:
                    latencies.append(elapsed)
                    if response.status_code != 202:
                        failures.append(f"{response.status_code} {response.text[:200]}")

    threads = [threading.Thread(target=sender) for _ in range(senders)]
    cpu_before = process_cpu_seconds(pid) if pid is not None else 0.0
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    cpu = process_cpu_seconds(pid) - cpu_before if pid is not None else 0.0
    if failures:
        raise SystemExit(f"{len(failures)} requests failed, first: {failures[0]}")
    total = sum(len(orjson.loads(b)["observations"]) for b in bodies)
    return Figure(total, seconds, latencies, cpu)


def _epoch_ms(raw: str | None) -> int | None:
    if raw is None:
        return None
    value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    return int(value.timestamp() * 1000)


def naive_columns(body: bytes, when: datetime) -> list[list[Any]]:
    rows = orjson.loads(body)["observations"]
    defaults: dict[str, Any] = {
        "parent_id": "",
        "name": "",
        "model": "",
        "provider": "",
        "input_tokens": 0,
        "output_tokens": 0,
        "cost": 0.0,
        "status": "ok",
        "metadata": {},
        "end_time": None,
        "completion_start_time": None,
    }
    columns: list[list[Any]] = [["bench-naive"] * len(rows)]
    for name in OBSERVATION_COLUMNS[1:-2]:
        values = [row.get(name, defaults.get(name)) for row in rows]
        if name.endswith("_time"):
            values = [_epoch_ms(v) for v in values]
        columns.append(values)
    columns.append([when] * len(rows))
    columns.append([0] * len(rows))
    return columns


def naive_inserts(ch: ClickHouse, bodies: list[bytes]) -> Figure:
    """What the old path did per request: one insert of its rows, one after another."""
    prepared = [naive_columns(b, datetime.now(UTC)) for b in bodies]
    latencies = []
    started = time.perf_counter()
    for columns in prepared:
        began = time.perf_counter()
        ch.insert("observations", OBSERVATION_COLUMNS, columns, by_column=True)
        latencies.append(time.perf_counter() - began)
    seconds = time.perf_counter() - started
    return Figure(sum(len(c[0]) for c in prepared), seconds, latencies)


def group_totals(port: int) -> tuple[float, float, float]:
    """(groups, requests, rows) the server's writer has flushed so far, from /metrics."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    values = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in ("ta_ingest_group_requests_count", "ta_ingest_group_requests_sum"):
            values[name] = float(value)
        if name == "ta_ingest_group_rows_sum":
            values[name] = float(value)
    return (
        values.get("ta_ingest_group_requests_count", 0.0),
        values.get("ta_ingest_group_requests_sum", 0.0),
        values.get("ta_ingest_group_rows_sum", 0.0),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--small", type=int, default=100_000, help="observations in shape (a)")
    parser.add_argument("--large", type=int, default=200_000, help="observations in shape (b)")
    parser.add_argument("--port", type=int, default=18765)
    parser.add_argument("--source", type=Path, default=None, help="serve from this checkout")
    parser.add_argument("--shapes", default="a,b", help="which shapes to run (a, b or both)")
    args = parser.parse_args()

    shapes = [
        Shape("(a) 8 senders x 200", senders=8, batch=200, observations=args.small),
        Shape("(b) 4 senders x 5000", senders=4, batch=5000, observations=args.large),
    ]
    shapes = [s for s in shapes if s.name[1] in args.shapes.split(",")]
    bodies = {s.name: observation_bodies(s, seed=11 + i) for i, s in enumerate(shapes)}
    load_before = os.getloadavg()[0]
    warmup = observation_bodies(Shape("warm-up", 1, 200, 2000), seed=99)
    ours: dict[str, Figure] = {}
    groups: dict[str, tuple[float, float, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(Path(tmp) / "api", args.port, args.source)
        try:
            url = f"http://127.0.0.1:{args.port}/v1/ingest"
            send_all(url, warmup, 2)
            for shape in shapes:
                before = group_totals(args.port) if args.source is None else (0.0, 0.0, 0.0)
                ours[shape.name] = send_all(url, bodies[shape.name], shape.senders, server.pid)
                after = group_totals(args.port) if args.source is None else (0.0, 0.0, 0.0)
                groups[shape.name] = (
                    after[0] - before[0],
                    after[1] - before[1],
                    after[2] - before[2],
                )
        finally:
            server.terminate()
            server.wait(timeout=120)

        ch = connect(Settings(clickhouse_url=f"chdb://{Path(tmp) / 'naive'}"))
        try:
            apply(ch)
            naive_inserts(ch, warmup)
            naive = {s.name: naive_inserts(ch, bodies[s.name]) for s in shapes}
        finally:
            ch.close()

    load_after = os.getloadavg()[0]
    print(f"load average: {load_before:.1f} at the start, {load_after:.1f} at the end (2 cores)")
    for shape in shapes:
        mine, base = ours[shape.name], naive[shape.name]
        cpu_us = mine.cpu_seconds / mine.observations * 1e6
        print(
            f"{shape.name}: POST /v1/ingest {mine.rate:>9,.0f} obs/s "
            f"(p50 {mine.percentile(0.5):.0f} ms, p95 {mine.percentile(0.95):.0f} ms, "
            f"{len(mine.latencies)} requests, server CPU {cpu_us:.1f} us/obs)"
            f" | naive insert per batch {base.rate:>9,.0f} obs/s "
            f"(p50 {statistics.median(base.latencies) * 1000:.0f} ms per insert) | "
            f"ratio {mine.rate / base.rate:.2f}x"
        )
        count, requests, rows = groups.get(shape.name, (0.0, 0.0, 0.0))
        if count:
            print(
                f"    group commit: {count:.0f} group inserts, on average {requests / count:.1f}"
                f" requests / {rows / count:,.0f} rows each"
            )
    print("targets: (a) >= 40,000 obs/s with POST p95 <= 250 ms; (b) >= 100,000 obs/s")


if __name__ == "__main__":
    main()
