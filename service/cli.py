"""The `trace-analytics` command: parse, build objects, call one function.

Start-up problems (a bad TA_* value, a busy embedded directory, a schema mismatch) end with
one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime

from service.clickhouse import ClickHouse, connect
from service.clock import VersionStamp, system_clock
from service.errors import ConfigError, EngineUnavailable, MigrationError, UsageError
from service.migrations import apply, require_current, status
from service.settings import Settings, load_settings
from service.times import parse_time

log = logging.getLogger(__name__)

Command = Callable[[argparse.Namespace, Settings], int]


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
    except (ConfigError, EngineUnavailable, MigrationError) as exc:
        print(f"trace-analytics: {exc}", file=sys.stderr)
        return 2
    except UsageError as exc:
        print(f"trace-analytics {args.name}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trace-analytics",
        description="ClickHouse-centered analytics for LLM and agent traces. "
        "Configuration comes from TA_* environment variables (see README).",
    )
    sub = parser.add_subparsers(dest="name", required=True, metavar="COMMAND")

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
        description="Apply the numbered files in queries/migrations in order.",
    )
    migrate.add_argument("--status", action="store_true", help="show applied and pending only")
    migrate.set_defaults(command=run_migrate)

    demo = sub.add_parser(
        "demo",
        help="write realistic synthetic traces through the ingest path",
        description="Write synthetic traces spread over the last two days, through the same "
        "validation and writer as POST /v1/ingest, so every endpoint returns data.",
    )
    demo.add_argument("--traces", type=int, default=3000, help="how many traces (default 3000)")
    demo.add_argument("--project", default="default", help="project id (default 'default')")
    demo.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    demo.set_defaults(command=run_demo)

    check = sub.add_parser(
        "check",
        help="run one conclusion pass (detect, then deliver) and exit",
        description="Conclude this shard's quiet traces (TA_SHARD_INDEX of TA_SHARD_COUNT), "
        "then attempt their due deliveries once, print the counts and exit. Runs even with "
        "TA_SCHEDULER_ENABLED=false, which only stops the scheduled jobs.",
    )
    check.set_defaults(command=run_check)

    rollup = sub.add_parser(
        "rollup",
        help="run one rollup pass (recompute dirty usage/latency buckets) and exit",
        description="Recompute every (project, hour) bucket touched since the rollup "
        "watermark from live raw rows, publish it, advance the watermark, print what it did. "
        "The first pass on a database covers all history. Safe to run while `serve` runs.",
    )
    rollup.set_defaults(command=run_rollup)

    backfill = sub.add_parser(
        "backfill",
        help="run a chunked backfill (durations, rollups) with a progress bar",
        description="Create a backfill job and run it here in bounded chunks, pausing between "
        "them; progress is persisted, so Ctrl-C pauses and --resume (or serve) continues.",
    )
    _add_backfill_arguments(backfill)
    backfill.set_defaults(command=run_backfill)
    return parser


def _add_backfill_arguments(parser: argparse.ArgumentParser) -> None:
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
    rollups = kinds.add_parser("rollups", help="recompute hourly usage/latency rollups")
    rollups.add_argument("--from", dest="start", help="RFC 3339 start (default: first row)")
    rollups.add_argument("--to", dest="end", help="RFC 3339 end (default: now)")
    rollups.add_argument("--hours-per-chunk", type=int, default=6, help="hours per chunk")


@contextmanager
def engine(settings: Settings) -> Iterator[ClickHouse]:
    """Connect, make sure the schema fits (the embedded default migrates itself), close."""
    ch = connect(settings)
    try:
        if ch.embedded:
            apply(ch)
        else:
            require_current(ch)
        yield ch
    finally:
        ch.close()


def run_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from service.api import create_app

    with engine(settings) as ch:
        app = create_app(settings, ch)
        log.info(
            "serving",
            extra={
                "host": settings.bind_host,
                "port": settings.port,
                "clickhouse": ch.target.display,
                "auth": "api-keys" if settings.api_keys else "off (loopback only)",
                "cluster": settings.clickhouse_cluster,
                "shard": f"{settings.shard_index}/{settings.shard_count}",
            },
        )
        uvicorn.run(
            app,
            host=settings.bind_host,
            port=settings.port,
            workers=1,
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=30,
        )
    return 0


def run_migrate(args: argparse.Namespace, settings: Settings) -> int:
    ch = connect(settings)
    try:
        if args.status:
            current = status(ch)
            print(f"database: {ch.target.display}")
            print(f"current:  {current.current or 'none'}")
            print(f"wanted:   {current.wanted}")
            for name in current.pending:
                print(f"pending:  {name}")
            for name in current.changed:
                print(f"CHANGED:  {name} (edited after it was applied)")
            for name in current.unknown:
                print(f"UNKNOWN:  {name} (applied by a newer build)")
            return 0 if current.up_to_date else 1
        done = apply(ch)
        print(f"applied {len(done)} migration(s)" + (f": {', '.join(done)}" if done else ""))
        return 0
    finally:
        ch.close()


def run_demo(args: argparse.Namespace, settings: Settings) -> int:
    from tqdm import tqdm

    from service.demo import add_demo_definitions, write_demo

    with engine(settings) as ch:
        stamp = VersionStamp(system_clock)
        with tqdm(total=args.traces, unit="trace", disable=None) as bar:
            written = write_demo(
                ch,
                stamp,
                traces=args.traces,
                project=args.project,
                now=system_clock(),
                seed=args.seed,
                on_batch=bar.update,
            )
        print(f"wrote {args.traces} traces, {written} observations to project {args.project!r}")
        added = add_demo_definitions(ch, args.project, stamp)
        if added:
            print(f"added duration definitions: {', '.join(added)}")
    return 0


def run_check(args: argparse.Namespace, settings: Settings) -> int:
    from service.conclusions import run_delivery_pass, run_detection_pass
    from service.conclusions.delivery import Sender

    with engine(settings) as ch:
        stamp = VersionStamp(system_clock)
        concluded = run_detection_pass(ch, settings, clock=system_clock, stamp=stamp)
        print(f"concluded {len(concluded)} trace(s)")
        if settings.analyze_url is None:
            print("TA_ANALYZE_URL is unset: conclusions recorded, not delivered")
            return 0
        with Sender(settings) as sender:
            report = run_delivery_pass(
                ch, settings, sender, clock=system_clock, stamp=stamp, stopping=threading.Event()
            )
        print(
            f"delivered {report.delivered}, retrying {report.retrying}, dead {report.dead}; "
            f"open now: {report.pending} pending, {report.dead_total} dead"
        )
        for error in report.errors:  # the first few distinct reasons, when any failed
            print(f"  failed: {error}")
    return 0


def run_rollup(args: argparse.Namespace, settings: Settings) -> int:
    from service.rollups import pending_buckets, run_rollup_pass

    with engine(settings) as ch:
        result = run_rollup_pass(ch, system_clock)
        print(result.describe())
        print(f"buckets still pending: {pending_buckets(ch)}")
    return 0


def run_backfill(args: argparse.Namespace, settings: Settings) -> int:
    from service.jobs.console import BackfillCommand, run_backfill_command

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
        hours_per_chunk=getattr(args, "hours_per_chunk", 6),
    )
    with engine(settings) as ch:
        return run_backfill_command(command, ch, settings)


def _time_option(raw: str | None, flag: str) -> datetime | None:
    if raw is None:
        return None
    try:
        return parse_time(raw)
    except ValueError:
        raise UsageError(f"{flag}: {raw!r} is not an RFC 3339 time") from None
