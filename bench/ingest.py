"""Ingest throughput: observations/s through POST /v1/ingest vs a raw client.insert.

Both paths write the same rows into embedded chDB in one run. The API path is a real
`trace-analytics serve` process on 127.0.0.1 (HTTP, JSON parsing, pydantic validation of
the whole batch, the column-oriented insert) fed by concurrent senders from this process;
the raw path is only `client.insert` of pre-built columns, so the ratio is what validation
and HTTP cost.

    python bench/ingest.py [--observations 200000] [--batch 5000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson

from service.clickhouse import connect
from service.clock import VersionStamp, system_clock
from service.demo import synthetic_batches
from service.ingest.models import parse_batch
from service.ingest.writer import OBSERVATION_COLUMNS
from service.migrations import apply
from service.settings import Settings


def build_bodies(observations: int, batch: int) -> list[bytes]:
    """Ingest bodies of about `batch` observations each, ~`observations` in all."""
    per_trace = 4.7  # the demo generator's average observations per trace
    traces = int(observations / per_trace)
    bodies = []
    for body in synthetic_batches(
        traces=traces, batch_size=int(batch / per_trace), now=datetime.now(UTC), seed=11
    ):
        decoded = orjson.loads(body)
        decoded["traces"] = []  # observations only: the figure is observations/s
        bodies.append(orjson.dumps(decoded))
    return bodies


def start_server(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    """`trace-analytics serve` on its own chDB directory, ready when /readyz says so."""
    env = {
        **os.environ,
        "TA_CLICKHOUSE_URL": f"chdb://{data_dir}",
        "TA_PORT": str(port),
        "TA_SCHEDULER_ENABLED": "false",
        "TA_LOG_LEVEL": "WARNING",
        "TA_INGEST_MAX_BYTES": str(64 * 1024 * 1024),
    }
    server = subprocess.Popen([sys.executable, "-m", "service", "serve"], env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    server.kill()
    raise SystemExit("server did not become ready within 60 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--observations", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--port", type=int, default=18765)
    parser.add_argument(
        "--senders", type=int, default=4, help="concurrent HTTP senders, as SDK fleets do"
    )
    args = parser.parse_args()

    bodies = build_bodies(args.observations, args.batch)
    batches = [parse_batch(b) for b in bodies]
    total = sum(len(b.observations) for b in batches)
    print(f"{total} observations in {len(bodies)} batches of ~{args.batch}")

    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(Path(tmp) / "api", args.port)
        try:
            url = f"http://127.0.0.1:{args.port}/v1/ingest"
            headers = {"content-type": "application/json"}
            with httpx.Client(timeout=120) as http:
                http.post(url, content=bodies[0], headers=headers).raise_for_status()  # warm-up

                def send(body: bytes) -> None:
                    http.post(url, content=body, headers=headers).raise_for_status()

                started = time.perf_counter()
                with ThreadPoolExecutor(max_workers=args.senders) as pool:
                    list(pool.map(send, bodies))
                api_seconds = time.perf_counter() - started
        finally:
            server.terminate()
            server.wait(timeout=60)

        settings = Settings(clickhouse_url=f"chdb://{Path(tmp) / 'raw'}", scheduler_enabled=False)
        ch = connect(settings)
        apply(ch)
        try:
            stamp = VersionStamp(system_clock)
            columns = []
            for batch in batches:
                obs = batch.observations
                when = stamp.next()
                columns.append(
                    [
                        ["bench-raw"] * len(obs),
                        *([getattr(o, name) for o in obs] for name in OBSERVATION_COLUMNS[1:-2]),
                        [when] * len(obs),
                        [0] * len(obs),
                    ]
                )
            started = time.perf_counter()
            for data in columns:
                ch.insert("observations", OBSERVATION_COLUMNS, data, by_column=True)
            raw_seconds = time.perf_counter() - started
        finally:
            ch.close()

    api_rate = total / api_seconds
    raw_rate = total / raw_seconds
    print(
        f"POST /v1/ingest      : {api_rate:>10,.0f} observations/s ({api_seconds:.2f} s, "
        f"{args.senders} senders)"
    )
    print(f"raw client.insert    : {raw_rate:>10,.0f} observations/s ({raw_seconds:.2f} s)")
    print(f"ratio (api / raw)    : {api_rate / raw_rate:.2f}x  (target: api >= 50,000/s)")


if __name__ == "__main__":
    main()
