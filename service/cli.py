"""The `trace-analytics` command: parse, build objects, call one function.

Start-up problems (a bad TA_* value, a busy embedded directory, a schema mismatch) end with
one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from service.clickhouse import ClickHouse, EngineUnavailable, connect
from service.clock import VersionStamp
from service.migrations import MigrationError, apply, require_current, status
from service.settings import Settings, SettingsError, load_settings

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
    except (SettingsError, EngineUnavailable, MigrationError) as exc:
        print(f"trace-analytics: {exc}", file=sys.stderr)
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
        help="run one rollup pass (bring changed traces' usage/latency up to date) and exit",
        description="Bring every trace touched since the rollup watermark up to date in the "
        "rollup ledger, advance the watermark, print what it did. The first pass on a "
        "database covers the 30 days of activity kept. The ledger has one writer: against "
        "a server, don't run this while a `serve` on shard 0 runs its passes.",
    )
    rollup.set_defaults(command=run_rollup)

    backfill = sub.add_parser(
        "backfill",
        help="run a chunked backfill (durations, rollups) with a progress bar",
        description="Create a backfill job and run it here in bounded chunks, pausing between "
        "them; progress is persisted, so Ctrl-C pauses and --resume (or serve) continues.",
    )
    from service.jobs.console import add_arguments as add_backfill_arguments

    add_backfill_arguments(backfill)
    backfill.set_defaults(command=run_backfill)
    return parser


def open_migrated(settings: Settings) -> ClickHouse:
    """Connect; the embedded default migrates itself, a server must already match."""
    ch = connect(settings)
    try:
        if ch.embedded:
            apply(ch)
        else:
            require_current(ch)
    except BaseException:
        ch.close()
        raise
    return ch


def run_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from service.api import create_app

    ch = open_migrated(settings)
    try:
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
    finally:
        ch.close()
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

    from service.api.auth import Principal
    from service.clock import system_clock
    from service.demo import synthetic_batches
    from service.ingest.models import parse_batch
    from service.ingest.writer import write_batch

    ch = open_migrated(settings)
    try:
        stamp = VersionStamp(system_clock)
        admin = Principal(project=None)
        written = 0
        batches = synthetic_batches(
            traces=args.traces, batch_size=250, now=datetime.now(UTC), seed=args.seed
        )
        with tqdm(total=args.traces, unit="trace", disable=None) as bar:
            for body in batches:
                batch = parse_batch(body)
                result = write_batch(
                    ch,
                    batch,
                    lambda project, field: admin.write_project(project, args.project, field),
                    stamp,
                )
                written += result.observations
                bar.update(result.traces)
        print(f"wrote {args.traces} traces, {written} observations to project {args.project!r}")
        added = add_demo_definitions(ch, args.project, stamp)
        if added:
            print(f"added duration definitions: {', '.join(added)}")
        return 0
    finally:
        ch.close()


def add_demo_definitions(ch: ClickHouse, project: str, stamp: VersionStamp) -> list[str]:
    """Named durations for the demo project, unless it already has them.

    They are materialized as the demo traces conclude under `serve`, so
    `/v1/traces/{id}/durations` has data without any further step.
    """
    from service.demo import DEMO_DEFINITIONS
    from service.durations.definitions import DurationDefinitionIn, parse_definition
    from service.durations.store import get_definition, save_definition

    added = []
    for body in DEMO_DEFINITIONS:
        definition = parse_definition(DurationDefinitionIn, body)
        if get_definition(ch, project, definition.name) is None:
            save_definition(ch, project, definition.name, definition, stamp.next())
            added.append(definition.name)
    return added


def run_check(args: argparse.Namespace, settings: Settings) -> int:
    import threading

    from service.clock import system_clock
    from service.conclusions import run_delivery_pass, run_detection_pass

    ch = open_migrated(settings)
    try:
        stamp = VersionStamp(system_clock)
        concluded = run_detection_pass(ch, settings, clock=system_clock, stamp=stamp)
        print(f"concluded {len(concluded)} trace(s)")
        if settings.analyze_url is None:
            print("TA_ANALYZE_URL is unset: conclusions recorded, not delivered")
            return 0
        report = run_delivery_pass(
            ch, settings, clock=system_clock, stamp=stamp, stopping=threading.Event()
        )
        print(
            f"delivered {report.delivered}, retrying {report.retrying}, dead {report.dead}; "
            f"open now: {report.pending} pending, {report.dead_total} dead"
        )
        return 0
    finally:
        ch.close()


def run_rollup(args: argparse.Namespace, settings: Settings) -> int:
    from service.clock import system_clock
    from service.rollups import pending_buckets, run_rollup_pass

    ch = open_migrated(settings)
    try:
        result = run_rollup_pass(ch, system_clock)
        print(result.describe())
        print(f"buckets still pending: {pending_buckets(ch)}")
        return 0
    finally:
        ch.close()


def run_backfill(args: argparse.Namespace, settings: Settings) -> int:
    from service.jobs.console import BackfillUsageError, run_backfill_command

    ch = open_migrated(settings)
    try:
        return run_backfill_command(args, ch, settings)
    except BackfillUsageError as exc:
        print(f"trace-analytics backfill: {exc}", file=sys.stderr)
        return 2
    finally:
        ch.close()
