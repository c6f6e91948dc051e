"""A ClickHouse server over HTTP: what the roles send on the wire, the version gate, timeouts.

chDB never shows sessions or server-only settings, so these tests read the requests a
recording stub received (`tests/clickhouse_stub.py`), and time start-up against a socket
that accepts connections and never answers.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from urllib3.exceptions import ConnectTimeoutError, ReadTimeoutError

from service.cli import main
from service.clickhouse import ClickHouse, connect, describe_error
from service.engine_roles import API, DELIVER, DETECT, INGEST, JOBS, ROLLUPS
from service.engine_version import parse_version, version_problem
from service.errors import EngineUnavailable
from service.settings import Settings
from tests.clickhouse_stub import Recorded, StubClickHouse


@pytest.fixture
def stub() -> Iterator[StubClickHouse]:
    with StubClickHouse().running() as running:
        yield running


def server_engine(stub: StubClickHouse, cluster: str | None) -> ClickHouse:
    return connect(
        Settings(clickhouse_url=stub.url, clickhouse_cluster=cluster, query_timeout_seconds=12)
    )


def only(requests: list[Recorded]) -> Recorded:
    assert len(requests) == 1, requests
    return requests[0]


def sent_settings(request: Recorded) -> dict[str, str]:
    transport = {"query_id", "session_id", "database", "wait_end_of_query", "query"}
    return {k: v for k, v in request.params.items() if k not in transport}


def test_each_background_role_keeps_one_session_of_its_own(stub: StubClickHouse) -> None:
    ch = server_engine(stub, cluster=None)
    try:
        for role in (DETECT, DELIVER, ROLLUPS, JOBS, API, INGEST):
            for _ in range(2):
                ch.role(role).query_rows("probe", sql=f"SELECT '{role}'")
    finally:
        ch.close()
    sessions: dict[str, set[str | None]] = {}
    for role in (DETECT, DELIVER, ROLLUPS, JOBS, API, INGEST):
        sent = stub.statements(f"SELECT '{role}'")
        assert len(sent) == 2
        sessions[role] = {r.session_id for r in sent}
    for role in (DETECT, DELIVER, ROLLUPS, JOBS):
        [session] = sessions[role]
        assert session is not None
        assert session.startswith(f"trace-analytics-{role}-")
    background = [next(iter(sessions[r])) for r in (DETECT, DELIVER, ROLLUPS, JOBS)]
    assert len(set(background)) == 4
    assert sessions[API] == {None}
    assert sessions[INGEST] == {None}


@pytest.mark.parametrize("cluster", [None, "prod"], ids=["single server", "cluster"])
def test_roles_send_their_settings_on_the_wire(stub: StubClickHouse, cluster: str | None) -> None:
    ch = server_engine(stub, cluster=cluster)
    try:
        ch.role(ROLLUPS).query_rows("probe", sql="SELECT 201")
        ch.role(ROLLUPS).command("probe", sql="INSERT INTO rollup_state SELECT 202")
        ch.role(JOBS).insert("jobs", ["id"], [["j1"]], by_column=False)
        ch.role(INGEST).insert("observations", ["id"], [["o1"]], by_column=False)
        ch.role(API).query_rows("probe", sql="SELECT 203")
    finally:
        ch.close()
    on_cluster = cluster is not None
    consistent = {"select_sequential_consistency": "1"} if on_cluster else {}
    quorum = {"insert_quorum": "auto"} if on_cluster else {}
    bound = {"max_execution_time": "12.0"}
    assert sent_settings(only(stub.statements("SELECT 201"))) == {**bound, **consistent}
    assert sent_settings(only(stub.statements("INSERT INTO rollup_state"))) == {
        **bound,
        **consistent,
        **quorum,
    }
    assert sent_settings(only(stub.statements("INSERT INTO `jobs`"))) == {**bound, **quorum}
    assert sent_settings(only(stub.statements("INSERT INTO `observations`"))) == {
        **bound,
        "async_insert": "1",
        "wait_for_async_insert": "1",
    }
    assert sent_settings(only(stub.statements("SELECT 203"))) == bound


# The version gate.


def test_a_server_older_than_the_minimum_is_refused_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with StubClickHouse(version="24.3.5.47").running() as old:
        with pytest.raises(EngineUnavailable) as caught:
            connect(Settings(clickhouse_url=old.url))
        message = str(caught.value)
        assert "24.3.5.47" in message
        assert "24.8 or newer" in message
        assert "127.0.0.1" in message
        assert "\n" not in message
        monkeypatch.setenv("TA_CLICKHOUSE_URL", old.url)
        root = logging.getLogger()
        handlers, level = list(root.handlers), root.level
        try:
            for command in (["migrate", "--status"], ["migrate"], ["serve"], ["rollup"], ["check"]):
                assert main(command) == 2, command
        finally:
            root.handlers[:] = handlers
            root.setLevel(level)
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 5
    assert all("runs ClickHouse 24.3.5.47" in line for line in errors)


def test_a_supported_server_passes_the_gate(stub: StubClickHouse) -> None:
    connect(Settings(clickhouse_url=stub.url)).close()
    assert only(stub.statements("SELECT version()\n"))


def test_embedded_chdb_passes_the_same_gate(clickhouse: ClickHouse) -> None:
    [(found,)] = clickhouse.query_rows("schema/server_version")
    assert version_problem(found) is None
    parsed = parse_version(found)
    assert parsed is not None
    assert parsed >= (24, 8)


# Timeouts: start-up against a server that never answers ends within the configured bounds.


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts TCP connections and never sends a byte."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    listener.close()


def test_a_server_that_never_answers_fails_start_up_in_one_line_within_the_timeouts(
    silent_server: int,
) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TA_")},
        "TA_CLICKHOUSE_URL": f"http://default:s3cret@127.0.0.1:{silent_server}/analytics",
        "TA_QUERY_TIMEOUT_SECONDS": "1",
        "TA_CLICKHOUSE_CONNECT_TIMEOUT_SECONDS": "1",
    }
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "service", "migrate", "--status"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert f"127.0.0.1:{silent_server}" in lines[0]
    assert "no answer within 6 s" in lines[0]
    assert "s3cret" not in lines[0]
    assert "HTTPConnectionPool" not in lines[0]
    # A functional bound (the default read timeout is 300 s), not a speed claim.
    assert elapsed < 20


def test_a_refused_connection_is_one_line_naming_the_host(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    url = f"http://127.0.0.1:{port}/db"
    with pytest.raises(EngineUnavailable) as caught:
        connect(Settings(clickhouse_url=url))
    assert str(caught.value) == f"could not reach ClickHouse at {url}: connection refused"
    monkeypatch.setenv("TA_CLICKHOUSE_URL", url)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        assert main(["migrate", "--status"]) == 2
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    # urllib3's retry warning and clickhouse-connect's transport warning stay out of it.
    assert capsys.readouterr().err.strip().splitlines() == [
        f"trace-analytics: could not reach ClickHouse at {url}: connection refused"
    ]


def test_timeouts_are_described_by_the_setting_that_bounds_them() -> None:
    read = ReadTimeoutError(None, "/", "Read timed out.")  # type: ignore[arg-type]
    connect_ = ConnectTimeoutError("timed out")
    wrapped = RuntimeError("Error HTTPConnectionPool(host='h', port=1): ...")
    wrapped.__cause__ = read
    assert describe_error(wrapped, {"send_receive_timeout": 35}) == (
        "no answer within 35 s (read timeout: TA_QUERY_TIMEOUT_SECONDS + 5 s)"
    )
    assert describe_error(connect_, {"connect_timeout": 5}) == (
        "could not connect within 5 s (TA_CLICKHOUSE_CONNECT_TIMEOUT_SECONDS)"
    )


def test_server_errors_are_reduced_to_their_message_and_code() -> None:
    raw = RuntimeError(
        "HTTPDriver for http://h:8123 received ClickHouse error code 516\n"
        " Code: 516. DB::Exception: default: Authentication failed: password is incorrect, "
        "or there is no user with such name. (AUTHENTICATION_FAILED) (version 24.8.4.13 "
        "(official build))\n"
    )
    assert describe_error(raw) == (
        "default: Authentication failed: password is incorrect, or there is no user with such "
        "name (code 516)"
    )
