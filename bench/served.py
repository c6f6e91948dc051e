"""The service as the benches meet it: a real `trace-analytics serve` process, over TCP.

`serve(data_dir, **env)` starts `python -m service serve` on an embedded directory the bench
built (and closed), with every other setting at its default (so the scheduler runs its
passes as a deployment would), waits until `/healthz` answers, and stops it with SIGTERM.
Helpers for timing requests and reading the machine's load sit here too, so every bench
reports them the same way.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from service.server import read_address

START_SECONDS = 300.0


@dataclass
class Served:
    """A running `serve`: its process, base URL and log file."""

    process: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


@contextmanager
def serve(data_dir: Path, **env: str) -> Iterator[Served]:
    """`serve` on `data_dir` and a free port, TA_* at their defaults unless given in `env`."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("TA_")}
    environment.update(
        TA_CLICKHOUSE_URL=f"chdb://{data_dir}",
        TA_PORT="0",
        TA_LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
        **env,
    )
    log_path = data_dir.parent / "serve.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "service", "serve"],
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=log,
            stdin=subprocess.DEVNULL,
        )
    served = Served(process, "", log_path)
    try:
        served.url = _wait_until_serving(served, data_dir)
        yield served
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_until_serving(served: Served, data_dir: Path) -> str:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if served.process.poll() is not None:
            raise RuntimeError(f"serve exited {served.process.returncode}:\n{served.log()}")
        address = read_address(data_dir)
        if address is not None and address.pid == served.process.pid:
            try:
                if httpx.get(address.url + "/healthz", timeout=5).status_code == 200:
                    return address.url
            except httpx.HTTPError:
                pass
        time.sleep(0.1)
    raise RuntimeError(f"serve did not start:\n{served.log()}")


def percentile(samples: list[float], q: float) -> float:
    """The sample at rank round(q * (n - 1)) (no interpolation)."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, as `uptime` prints them."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f}, {five:.2f}, {fifteen:.2f} (on {os.cpu_count()} cores)"
