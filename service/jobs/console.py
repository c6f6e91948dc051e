"""`trace-analytics backfill ...`: create or resume a job and run it, showing its progress.

Here (this process opened the engine): the job runs in chunks in this process; Ctrl-C
pauses it after the chunk in flight (its progress is persisted), and
`backfill --resume JOB_ID` — or `serve`'s scheduler — continues it from the cursor.

Through a running `serve` (it holds the embedded directory, see `service.remote`): the job
is queued there and its scheduler runs it at once; this command follows it through
`GET /v1/jobs/{id}` and prints the same lines. Ctrl-C stops following; the job goes on.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from types import FrameType
from typing import Any

from service.clickhouse import ClickHouse
from service.clock import system_clock
from service.errors import InvalidInput, UsageError
from service.jobs.durations_backfill import KIND as DURATIONS
from service.jobs.kinds import default_kinds
from service.jobs.model import Job, job_to_json
from service.jobs.requests import BackfillRequest, create_backfill, parse_backfill_request
from service.jobs.rollups_backfill import KIND as ROLLUPS
from service.jobs.runner import RunOptions, run_job
from service.jobs.store import get_job, list_jobs
from service.progress import Progress, progress
from service.remote import Rejected, RunningServe
from service.settings import Settings

LIST_LIMIT = 50
POLL_SECONDS = 0.5
# Request fields as the command line spells them, for one-line usage errors.
OPTIONS = {
    "definition": "--definition",
    "project_id": "--project",
    "batch_size": "--batch-size",
    "from": "--from",
    "to": "--to",
}


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

    def request(self) -> BackfillRequest:
        """The new job this command describes (a `UsageError` naming the option if invalid)."""
        if self.kind == "durations":
            body: dict[str, object] = {"kind": DURATIONS}
            fields: dict[str, object] = {
                "project_id": self.project,
                "definition": self.definition,
                "batch_size": self.batch_size,
            }
        elif self.kind == "rollups":
            body = {"kind": ROLLUPS}
            fields = {"from": self.start, "to": self.end, "batch_size": self.batch_size}
        else:
            raise UsageError("name a backfill: durations, rollups, --resume JOB_ID or --list")
        body.update({name: value for name, value in fields.items() if value is not None})
        with as_usage_errors():
            return parse_backfill_request(body)


@contextmanager
def as_usage_errors() -> Iterator[None]:
    """Turn a request error (`field: reason`) into a usage error naming the option."""
    try:
        yield
    except InvalidInput as exc:
        raise UsageError(option_message(exc.field, exc.reason)) from None
    except Rejected as exc:
        field, _, reason = exc.message.partition(": ")
        if exc.status == 404:
            raise UsageError(f"--resume: {reason or exc.message}") from None
        raise UsageError(option_message(field, reason) if reason else exc.message) from None


def option_message(field: str, reason: str) -> str:
    return f"{OPTIONS.get(field, field)}: {reason}"


def job_line(view: dict[str, Any]) -> str:
    """One line per job (`backfill --list`, and the last line of a run)."""
    rate = f"{view['rate']:.0f} rows/s" if view.get("rate") else "-"
    error = f"  error: {view['error']}" if view.get("error") else ""
    return (
        f"{view['id']}  {view['kind']:<20} {view.get('project_id') or '*':<12} "
        f"{view['status']:<8} {view['rows_processed']}/{view['rows_total']}  {rate}{error}"
    )


def show(bar: Progress, view: dict[str, Any]) -> None:
    bar.update(
        int(view["rows_processed"]),
        int(view["rows_total"]) or None,
        rate=view.get("rate"),
        eta=view.get("eta_seconds") if view["status"] == "running" else None,
        status=str(view["status"]),
    )


def finish(view: dict[str, Any]) -> int:
    """Print the job's last line; 1 (and the error on stderr) when it failed."""
    print(job_line(view))
    if view["status"] == "failed":
        print(f"trace-analytics: job {view['id']} failed: {view['error']}", file=sys.stderr)
        return 1
    return 0


# Here.


def run_backfill_command(command: BackfillCommand, ch: ClickHouse, settings: Settings) -> int:
    """Do what the command asks in this process; 0 when the job is done, 1 when it failed."""
    if command.list_jobs:
        for job in list_jobs(ch, None, [], limit=LIST_LIMIT):
            print(job_line(job_to_json(job)))
        return 0
    if command.resume:
        found = get_job(ch, command.resume)
        if found is None:
            raise UsageError(f"--resume: no job {command.resume!r}")
        job = found
        if job.finished:
            return finish(job_to_json(job))
    else:
        request = command.request()
        with as_usage_errors():
            job = create_backfill(ch, request, settings, system_clock())
    return _run_here(ch, job, settings, command.pause)


def _run_here(ch: ClickHouse, job: Job, settings: Settings, pause: float | None) -> int:
    print(f"job {job.id} ({job.kind}); Ctrl-C pauses it, `backfill --resume {job.id}` continues")
    with progress(f"job {job.id[:8]}", "row") as bar, _stop_on_interrupt() as stop:
        options = RunOptions(
            pause_seconds=settings.backfill_pause_seconds if pause is None else pause,
            should_stop=lambda: stop["requested"],
            on_progress=lambda current: show(bar, job_to_json(current)),
        )
        final = run_job(ch, job, default_kinds(), system_clock, options)
    return finish(job_to_json(final))


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


# Through a running serve.


def run_backfill_remotely(command: BackfillCommand, remote: RunningServe) -> int:
    """Do what the command asks through `remote`'s API; same output and exit status."""
    if command.list_jobs:
        for view in remote.get("/v1/jobs", limit=LIST_LIMIT)["data"]:
            print(job_line(view))
        return 0
    runs_here = remote.hello.get("jobs", {})
    if command.resume:
        with as_usage_errors():
            view = remote.get(f"/v1/jobs/{command.resume}")["job"]
        if view["status"] in ("done", "failed"):
            return finish(view)
        _require_jobs_run(remote, runs_here)
        with as_usage_errors():
            view = remote.post(f"/v1/jobs/{command.resume}/resume")["job"]
    else:
        request = command.request()
        _require_jobs_run(remote, runs_here)
        body = request.model_dump(mode="json", by_alias=True, exclude_none=True)
        with as_usage_errors():
            view = remote.post("/v1/jobs", json=body)["job"]
    if command.pause is not None:
        print(
            f"trace-analytics: --pause does not apply: {remote.who} paces jobs with its "
            "TA_BACKFILL_PAUSE_SECONDS",
            file=sys.stderr,
        )
    return _follow(remote, view)


def _require_jobs_run(remote: RunningServe, runs_here: dict[str, Any]) -> None:
    if runs_here.get("run_here", True):
        return
    raise UsageError(
        f"{remote.who} holds {remote.busy.path} but does not run jobs "
        f"({runs_here.get('reason')}): stop it and run the backfill again"
    )


def _follow(remote: RunningServe, view: dict[str, Any]) -> int:
    job_id = view["id"]
    print(
        f"job {job_id} ({view['kind']}) runs in {remote.who}; Ctrl-C stops following, "
        "`backfill --list` shows it"
    )
    try:
        with progress(f"job {job_id[:8]}", "row") as bar:
            while True:
                show(bar, view)
                if view["status"] in ("done", "failed"):
                    break
                time.sleep(POLL_SECONDS)
                view = remote.get(f"/v1/jobs/{job_id}")["job"]
    except KeyboardInterrupt:
        print(job_line(view))
        print(f"stopped following job {job_id}; it keeps running in {remote.who}")
        return 0
    return finish(view)
