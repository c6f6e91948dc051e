"""Progress: plain lines off a terminal, logs above the bar on one, smoothed rates and ETAs."""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path

from service.clickhouse import ClickHouse
from service.clock import ManualClock
from service.jobs.model import Job, progress
from service.jobs.runner import Chunk, RunOptions, run_job
from service.jobs.store import create_job
from service.logs import build_handler
from service.progress import LineProgress, RateEstimate, human_duration
from service.progress import progress as progress_display
from tests.subprocesses import base_env, cli, copy_template


class Ticks:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_off_a_terminal_progress_is_whole_lines_every_few_seconds() -> None:
    out, ticks = io.StringIO(), Ticks()
    lines = LineProgress("demo", "trace", out, every=5.0, clock=ticks)
    for done in range(0, 1000, 100):
        lines.update(done, 1000)
        ticks.now += 1.0
    lines.update(1000, 1000, rate=100.0)
    lines.close()
    written = out.getvalue()
    assert "\r" not in written
    assert written.splitlines() == [
        "demo: 0/1000 traces (0%)",
        "demo: 500/1000 traces (50%)",
        "demo: 1000/1000 traces (100%), 100 traces/s",
    ]


class TtyBuffer(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_log_lines_are_written_whole_above_the_bar() -> None:
    terminal = TtyBuffer()
    handler = build_handler(stream=terminal)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        with progress_display("job 1234abcd", "row", stream=terminal) as bar:
            bar.update(10, 100, rate=5.0, status="running")
            logging.getLogger("service.test").warning("chunk retried")
            bar.update(20, 100, rate=5.0, eta=16.0, status="running")
    finally:
        root.removeHandler(handler)
    written = terminal.getvalue()
    assert "\r" in written  # the bar redraws in place
    log_lines = [
        segment for segment in written.replace("\r", "\n").split("\n") if '"event"' in segment
    ]
    assert len(log_lines) == 1
    assert log_lines[0].startswith('{"ts"')
    assert log_lines[0].endswith('"event":"chunk retried"}')
    assert "ETA 16s" in written


def test_the_smoothed_rate_gives_no_eta_until_a_few_updates() -> None:
    ticks = Ticks()
    estimate = RateEstimate(clock=ticks)
    estimate.observe(0)
    ticks.now = 100.0  # a slow first step
    estimate.observe(10)
    assert estimate.eta(10, 1000) is None
    for done in range(110, 1000, 100):
        ticks.now += 1.0
        estimate.observe(done)
    rate = estimate.rate
    assert rate is not None
    assert rate > 90  # the slow first step no longer dominates
    eta = estimate.eta(910, 1000)
    assert eta is not None
    assert eta < 2


def test_human_durations() -> None:
    assert [human_duration(s) for s in (0.4, 45, 185, 7620)] == ["0s", "45s", "3m05s", "2h07m"]


@dataclass(frozen=True)
class SlowStart:
    """A job kind whose first chunk takes 100 s and every other one 1 s, 10 rows each."""

    clock: ManualClock
    name: str = "test.slow_start"

    def plan(self, ch: ClickHouse, job: Job) -> int:
        self.clock.advance(50)  # a slow count query
        return 100

    def run_chunk(self, ch: ClickHouse, job: Job, clock: object) -> Chunk:
        done = int(job.cursor.get("n", 0))
        self.clock.advance(100 if done == 0 else 1)
        return Chunk(rows=10, cursor={"n": done + 1}, finished=done + 1 == 10)


def test_job_rate_and_eta_ignore_the_count_and_a_slow_first_chunk(
    clickhouse: ClickHouse, clock: ManualClock
) -> None:
    kind = SlowStart(clock)
    job = create_job(clickhouse, kind.name, "", {}, clock())
    seen: list[Job] = []
    run_job(clickhouse, job, {kind.name: kind}, clock, RunOptions(on_progress=seen.append))
    rates = [progress(j).rate for j in seen]
    etas = [progress(j).eta_seconds for j in seen]
    # Before the first chunk, and right after it: no rate, no ETA (not 3 h or 14 h).
    assert rates[:2] == [None, None]
    assert etas[:2] == [None, None]
    # From the second chunk on: the real 10 rows/s, and the ETA of what is left.
    assert rates[2:-1] == [10.0] * (len(seen) - 3)
    assert etas[2] == 8.0  # 80 rows left at 10 rows/s
    assert etas[-1] == 0.0


def test_a_backfill_in_a_pipe_prints_lines_not_frames(
    tmp_path: Path, migrated_template: Path
) -> None:
    data = copy_template(migrated_template, tmp_path / "data")
    env = base_env(TA_CLICKHOUSE_URL=f"chdb://{data}", TA_LOG_LEVEL="INFO")
    demo = cli("demo", "--traces", "300", env=env)
    assert demo.returncode == 0, demo.stderr
    backfill = cli("backfill", "rollups", "--batch-size", "500", env=env)
    assert backfill.returncode == 0, backfill.stderr
    for done in (demo, backfill):
        assert "\r" not in done.stdout + done.stderr
    progress_lines = [line for line in backfill.stderr.splitlines() if line.startswith("job ")]
    assert progress_lines
    assert progress_lines[-1].endswith(", done")
    assert any(line.startswith("demo: 300/300 traces (100%)") for line in demo.stderr.splitlines())
