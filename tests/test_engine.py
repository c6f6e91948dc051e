"""The embedded engine: one process per data directory, connections by role, bounded statements."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from clickhouse_connect.driver.exceptions import ClickHouseError
from starlette.applications import Starlette
from starlette.testclient import TestClient

from service.api import app_context
from service.clickhouse import (
    MAX_KEY_BYTES_PER_STATEMENT,
    ClickHouse,
    connect,
    key_chunks,
    parse_target,
)
from service.engine_roles import API, DELIVER, DETECT, INGEST, JOBS, ROLLUPS
from service.errors import EngineUnavailable
from service.settings import Settings
from service.traces.summary import fetch_summaries
from tests.conftest import trace


@pytest.mark.embedded_only
def test_a_second_process_gets_one_line_naming_the_directory(
    clickhouse: ClickHouse, settings: Settings
) -> None:
    path = parse_target(settings.clickhouse_url).embedded_path
    env = {**os.environ, "TA_CLICKHOUSE_URL": settings.clickhouse_url}
    result = subprocess.run(
        [sys.executable, "-m", "service", "migrate", "--status"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert str(path) in lines[0]
    assert "in use by another process" in lines[0]
    assert "Traceback" not in result.stderr


def test_server_urls_are_displayed_without_the_password() -> None:
    target = parse_target("https://analytics:s3cret@ch.internal:8443/traces")
    assert target.display == "https://ch.internal:8443/traces"
    assert "s3cret" not in target.display


def test_key_lists_are_cut_by_count_and_by_size() -> None:
    small = [("p", f"t{i}") for i in range(2500)]
    assert [len(c) for c in key_chunks(small)] == [1000, 1000, 500]
    big = [("p", "x" * 20_000) for _ in range(10)]
    chunks = list(key_chunks(big))
    assert all(sum(len(t) for _, t in c) <= MAX_KEY_BYTES_PER_STATEMENT for c in chunks)
    assert [k for c in chunks for k in c] == big


def test_summaries_of_more_traces_than_one_statement_binds(clickhouse: ClickHouse) -> None:
    keys = [("default", f"t{i:05d}") for i in range(2600)]
    clickhouse.command(
        "seed",
        sql="INSERT INTO observations (project_id, trace_id, id, type, start_time, ingested_at) "
        "SELECT 'default', concat('t', leftPad(toString(number), 5, '0')), 'o', 'span', "
        "now64(3), now64(6) FROM numbers(2600)",
    )
    summaries = fetch_summaries(clickhouse, keys)
    assert len(summaries) == 2600
    assert {s.observations for s in summaries.values()} == {1}


# Engine roles: each role its own connections, so no statement queues behind another role's.

# About four seconds of engine time, on whichever connection runs it.
SLOW = "SELECT sum(sleepEachRow(0.1)) FROM numbers(40) SETTINGS max_block_size = 1"
RUNNING_SLOW = (
    "SELECT count() FROM system.processes "
    "WHERE query LIKE '%sleepEachRow(0.1)%' AND query NOT LIKE '%system.processes%'"
)


def start_slow_statement(ch: ClickHouse, watcher: ClickHouse) -> threading.Thread:
    """Run SLOW on `ch` in a thread; return once `watcher` sees it running in the engine."""
    thread = threading.Thread(target=ch.query_rows, args=("slow",), kwargs={"sql": SLOW})
    thread.start()
    while not watcher.query_rows("running", sql=RUNNING_SLOW)[0][0]:
        assert thread.is_alive(), "the slow statement ended before it was seen running"
    return thread


@pytest.mark.embedded_only  # chDB connections and the directory lock
def test_a_read_never_waits_for_a_statement_of_another_role(clickhouse: ClickHouse) -> None:
    api = clickhouse.role(API)
    slow = start_slow_statement(clickhouse.role(ROLLUPS), watcher=api)
    try:
        assert api.query_rows("read", sql="SELECT 1") == [(1,)]
        # Answered while the background statement still runs: it did not queue behind it.
        assert slow.is_alive()
    finally:
        slow.join()


@pytest.mark.embedded_only  # chDB connections and the directory lock
def test_on_one_connection_a_read_does_wait_for_the_slow_statement(
    clickhouse: ClickHouse,
) -> None:
    """What the test above guards against: the old single shared connection."""
    jobs = clickhouse.role(JOBS)
    slow = start_slow_statement(jobs, watcher=clickhouse.role(API))
    try:
        assert jobs.query_rows("read", sql="SELECT 1") == [(1,)]
        assert not slow.is_alive()
    finally:
        slow.join()


@pytest.mark.embedded_only  # chDB connections and the directory lock
def test_api_reads_run_side_by_side_on_at_most_the_configured_connections(
    settings: Settings, migrated_template: Path
) -> None:
    shutil.copytree(migrated_template, parse_target(settings.clickhouse_url).embedded_path)
    ch = connect(settings.model_copy(update={"api_connections": 2}))
    try:
        api = ch.role(API)
        assert api is ch.role(API)
        readers = [
            threading.Thread(
                target=api.query_rows, args=("r",), kwargs={"sql": "SELECT sleep(0.5)"}
            )
            for _ in range(5)
        ]
        for reader in readers:
            reader.start()
        for reader in readers:
            reader.join()
        assert api.connections_opened == 2
        assert ch.role(INGEST).connections_opened == 0
    finally:
        ch.close()


@pytest.mark.embedded_only  # chDB connections and the directory lock
@pytest.mark.parametrize("role", [API, ROLLUPS, INGEST])
def test_the_statement_time_bound_holds_on_every_role_connection(
    settings: Settings, migrated_template: Path, role: str
) -> None:
    shutil.copytree(migrated_template, parse_target(settings.clickhouse_url).embedded_path)
    ch = connect(settings.model_copy(update={"query_timeout_seconds": 0.5}))
    try:
        with pytest.raises(ClickHouseError, match="TIMEOUT_EXCEEDED"):
            ch.role(role).query_rows("slow", sql=SLOW)
    finally:
        ch.close()


def directory_is_locked(path: Path) -> bool:
    """Whether this process still holds the embedded directory's lock (a new open file
    description conflicts with the held one, even in the same process)."""
    fd = os.open(path / ".trace-analytics.lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


@pytest.mark.embedded_only  # chDB connections and the directory lock
def test_roles_close_with_the_engine_that_opened_them(
    settings: Settings, migrated_template: Path
) -> None:
    path = parse_target(settings.clickhouse_url).embedded_path
    assert path is not None
    shutil.copytree(migrated_template, path)
    ch = connect(settings)
    detect = ch.role(DETECT)
    detect.query_rows("t", sql="SELECT 1")
    detect.close()  # a role alone does not close: the engine owns it
    assert detect.query_rows("t", sql="SELECT 1") == [(1,)]
    assert directory_is_locked(path)
    ch.close()
    assert not directory_is_locked(path)
    with pytest.raises(EngineUnavailable, match="closed"):
        detect.query_rows("t", sql="SELECT 1")
    with pytest.raises(EngineUnavailable, match="closed"):
        ch.role(DELIVER)


def test_observers_see_the_statements_of_every_role(clickhouse: ClickHouse) -> None:
    seen: list[str] = []
    clickhouse.add_observer(lambda name, seconds: seen.append(name))
    clickhouse.role(ROLLUPS).query_rows("from-rollups", sql="SELECT 1")
    clickhouse.role(API).query_rows("from-api", sql="SELECT 1")
    assert seen == ["from-rollups", "from-api"]


def test_an_unknown_role_is_refused(clickhouse: ClickHouse) -> None:
    with pytest.raises(KeyError, match="unknown engine role"):
        clickhouse.role("rollup")


def test_the_scheduler_runs_each_job_on_its_own_role(clickhouse: ClickHouse) -> None:
    from service.context import build_context
    from service.scheduler import default_jobs

    ctx = build_context(Settings(clickhouse_url="chdb://unused"), clickhouse)
    jobs = default_jobs(ctx)
    engines = {job.id: getattr(job.run, "args", ())[0].role_name for job in jobs}
    assert engines == {
        "conclusions.detect": DETECT,
        "conclusions.deliver": DELIVER,
        "rollups.recompute": ROLLUPS,
        "jobs.run": JOBS,
    }
    assert ctx.clickhouse.role_name == API


def test_ingest_writes_on_the_ingest_role(client: TestClient, app: Starlette) -> None:
    ctx = app_context(app)
    response = client.post("/v1/ingest", json={"traces": [trace("t1")]})
    assert response.status_code == 202
    assert ctx.ingest.ch is ctx.engine(INGEST)  # the one writer, OTLP's too
    assert ctx.engine(INGEST).connections_opened == 1
