"""Running `trace-analytics` as a real process: the CLI, and `serve` on an ephemeral port.

Start-up messages, exit codes and output in pipes are only real in a real process, so the
tests for them go through here. `Serve` waits for the address file `serve` writes next to
the embedded directory's lock, and stops the process with SIGTERM as an orchestrator would.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from service.server import read_address

# Generous: these are limits on waiting for a busy 2-core machine, not speed claims.
START_SECONDS = 120.0
COMMAND_SECONDS = 300.0


def base_env(**overrides: str) -> dict[str, str]:
    """The environment without any TA_* of the caller's, plus `overrides`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TA_")}
    env.update({"TA_LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1"}, **overrides)
    return env


def cli(
    *args: str, env: dict[str, str], timeout: float = COMMAND_SECONDS
) -> subprocess.CompletedProcess[str]:
    """`trace-analytics ARGS` with stdout and stderr captured (pipes, so not a terminal)."""
    return subprocess.run(
        [sys.executable, "-m", "service", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def one_line(text: str) -> str:
    """The only line of `text` (fails when there are more)."""
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


def copy_template(template: Path, target: Path) -> Path:
    """A migrated data directory (a copy of the session's template)."""
    shutil.copytree(template, target, symlinks=True, ignore=shutil.ignore_patterns("*.lock"))
    return target


@dataclass
class Serve:
    """A running `trace-analytics serve` process."""

    process: subprocess.Popen[str]
    data_dir: Path
    url: str
    env: dict[str, str]
    stderr_path: Path
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def client(self, **headers: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)

    def log(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


@contextmanager
def serve(data_dir: Path, env: dict[str, str], fd_limit: int | None = None) -> Iterator[Serve]:
    """Start `serve` on `data_dir` (embedded) and a free port; stop it on exit.

    `fd_limit` runs it under `ulimit -n` (soft and hard), as a small container would.
    """
    env = {**env, "TA_CLICKHOUSE_URL": f"chdb://{data_dir}", "TA_PORT": "0"}
    stderr_path = data_dir.parent / f"serve-{time.monotonic_ns()}.log"
    command = [sys.executable, "-m", "service", "serve"]
    if fd_limit is not None:
        command = ["sh", "-c", f'ulimit -n {fd_limit} && exec "$@"', "sh", *command]
    with stderr_path.open("w") as stderr:
        process = subprocess.Popen(
            command,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
            text=True,
        )
    running = Serve(process, data_dir, "", env, stderr_path)
    try:
        running.url = _wait_until_serving(running)
        yield running
    finally:
        running.stop()


def _wait_until_serving(running: Serve) -> str:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if running.process.poll() is not None:
            raise AssertionError(f"serve exited {running.process.returncode}:\n{running.log()}")
        address = read_address(running.data_dir)
        if address is not None and address.pid == running.process.pid:
            try:
                if httpx.get(address.url + "/healthz", timeout=5).status_code == 200:
                    return address.url
            except httpx.HTTPError:
                pass
        time.sleep(0.1)
    raise AssertionError(f"serve did not start:\n{running.log()}")
