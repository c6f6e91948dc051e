"""Idle and slow clients cannot starve `serve`: real sockets against a real process.

The limits are small here so the tests need few sockets, and waits are bounded generously:
they wait for something to happen, they do not measure how fast.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from service.server import FD_RESERVE, ConnectionLimits, connection_limit
from service.settings import Settings
from tests.subprocesses import Serve, base_env, copy_template, serve

WAIT = 60.0


def connect(running: Serve) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", running.port), timeout=WAIT)
    return sock


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (b"" when it closed without a word)."""
    sock.settimeout(WAIT)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def status_of(answer: bytes) -> int:
    match = re.match(rb"HTTP/1\.1 (\d{3}) ", answer)
    assert match, answer[:100]
    return int(match.group(1))


def metric(running: Serve, sample: str) -> float:
    text = httpx.get(running.url + "/metrics", timeout=WAIT).text
    match = re.search(rf"^{re.escape(sample)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


@pytest.fixture
def limited(tmp_path: Path, migrated_template: Path) -> Iterator[Serve]:
    data = copy_template(migrated_template, tmp_path / "data")
    env = base_env(
        TA_HTTP_MAX_CONNECTIONS="20",
        TA_HTTP_KEEPALIVE_SECONDS="2",
        TA_HTTP_HEADER_TIMEOUT_SECONDS="2",
        TA_HTTP_BODY_TIMEOUT_SECONDS="2",
        TA_CHECK_INTERVAL_SECONDS="0.5",
        TA_LOG_LEVEL="INFO",
    )
    with serve(data, env) as running:
        yield running


def test_idle_connections_beyond_the_limit_get_a_503_and_are_closed(limited: Serve) -> None:
    idle = [connect(limited) for _ in range(50)]
    try:
        answers = [read_until_closed(sock) for sock in idle[20:]]
        # Over the limit: a JSON 503 with Retry-After, then the server closes.
        for answer in answers:
            assert status_of(answer) == 503
            assert b"retry-after: 1" in answer.lower()
            body = orjson.loads(answer.split(b"\r\n\r\n", 1)[1])
            assert body["error"]["code"] == "overloaded"
        # A request while the 20 slots are held still gets an answer: the documented 503.
        with connect(limited) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
            assert status_of(read_until_closed(sock)) == 503
        # The held connections never sent a byte: closed after TA_HTTP_KEEPALIVE_SECONDS.
        for sock in idle[:20]:
            assert read_until_closed(sock) == b""
    finally:
        for sock in idle:
            sock.close()
    ready = httpx.get(limited.url + "/readyz", timeout=WAIT)
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["scheduler"] == "running"
    assert metric(limited, 'ta_http_connections_dropped_total{reason="over_limit"}') >= 31
    assert metric(limited, 'ta_http_connections_dropped_total{reason="idle"}') >= 20
    assert "connection limit reached" in limited.log()


def test_slow_headers_get_a_408_and_a_trickled_body_is_cut(limited: Serve) -> None:
    with connect(limited) as slow_headers:
        slow_headers.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
        answer = read_until_closed(slow_headers)  # one header, then nothing more
    assert status_of(answer) == 408
    assert orjson.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]["code"] == "request_timeout"

    with connect(limited) as trickle:
        trickle.sendall(
            b"POST /v1/ingest HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            b"content-length: 1000\r\n\r\n{"
        )
        deadline = time.monotonic() + WAIT
        closed = False
        while time.monotonic() < deadline:
            try:
                trickle.sendall(b" ")
            except OSError:
                closed = True
                break
            trickle.settimeout(0.5)
            try:
                if trickle.recv(65536) == b"":
                    closed = True
                    break
            except TimeoutError:
                pass
        assert closed, "a body that never completes is cut off"
    assert metric(limited, 'ta_http_connections_dropped_total{reason="header_timeout"}') == 1
    assert metric(limited, 'ta_http_connections_dropped_total{reason="body_timeout"}') == 1


def test_oversized_headers_get_a_431(limited: Serve) -> None:
    with connect(limited) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
        try:
            for _ in range(100):
                sock.sendall(b"x-filler: " + b"a" * 1000 + b"\r\n")
        except OSError:
            pass  # the server may close while we are still sending
        answer = read_until_closed(sock)
    assert status_of(answer) == 431


def test_under_a_small_fd_limit_a_flood_of_idle_sockets_does_not_starve_the_scheduler(
    tmp_path: Path, migrated_template: Path
) -> None:
    """The issue's failure: 1,100 idle sockets under `ulimit -n 1024` broke every request and
    every scheduled job (EMFILE). Here: more idle sockets than the whole fd limit."""
    data = copy_template(migrated_template, tmp_path / "data")
    env = base_env(
        TA_HTTP_KEEPALIVE_SECONDS="3",
        TA_CHECK_INTERVAL_SECONDS="0.5",
        TA_ROLLUP_INTERVAL_SECONDS="0.5",
        TA_LOG_LEVEL="INFO",
    )
    with serve(data, env, fd_limit=512) as running:
        passes_before = metric(running, 'ta_conclusion_passes_total{pass="detect"}')
        flood = []
        try:
            for _ in range(700):
                flood.append(connect(running))
            time.sleep(1)  # the scheduler runs its passes while the flood is held
            for sock in flood:
                read_until_closed(sock)
        finally:
            for sock in flood:
                sock.close()
        ready = httpx.get(running.url + "/readyz", timeout=WAIT)
        assert ready.status_code == 200, ready.text
        deadline = time.monotonic() + WAIT
        while metric(running, 'ta_conclusion_passes_total{pass="detect"}') <= passes_before:
            assert time.monotonic() < deadline, "the detection pass stopped running"
            time.sleep(0.2)
        log = running.log()
    assert "Too many open files" not in log
    assert "scheduled job failed" not in log
    # TA_HTTP_MAX_CONNECTIONS (1000) was lowered to fit: 512 minus the reserve.
    [warning] = [line for line in log.splitlines() if "connection limit lowered" in line]
    assert f'"limit":{512 - FD_RESERVE}' in warning


def test_the_connection_limit_keeps_a_reserve_of_descriptors() -> None:
    assert connection_limit(1000, 1024) == 1024 - FD_RESERVE
    assert connection_limit(100, 1024) == 100
    assert connection_limit(1000, None) == 1000
    assert connection_limit(1000, FD_RESERVE) == 1
    limits = ConnectionLimits.from_settings(Settings(http_max_connections=50), 4096)
    assert limits.max_connections == 50
    assert limits.keepalive_seconds == 5
