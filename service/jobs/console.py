"""`trace-analytics backfill ...`: create or resume a job and run it here, with a progress bar.

Ctrl-C pauses the job after the chunk in flight (its progress is persisted), and
`backfill --resume JOB_ID` — or `serve`'s scheduler — continues it from the cursor.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from types import FrameType

from tqdm import tqdm

from service.clickhouse import ClickHouse
from service.clock import system_clock
from service.durations.backfill import KIND as DURATIONS
from service.durations.backfill import backfill_params
from service.jobs.kinds import default_kinds
from service.jobs.model import Job, progress
from service.jobs.rollups_backfill import KIND as ROLLUPS
from service.jobs.rollups_backfill import rollup_backfill_params
from service.jobs.runner import RunOptions, run_job
from service.jobs.store import ALL_PROJECTS, create_job, get_job, list_jobs
from service.rollups.ledger import CHUNK_TRACES
from service.settings import Settings
from service.times import parse_rfc3339


class BackfillUsageError(ValueError):
    """The command line names no job to run, or a bad one; the message says which."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `backfill` options and its `durations` / `rollups` sub-commands."""
    parser.add_argument("--list", action="store_true", help="list jobs and their progress")
    parser.add_argument("--resume", metavar="JOB_ID", help="continue a paused or interrupted job")
    parser.add_argument(
        "--pause",
        type=float,
        default=None,
        help="seconds between chunks (default TA_BACKFILL_PAUSE_SECONDS)",
    )
    kinds = parser.add_subparsers(dest="backfill_kind", metavar="KIND")
    durations = kinds.add_parser(
        "durations", help="recompute named durations of already-concluded traces"
    )
    durations.add_argument("--definition", help="only this definition (default: all)")
    durations.add_argument("--project", help="only this project (default: every project)")
    durations.add_argument(
        "--batch-size", type=int, default=None, help="traces per chunk (TA_BACKFILL_BATCH_SIZE)"
    )
    rollups = kinds.add_parser(
        "rollups", help="bring the usage/latency rollups of a range's traces up to date"
    )
    rollups.add_argument("--from", dest="start", help="RFC 3339 start (default: open)")
    rollups.add_argument("--to", dest="end", help="RFC 3339 end (default: open)")
    rollups.add_argument("--batch-size", type=int, default=CHUNK_TRACES, help="traces per chunk")


def run_backfill_command(args: argparse.Namespace, ch: ClickHouse, settings: Settings) -> int:
    """Do what the `backfill` arguments ask; 0 when the job is done, 1 when it failed."""
    if args.list:
        for job in list_jobs(ch, None, [], limit=50):
            print(_line(job))
        return 0
    if args.resume:
        found = get_job(ch, args.resume)
        if found is None:
            raise BackfillUsageError(f"--resume: no job {args.resume!r}")
        job = found
        if job.finished:
            print(_line(job))
            return 0 if job.status == "done" else 1
    else:
        job = _new_job(args, ch, settings)
    return _run_with_bar(ch, job, settings, args.pause)


def _new_job(args: argparse.Namespace, ch: ClickHouse, settings: Settings) -> Job:
    now = system_clock()
    if args.backfill_kind == "durations":
        batch = args.batch_size or settings.backfill_batch_size
        params = backfill_params(args.definition, batch)
        return create_job(ch, DURATIONS, args.project or ALL_PROJECTS, params, now)
    if args.backfill_kind == "rollups":
        start, end = _parse(args.start, "--from"), _parse(args.end, "--to")
        if start is not None and end is not None and end <= start:
            raise BackfillUsageError("--to: must be after --from")
        if args.batch_size < 1:
            raise BackfillUsageError("--batch-size: must be at least 1")
        params = rollup_backfill_params(start, end, args.batch_size)
        return create_job(ch, ROLLUPS, ALL_PROJECTS, params, now)
    raise BackfillUsageError("name a backfill: durations, rollups, --resume JOB_ID or --list")


def _parse(raw: str | None, flag: str) -> datetime | None:
    if raw is None:
        return None
    try:
        return parse_rfc3339(raw)
    except ValueError:
        raise BackfillUsageError(f"{flag}: {raw!r} is not an RFC 3339 time") from None


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
    print(_line(final))
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


def _line(job: Job) -> str:
    derived = progress(job)
    rate = f"{derived.rate:.0f} rows/s" if derived.rate else "-"
    error = f"  error: {job.error}" if job.error else ""
    return (
        f"{job.id}  {job.kind:<20} {job.project_id or '*':<12} {job.status:<8} "
        f"{job.rows_processed}/{job.rows_total}  {rate}{error}"
    )
