"""The `trace-analytics` command: parse, build objects, call one function.

Start-up problems (a bad TA_* value, a port in use, an unreachable ClickHouse, a busy
embedded directory, a schema mismatch) and bad command lines end with one line on stderr
and exit status 2, never a traceback.

With the embedded engine only one process may open the data directory. When a running
`serve` holds it, `check`, `rollup`, `migrate [--status]`, `backfill ...` and `demo` send
their work to that `serve`'s API (`service.remote`) and print the same output.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import NoReturn

import service
from service.clickhouse import ClickHouse, parse_target
from service.clock import VersionStamp, system_clock
from service.engine_roles import INGEST, JOBS
from service.errors import (
    CannotListen,
    ConfigError,
    DirectoryInUse,
    EngineUnavailable,
    MigrationError,
    UsageError,
)
from service.migrations import apply, compare, discover, status
from service.operations import CheckReport, RollupReport, run_check, run_rollup, schema_lines
from service.remote import Rejected, RunningServe, running_serve
from service.settings import Settings, load_settings
from service.startup import open_engine
from service.times import TimeOutOfRange, parse_time, storable

log = logging.getLogger(__name__)

Command = Callable[[argparse.Namespace, Settings], int]

MAX_DEMO_TRACES = 1_000_000


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        from service.logs import configure_logging, secret_values

        configure_logging(settings.log_level, secret_values(settings))
        command: Command = args.command
        return command(args, settings)
    except DirectoryInUse as exc:
        print(f"trace-analytics: {_busy_message(exc)}", file=sys.stderr)
        return 2
    except (ConfigError, EngineUnavailable, MigrationError, CannotListen) as exc:
        print(f"trace-analytics: {exc}", file=sys.stderr)
        return 2
    except UsageError as exc:
        print(f"trace-analytics {args.name}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `trace-analytics backfill --list | head`: the reader left
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad command line is one line (and exit 2), not usage plus an error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see `{self.prog} --help`)\n")


def _count(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{raw!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high} (got {value})")
        return value

    return parse


def _seconds(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a number of seconds") from None
    if not 0 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"must be between 0 and 3600 seconds (got {raw})")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="trace-analytics",
        description="ClickHouse-centered analytics for LLM and agent traces. "
        "Configuration comes from TA_* environment variables (see README).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {service.__version__}")
    sub = parser.add_subparsers(dest="name", required=True, metavar="COMMAND")
    served = " While an embedded `serve` runs on the same directory, this goes through its API."

    serve = sub.add_parser(
        "serve",
        help="run the HTTP API and the scheduler (the main job)",
        description="Run the API and the scheduled jobs in one process. The embedded default "
        "(chdb://./data) migrates itself; a server must be migrated first.",
    )
    serve.set_defaults(command=run_serve)

    migrate = sub.add_parser(
        "migrate",
        help="apply pending schema migrations (or --status)",
        description="Apply the numbered files in queries/migrations in order." + served,
    )
    migrate.add_argument("--status", action="store_true", help="show applied and pending only")
    migrate.set_defaults(command=run_migrate)

    demo = sub.add_parser(
        "demo",
        help="write realistic synthetic traces through the ingest path",
        description="Write synthetic traces spread over the last two days, through the same "
        "validation and writer as POST /v1/ingest, so every endpoint returns data." + served,
    )
    demo.add_argument(
        "--traces",
        type=_count(1, MAX_DEMO_TRACES),
        default=3000,
        help="how many traces (default 3000)",
    )
    demo.add_argument("--project", default="default", help="project id (default 'default')")
    demo.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    demo.set_defaults(command=run_demo)

    check = sub.add_parser(
        "check",
        help="run one conclusion pass (detect, then deliver) and exit",
        description="Conclude this shard's quiet traces (TA_SHARD_INDEX of TA_SHARD_COUNT), "
        "then attempt their due deliveries once, print the counts and exit. Runs even with "
        "TA_SCHEDULER_ENABLED=false, which only stops the scheduled jobs." + served,
    )
    check.set_defaults(command=run_check_command)

    rollup = sub.add_parser(
        "rollup",
        help="run one rollup pass (bring changed traces' usage/latency up to date) and exit",
        description="Bring every trace touched since the rollup watermark up to date in the "
        "rollup ledger, advance the watermark, print what it did. The first pass on a "
        "database covers the 30 days of activity kept. The ledger has one writer: against "
        "a server, don't run this while a `serve` on shard 0 runs its passes." + served,
    )
    rollup.set_defaults(command=run_rollup_command)

    backfill = sub.add_parser(
        "backfill",
        help="run a chunked backfill (durations, rollups) with progress",
        description="Create a backfill job and run it here in bounded chunks, pausing between "
        "them; progress is persisted, so Ctrl-C pauses and --resume (or serve) continues."
        + served
        + " There serve's scheduler runs the job and Ctrl-C only stops following it.",
    )
    _add_backfill_arguments(backfill)
    backfill.set_defaults(command=run_backfill)
    return parser


def _add_backfill_arguments(parser: argparse.ArgumentParser) -> None:
    """The `backfill` options and its `durations` / `rollups` sub-commands."""
    from service.jobs.requests import MAX_ROLLUP_CHUNK
    from service.rollups.ledger import CHUNK_TRACES

    parser.add_argument("--list", action="store_true", help="list jobs and their progress")
    parser.add_argument("--resume", metavar="JOB_ID", help="continue a paused or interrupted job")
    pause_help = "seconds between chunks (default TA_BACKFILL_PAUSE_SECONDS)"
    parser.add_argument("--pause", type=_seconds, default=None, help=pause_help)
    kinds = parser.add_subparsers(dest="backfill_kind", metavar="KIND")
    durations = kinds.add_parser(
        "durations", help="recompute named durations of already-concluded traces"
    )
    durations.add_argument("--definition", help="only this definition (default: all)")
    durations.add_argument("--project", help="only this project (default: every project)")
    durations.add_argument(
        "--batch-size",
        type=_count(1, 100_000),
        default=None,
        help="traces per chunk (TA_BACKFILL_BATCH_SIZE)",
    )
    rollups = kinds.add_parser(
        "rollups", help="bring the usage/latency rollups of a range's traces up to date"
    )
    for kind in (durations, rollups):
        # Also after the kind; SUPPRESS keeps a value given before it (argparse would reset it).
        kind.add_argument("--pause", type=_seconds, default=argparse.SUPPRESS, help=pause_help)
    rollups.add_argument("--from", dest="start", help="RFC 3339 start (default: open)")
    rollups.add_argument("--to", dest="end", help="RFC 3339 end (default: open)")
    rollups.add_argument(
        "--batch-size",
        type=_count(1, MAX_ROLLUP_CHUNK),
        default=None,
        help=f"traces per chunk (default {CHUNK_TRACES})",
    )


# Where a command runs: here, or in the serve that holds the embedded directory.


@contextmanager
def engine_or_serve(
    settings: Settings, *, prepare: bool = True
) -> Iterator[ClickHouse | RunningServe]:
    """This process's engine, or — when a running `serve` holds the directory — that serve."""
    busy: DirectoryInUse | None = None
    try:
        ch = open_engine(settings, prepare=prepare)
    except DirectoryInUse as exc:
        busy = exc
    if busy is not None:
        with running_serve(busy, settings) as remote:
            if remote is None:
                raise busy
            yield remote
        return
    try:
        yield ch
    finally:
        ch.close()


def _busy_message(exc: DirectoryInUse) -> str:
    """The busy-directory line, naming the serve that holds it when it is one."""
    from service.server import read_address

    address = read_address(exc.path)
    if address is None or address.pid != exc.pid:
        return str(exc)
    return (
        f"embedded ClickHouse data directory {exc.path} is held by serve (pid {exc.pid}) at "
        f"{address.url}; stop it first, or set TA_CLICKHOUSE_URL to another chdb:// directory "
        "or a ClickHouse server"
    )


def _already_served(settings: Settings) -> str | None:
    """Why `serve` need not start: a live serve already serves this embedded directory."""
    from service.server import read_address

    path = parse_target(settings.clickhouse_url).embedded_path
    address = None if path is None else read_address(path)
    if address is None:
        return None
    try:
        os.kill(address.pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return f"{path} is already served by serve (pid {address.pid}) at {address.url}"


# Commands.


def run_serve(args: argparse.Namespace, settings: Settings) -> int:
    from service.api import app_context, create_app
    from service.conclusions.transport import environment_proxy
    from service.server import bind, remove_address, serve, write_address

    # Bind first: a port in use is one line, before anything is migrated or scheduled.
    try:
        listener = bind(settings.bind_host, settings.port)
    except CannotListen as exc:
        raise CannotListen(_already_served(settings) or str(exc)) from None
    if settings.analyze_url is not None:
        # The app's Sender reads it in the lifespan, where a refusal would be a traceback.
        environment_proxy(settings.analyze_url)
    with contextlib.closing(listener.sock):
        with contextlib.closing(open_engine(settings)) as ch:
            app = create_app(settings, ch)
            log.info(
                "serving",
                extra={
                    "host": listener.host,
                    "port": listener.port,
                    "url": listener.url,
                    "clickhouse": ch.target.display,
                    "auth": "api-keys" if settings.api_keys else "off (loopback only)",
                    "cluster": settings.clickhouse_cluster,
                    "shard": f"{settings.shard_index}/{settings.shard_count}",
                },
            )
            data_dir = ch.target.embedded_path
            if data_dir is not None:
                write_address(data_dir, listener)
            try:
                serve(app, listener, settings, app_context(app).metrics)
            finally:
                if data_dir is not None:
                    remove_address(data_dir)
    return 0


def run_migrate(args: argparse.Namespace, settings: Settings) -> int:
    with engine_or_serve(settings, prepare=False) as target:
        if isinstance(target, RunningServe):
            return _migrate_through(target, status_only=args.status)
        if args.status:
            current = status(target)
            for line in schema_lines(target.target.display, current):
                print(line)
            return 0 if current.up_to_date else 1
        done = apply(target)
        print(f"applied {len(done)} migration(s)" + (f": {', '.join(done)}" if done else ""))
        return 0


def _migrate_through(remote: RunningServe, *, status_only: bool) -> int:
    applied = {row["name"]: row["checksum"] for row in remote.hello["applied"]}
    current = compare(applied, discover())
    if status_only:
        for line in schema_lines(str(remote.hello["database"]), current):
            print(line)
        return 0 if current.up_to_date else 1
    if current.changed or current.unknown:
        raise MigrationError(current.problem() or "schema mismatch")
    if current.pending:
        raise UsageError(
            f"cannot apply migrations while {remote.who} holds {remote.busy.path}: stop it, "
            "then run `trace-analytics migrate` (an embedded serve also applies them when it "
            "starts)"
        )
    print("applied 0 migration(s)")
    return 0


def run_demo(args: argparse.Namespace, settings: Settings) -> int:
    from service.demo import add_demo_definitions, write_demo
    from service.progress import RateEstimate, progress

    with engine_or_serve(settings) as target, progress("demo", "trace") as bar:
        estimate = RateEstimate()
        done = 0

        def advance(traces: int) -> None:
            nonlocal done
            done += traces
            rate = estimate.observe(done)
            bar.update(done, args.traces, rate=rate, eta=estimate.eta(done, args.traces))

        if isinstance(target, RunningServe):
            written, added = _demo_through(target, args, advance)
        else:
            stamp = VersionStamp(system_clock)
            written = write_demo(
                target.role(INGEST),
                stamp,
                traces=args.traces,
                project=args.project,
                now=system_clock(),
                seed=args.seed,
                on_batch=advance,
            )
            added = add_demo_definitions(target, args.project, stamp)
    print(f"wrote {args.traces} traces, {written} observations to project {args.project!r}")
    if added:
        print(f"added duration definitions: {', '.join(added)}")
    return 0


def _demo_through(
    remote: RunningServe, args: argparse.Namespace, advance: Callable[[int], None]
) -> tuple[int, list[str]]:
    """The demo through `POST /v1/ingest` and `POST /v1/duration-definitions`."""
    from service.demo import DEMO_DEFINITIONS, synthetic_batches

    project = {"project_id": args.project}
    written = 0
    try:
        for body in synthetic_batches(
            traces=args.traces, batch_size=250, now=system_clock(), seed=args.seed
        ):
            accepted = remote.post("/v1/ingest", content=body, params=project)["accepted"]
            written += int(accepted["observations"])
            advance(int(accepted["traces"]))
        added = []
        for definition in DEMO_DEFINITIONS:
            try:
                remote.post("/v1/duration-definitions", json=definition, params=project)
            except Rejected as exc:
                if exc.status != 409:  # 409: the project already has it
                    raise
                continue
            added.append(str(definition["name"]))
    except Rejected as exc:
        raise EngineUnavailable(f"{remote.who} refused the demo data: {exc.message}") from None
    return written, added


def run_check_command(args: argparse.Namespace, settings: Settings) -> int:
    from service.conclusions.delivery import Sender

    with engine_or_serve(settings) as target:
        if isinstance(target, RunningServe):
            report = CheckReport.from_json(target.post("/v1/admin/check", slow=True))
        else:
            with contextlib.ExitStack() as stack:
                sender = (
                    stack.enter_context(Sender(settings))
                    if settings.analyze_url is not None
                    else None
                )
                report = run_check(
                    target,
                    settings,
                    sender,
                    clock=system_clock,
                    stamp=VersionStamp(system_clock),
                    stopping=threading.Event(),
                )
    for line in report.lines():
        print(line)
    return 0


def run_rollup_command(args: argparse.Namespace, settings: Settings) -> int:
    with engine_or_serve(settings) as target:
        if isinstance(target, RunningServe):
            report = RollupReport.from_json(target.post("/v1/admin/rollup", slow=True))
        else:
            report = run_rollup(target, system_clock)
    for line in report.lines():
        print(line)
    return 0


def run_backfill(args: argparse.Namespace, settings: Settings) -> int:
    from service.jobs.console import (
        BackfillCommand,
        run_backfill_command,
        run_backfill_remotely,
    )

    command = BackfillCommand(
        kind=args.backfill_kind,
        list_jobs=args.list,
        resume=args.resume,
        pause=args.pause,
        definition=getattr(args, "definition", None),
        project=getattr(args, "project", None),
        batch_size=getattr(args, "batch_size", None),
        start=_time_option(getattr(args, "start", None), "--from"),
        end=_time_option(getattr(args, "end", None), "--to"),
    )
    if not (command.list_jobs or command.resume):
        command.request()  # a bad combination fails before the engine is opened
    with engine_or_serve(settings) as target:
        if isinstance(target, RunningServe):
            return run_backfill_remotely(command, target)
        return run_backfill_command(command, target.role(JOBS), settings)


def _time_option(raw: str | None, flag: str) -> datetime | None:
    if raw is None:
        return None
    try:
        return storable(parse_time(raw))
    except TimeOutOfRange as exc:
        raise UsageError(f"{flag}: {exc}") from None
    except ValueError:
        raise UsageError(f"{flag}: {raw!r} is not an RFC 3339 time") from None
