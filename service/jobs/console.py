"""`trace-analytics backfill ...`: create or resume a job and run it here, with a progress bar.

Ctrl-C pauses the job after the chunk in flight (its progress is persisted), and
`backfill --resume JOB_ID` — or `serve`'s scheduler — continues it from the cursor.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from types import FrameType

from tqdm import tqdm

from service.clickhouse import ClickHouse
from service.clock import system_clock
from service.durations.backfill import KIND as DURATIONS
from service.durations.backfill import backfill_params
from service.errors import UsageError
from service.jobs.kinds import default_kinds
from service.jobs.model import Job, progress
from service.jobs.rollups_backfill import KIND as ROLLUPS
from service.jobs.rollups_backfill import rollup_backfill_params
from service.jobs.runner import RunOptions, run_job
from service.jobs.store import ALL_PROJECTS, create_job, get_job, list_jobs
from service.settings import Settings


@dataclass(frozen=True)
class BackfillCommand:
    """What `trace-analytics backfill ...` asks for, as parsed by the CLI."""

    kind: str | None = None  # "durations" or "rollups" (a new job)
    list_jobs: bool = False
    resume: str | None = None
    pause: float | None = None
    definition: str | None = None
    project: str | None = None
    batch_size: int | None = None
    start: datetime | None = None
    end: datetime | None = None
    hours_per_chunk: int = 6


def run_backfill_command(command: BackfillCommand, ch: ClickHouse, settings: Settings) -> int:
    """Do what the command asks; 0 when the job is done, 1 when it failed."""
    if command.list_jobs:
        for job in list_jobs(ch, None, [], limit=50):
            print(job_line(job))
        return 0
    if command.resume:
        found = get_job(ch, command.resume)
        if found is None:
            raise UsageError(f"--resume: no job {command.resume!r}")
        job = found
        if job.finished:
            print(job_line(job))
            return 0 if job.status == "done" else 1
    else:
        job = _new_job(command, ch, settings)
    return _run_with_bar(ch, job, settings, command.pause)


def _new_job(command: BackfillCommand, ch: ClickHouse, settings: Settings) -> Job:
    now = system_clock()
    if command.kind == "durations":
        batch = command.batch_size or settings.backfill_batch_size
        params = backfill_params(command.definition, batch)
        return create_job(ch, DURATIONS, command.project or ALL_PROJECTS, params, now)
    if command.kind == "rollups":
        start, end = command.start, command.end
        if start is not None and end is not None and end <= start:
            raise UsageError("--to: must be after --from")
        if command.hours_per_chunk < 1:
            raise UsageError("--hours-per-chunk: must be at least 1")
        params = rollup_backfill_params(start, end, command.hours_per_chunk)
        return create_job(ch, ROLLUPS, ALL_PROJECTS, params, now)
    raise UsageError("name a backfill: durations, rollups, --resume JOB_ID or --list")


def _run_with_bar(ch: ClickHouse, job: Job, settings: Settings, pause: float | None) -> int:
    print(f"job {job.id} ({job.kind}); Ctrl-C pauses it, `backfill --resume {job.id}` continues")
    with (
        tqdm(total=job.rows_total or None, initial=job.rows_processed, unit="row") as bar,
        _stop_on_interrupt() as stop,
    ):

        def show(current: Job) -> None:
            bar.total = current.rows_total or None
            bar.n = current.rows_processed
            rate = progress(current).rate
            bar.set_postfix(status=current.status, rate=f"{rate:.0f}/s" if rate else "-")
            bar.refresh()

        options = RunOptions(
            pause_seconds=settings.backfill_pause_seconds if pause is None else pause,
            should_stop=lambda: stop["requested"],
            on_progress=show,
        )
        final = run_job(ch, job, default_kinds(), system_clock, options)
    print(job_line(final))
    if final.status == "failed":
        print(f"trace-analytics: job {final.id} failed: {final.error}", file=sys.stderr)
        return 1
    return 0


@contextmanager
def _stop_on_interrupt() -> Iterator[dict[str, bool]]:
    """Turn the first Ctrl-C into "pause after this chunk" (a second one interrupts)."""
    flag = {"requested": False}
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum: int, frame: FrameType | None) -> None:
        if flag["requested"]:
            raise KeyboardInterrupt
        flag["requested"] = True

    try:
        signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread (e.g. embedded in a test runner thread)
        yield flag
        return
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


def job_line(job: Job) -> str:
    derived = progress(job)
    rate = f"{derived.rate:.0f} rows/s" if derived.rate else "-"
    error = f"  error: {job.error}" if job.error else ""
    return (
        f"{job.id}  {job.kind:<20} {job.project_id or '*':<12} {job.status:<8} "
        f"{job.rows_processed}/{job.rows_total}  {rate}{error}"
    )
