"""The service over ClickHouse's HTTP protocol, with a server's request limits (issue 10).

These go through the HTTP test double in both modes (`http_url`): a statement that a
server would refuse fails here whatever TA_TEST_ENGINE says.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import orjson
import pytest

from service.clickhouse import ClickHouse, connect
from service.clock import ManualClock, VersionStamp
from service.conclusions.detector import run_detection_pass
from service.durations.materialize import materialize_traces
from service.ingest.decode import parse_batch
from service.ingest.writer import write_rows
from service.migrations import apply
from service.rollups import run_rollup_pass
from service.settings import Settings
from tests.conftest import observation

IDLE = 60


@pytest.fixture
def server_settings(http_url: str) -> Settings:
    return Settings(
        clickhouse_url=http_url,
        scheduler_enabled=False,
        idle_seconds=IDLE,
        check_batch_limit=10_000,
    )


@pytest.fixture
def server(server_settings: Settings) -> Iterator[ClickHouse]:
    ch = connect(server_settings)
    try:
        apply(ch)
        yield ch
    finally:
        ch.close()


def test_a_cli_subprocess_given_the_url_reaches_the_same_database(
    server: ClickHouse, server_settings: Settings
) -> None:
    """The double serves other processes too: TA_CLICKHOUSE_URL is all they need."""
    env = {**os.environ, "TA_CLICKHOUSE_URL": server_settings.clickhouse_url}
    result = subprocess.run(
        [sys.executable, "-m", "service", "migrate", "--status"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "pending:" not in result.stdout


def conclude_idle_traces(ch: ClickHouse, settings: Settings, count: int) -> int:
    """Ingest `count` one-observation traces, let them go quiet, run one detection pass."""
    clock = ManualClock()
    stamp = VersionStamp(clock)
    body = {"observations": [observation(f"o{i}", f"trace-{i:05d}") for i in range(count)]}
    write_rows(ch, parse_batch(orjson.dumps(body)).resolve(lambda _p, _f: "default"), stamp)
    clock.advance(IDLE + 1)
    return len(run_detection_pass(ch, settings, clock=clock, stamp=stamp))


def test_a_detection_pass_over_http_concludes_2000_idle_traces(
    server: ClickHouse, server_settings: Settings
) -> None:
    """Under the server's form-field limit, the server path works as the embedded one."""
    assert conclude_idle_traces(server, server_settings, 2_000) == 2_000


def test_a_detection_pass_over_http_concludes_6000_idle_traces_in_one_go(
    server: ClickHouse, server_settings: Settings
) -> None:
    assert conclude_idle_traces(server, server_settings, 6_000) == 6_000


def test_durations_of_1000_traces_with_long_ids_materialize_over_http(server: ClickHouse) -> None:
    keys = [("default", f"{i:05d}-" + "x" * 194, 1) for i in range(1_000)]
    materialize_traces(server, keys, ManualClock())


def test_a_rollup_pass_over_long_ids_stays_under_the_servers_limits(server: ClickHouse) -> None:
    """The ledger stages dirty traces in a table: no key list travels in a statement."""
    project = "p" * 512  # the longest project id ingest accepts
    clock = ManualClock()
    body = {
        "observations": [
            observation(f"o{i}", f"{i:05d}-" + "x" * 400, project_id=project) for i in range(2_500)
        ]
    }
    rows = parse_batch(orjson.dumps(body)).resolve(lambda p, _f: p or "default")
    write_rows(server, rows, VersionStamp(clock))
    clock.advance(60)
    result = run_rollup_pass(server, clock)
    assert result.dirty_traces == 2_500
    [(observations,)] = server.query_rows(
        "t",
        sql="SELECT sum(n) FROM rollup_ledger WHERE project_id = {p:String} "
        "AND view = 'hour' AND kind = 'observation'",
        parameters={"p": project},
    )
    assert observations == 2_500
