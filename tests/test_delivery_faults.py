"""Fault injection: receivers that hang, trickle or refuse, and items that poison a pass.

Each test runs the real delivery pass against a real HTTP receiver on 127.0.0.1 (or respx
where the fault is an exception inside the client) and real chDB. No timing figure here
is a speed claim: elapsed-time ceilings only tell "ended at its deadline" from "held
until the receiver gave up", with a wide margin.
"""

from __future__ import annotations

import base64
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
import respx
from pydantic import SecretStr
from standardwebhooks import Webhook
from starlette.applications import Starlette
from starlette.testclient import TestClient

from service.api import app_context
from service.api.app import api_routes
from service.api.openapi import build_document
from service.clickhouse import ClickHouse
from service.clock import ManualClock
from service.conclusions import store
from service.conclusions.delivery import Sender
from service.conclusions.models import Conclusion, Status
from service.conclusions.retry import Outcome
from service.settings import Settings
from tests.conftest import IDLE, deliver, detect, observation, trace
from tests.conftest import ingest_traces as ingest
from tests.test_openapi import Checker

SECRET = "whsec_" + base64.b64encode(b"a-32-byte-secret-for-the-tests!!").decode()

# What the receiver does with one request: ("answer", status, headers), ("hang",),
# ("trickle", seconds_per_byte) or ("gate", threading.Event) (answer 200 once it is set).
Action = tuple[Any, ...]


@dataclass
class Received:
    body: bytes
    headers: dict[str, str]
    line: str = ""  # the request line, e.g. "POST /analyze HTTP/1.1"


@dataclass
class Receiver:
    """An HTTP/1.1 server on 127.0.0.1 whose answer to each request is chosen by `decide`."""

    decide: Callable[[Received], Action]
    received: list[Received] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    url: str = ""

    def __post_init__(self) -> None:
        owner = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                while not owner.stop.is_set():
                    request = owner.read_request(self.rfile)
                    if request is None:
                        return
                    owner.received.append(request)
                    if not owner.act(self.connection, owner.decide(request)):
                        return

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            block_on_close = False
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/analyze"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def read_request(self, rfile: Any) -> Received | None:
        line = rfile.readline()
        if not line:
            return None
        headers = {}
        while (header := rfile.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = header.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        body = rfile.read(int(headers.get("content-length", "0")))
        return Received(body, headers, line.decode("latin-1").strip())

    def act(self, connection: socket.socket, action: Action) -> bool:
        """Carry out `action`; True if the connection can take another request."""
        kind = action[0]
        if kind == "gate":
            action[1].wait(30)
            action = ("answer", 200, {})
            kind = "answer"
        if kind == "answer":
            _, status, headers = action
            lines = [f"HTTP/1.1 {status} X", "content-length: 4", *headers_lines(headers)]
            connection.sendall(("\r\n".join(lines) + "\r\n\r\nbody").encode())
            return True
        if kind == "hang":
            self.stop.wait(60)
            return False
        if kind == "trickle":
            for byte in b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n":
                if self.stop.wait(action[1]):
                    return False
                connection.sendall(bytes([byte]))
            return True
        raise AssertionError(kind)

    def close(self) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def headers_lines(headers: dict[str, str]) -> list[str]:
    return [f"{name}: {value}" for name, value in headers.items()]


@pytest.fixture
def receiver_for() -> Iterator[Callable[[Callable[[Received], Action]], Receiver]]:
    started: list[Receiver] = []

    def start(decide: Callable[[Received], Action]) -> Receiver:
        started.append(Receiver(decide))
        return started[-1]

    yield start
    for receiver in started:
        receiver.close()


def answer(status: int, **headers: str) -> Callable[[Received], Action]:
    return lambda request: ("answer", status, headers)


def feed(client: TestClient, **params: str) -> dict[str, dict[str, Any]]:
    """The feed by trace id, checked against the OpenAPI document (poison items included)."""
    response = Checker(build_document(api_routes()))(client.get("/v1/conclusions", params=params))
    return {row["trace_id"]: row for row in response.json()["data"]}


def conclude(client: TestClient, app: Starlette, clock: ManualClock, *trace_ids: str) -> None:
    ingest(client, *trace_ids)
    clock.advance(IDLE)
    assert len(detect(app)) == len(trace_ids)


def just_after(shown: str) -> datetime:
    """The first millisecond after a time the API shows (it floors to milliseconds)."""
    return datetime.fromisoformat(shown.replace("Z", "+00:00")) + timedelta(milliseconds=1)


def timed(run: Callable[[], Any]) -> tuple[float, Any]:
    started = time.monotonic()
    result = run()
    return time.monotonic() - started, result


# Item 14.2: one deadline per attempt.


def test_a_trickling_receiver_is_cut_at_the_attempt_deadline(
    make_app: Callable[..., Starlette],
    clock: ManualClock,
    receiver_for: Callable[..., Receiver],
) -> None:
    # One byte every 0.3 s: each read returns well within the 1 s timeout, so a per-read
    # timeout would let the 40-byte answer take about 12 s.
    receiver = receiver_for(lambda request: ("trickle", 0.3))
    app = make_app(idle_seconds=IDLE, analyze_url=receiver.url, analyze_timeout_seconds=1)
    with TestClient(app) as client:
        conclude(client, app, clock, "t1")
        elapsed, report = timed(lambda: deliver(app))
        row = feed(client)["t1"]
    assert (report.delivered, report.retrying) == (0, 1)
    assert (row["status"], row["attempts"]) == ("pending", 1)
    assert row["last_error"].startswith("timed out after 1.")
    assert "TA_ANALYZE_TIMEOUT_SECONDS=1" in row["last_error"]
    assert elapsed < 8, "the attempt ran on after its deadline"


def test_a_hanging_receiver_times_out_as_a_retry(
    make_app: Callable[..., Starlette],
    clock: ManualClock,
    receiver_for: Callable[..., Receiver],
) -> None:
    receiver = receiver_for(lambda request: ("hang",))
    app = make_app(idle_seconds=IDLE, analyze_url=receiver.url, analyze_timeout_seconds=0.5)
    with TestClient(app) as client:
        conclude(client, app, clock, "t1", "t2")
        elapsed, report = timed(lambda: deliver(app))
        rows = feed(client)
    assert report.retrying == 2
    assert all(r["last_error"].startswith("timed out") for r in rows.values())
    assert elapsed < 8


def test_shutdown_waits_only_for_the_attempts_deadline(
    make_app: Callable[..., Starlette],
    clock: ManualClock,
    receiver_for: Callable[..., Receiver],
) -> None:
    """SIGTERM while a trickling attempt is in flight: the app stops by that deadline."""
    receiver = receiver_for(lambda request: ("trickle", 0.3))
    app = make_app(idle_seconds=IDLE, analyze_url=receiver.url, analyze_timeout_seconds=1)
    client = TestClient(app)
    client.__enter__()
    conclude(client, app, clock, "t1")
    worker = threading.Thread(target=deliver, args=(app,))
    worker.start()
    while not receiver.received:
        time.sleep(0.01)
    elapsed, _ = timed(lambda: client.__exit__(None, None, None))  # lifespan shutdown
    worker.join()
    assert elapsed < 8
    assert app_context(app).stopping.is_set()


def test_the_environments_proxy_is_used_and_held_to_the_same_deadline(
    make_app: Callable[..., Starlette],
    clock: ManualClock,
    receiver_for: Callable[..., Receiver],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    proxy = receiver_for(lambda request: ("trickle", 0.3))
    monkeypatch.setenv("HTTP_PROXY", proxy.url.removesuffix("/analyze"))
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    url = "http://analyze.example/hook"
    app = make_app(idle_seconds=IDLE, analyze_url=url, analyze_timeout_seconds=1)
    with TestClient(app) as client:
        conclude(client, app, clock, "t1")
        elapsed, report = timed(lambda: deliver(app))
        row = feed(client)["t1"]
    assert [r.line for r in proxy.received] == [f"POST {url} HTTP/1.1"]
    assert report.retrying == 1
    assert row["last_error"].startswith("timed out")
    assert elapsed < 8


# Item 14.3: 429 and 5xx are retried on the same key until delivered, by time.


def test_429_and_500_are_retried_with_the_same_key_and_fresh_signatures(
    make_app: Callable[..., Starlette],
    clock: ManualClock,
    receiver_for: Callable[..., Receiver],
) -> None:
    answers = iter([("answer", 429, {"retry-after": "30"}), ("answer", 500, {})])
    receiver = receiver_for(lambda request: next(answers, ("answer", 204, {})))
    app = make_app(idle_seconds=IDLE, analyze_url=receiver.url, webhook_secret=SecretStr(SECRET))
    with TestClient(app) as client:
        conclude(client, app, clock, "t1")
        assert deliver(app).retrying == 1
        row = feed(client)["t1"]
        assert row["last_error"] == "HTTP 429: body"
        clock.advance(29)
        deliver(app)
        assert len(receiver.received) == 1, "Retry-After: 30 is honoured"
        clock.advance(1)
        assert deliver(app).retrying == 1
        assert feed(client)["t1"]["last_error"] == "HTTP 500: body"
        clock.advance(3600)
        assert deliver(app).delivered == 1
        row = feed(client)["t1"]
    assert (row["status"], row["attempts"]) == ("delivered", 3)
    keys = {r.headers["idempotency-key"] for r in receiver.received}
    assert keys == {"default:t1:1"}
    for request in receiver.received:  # each attempt is signed when it is sent
        assert Webhook(SECRET).verify(request.body, request.headers)["trace_id"] == "t1"


def test_a_receiver_down_for_longer_than_the_old_eight_attempts_still_gets_it(
    make_app: Callable[..., Starlette],
    clock: ManualClock,
    receiver_for: Callable[..., Receiver],
) -> None:
    """Retry by time: 10 minutes of 503s, then the receiver is back."""
    down_until = clock().timestamp() + IDLE + 600
    receiver = receiver_for(
        lambda request: ("answer", 503 if clock().timestamp() < down_until else 200, {})
    )
    app = make_app(idle_seconds=IDLE, analyze_url=receiver.url)
    registry = app_context(app).metrics.registry
    with TestClient(app) as client:
        conclude(client, app, clock, "t1")
        while feed(client)["t1"]["status"] == "pending":
            deliver(app)
            if feed(client)["t1"]["status"] == "pending":
                assert registry.get_sample_value("ta_deliveries_pending") == 1
            next_at = feed(client)["t1"]["next_attempt_at"]
            if next_at is not None:
                clock.set(just_after(next_at))
        row = feed(client)["t1"]
    assert row["status"] == "delivered"
    assert row["attempts"] > 8


def test_a_delivery_dies_once_the_retry_window_has_passed(
    make_app: Callable[..., Starlette],
    clock: ManualClock,
    receiver_for: Callable[..., Receiver],
) -> None:
    receiver = receiver_for(answer(500))
    app = make_app(idle_seconds=IDLE, analyze_url=receiver.url, analyze_retry_window_seconds=120)
    with TestClient(app) as client:
        conclude(client, app, clock, "t1")
        first_attempt = clock()
        while (row := feed(client)["t1"])["status"] == "pending":
            deliver(app)
            row = feed(client)["t1"]
            if row["next_attempt_at"] is not None:
                clock.set(just_after(row["next_attempt_at"]))
    assert row["status"] == "dead"
    assert 120 <= (clock() - first_attempt).total_seconds() < 121
    assert row["last_error"] == f"HTTP 500: body (gave up after {row['attempts']} attempts over 2m)"
    assert len(receiver.received) == row["attempts"]


# Item 14.1: a poison item never stops the pass.


def test_non_ascii_ids_are_delivered_with_an_encoded_key_and_real_ids_in_the_body(
    make_app: Callable[..., Starlette],
    clock: ManualClock,
    receiver_for: Callable[..., Receiver],
) -> None:
    receiver = receiver_for(answer(200))
    app = make_app(idle_seconds=IDLE, analyze_url=receiver.url, webhook_secret=SecretStr(SECRET))
    ids = ["good-1", "café", "日本:1", "good-2"]
    with TestClient(app) as client:
        body = {"traces": [trace(t) for t in ids], "observations": [observation("o", "café")]}
        assert client.post("/v1/ingest", json=body).status_code == 202
        clock.advance(IDLE)
        assert len(detect(app)) == len(ids)
        report = deliver(app)
        clock.advance(3600)
        deliver(app)
    assert (report.delivered, report.dead, report.retrying) == (4, 0, 0)
    sent = {}
    for request in receiver.received:
        payload = Webhook(SECRET).verify(request.body, request.headers)
        assert request.headers["idempotency-key"] == request.headers["webhook-id"]
        sent[payload["trace_id"]] = request.headers["idempotency-key"]
    assert sent == {
        "good-1": "default:good-1:1",
        "café": "default:caf%C3%A9:1",
        "日本:1": "default:%E6%97%A5%E6%9C%AC%3A1:1",
        "good-2": "default:good-2:1",
    }
    assert len(receiver.received) == 4, "each delivered exactly once"


def poison(ch: ClickHouse, trace_id: str, summary_text: str, at: datetime) -> None:
    """An outbox row as another writer (or a damaged part) could leave it: its summary is
    not something this build can send. Written with SQL, as the store never writes one."""
    ch.command(
        "test:poison",
        {
            "slot": store.slot_of(at),
            "trace_id": trace_id,
            "summary": summary_text,
            "at": at,
        },
        sql="""
        INSERT INTO delivery_outbox
        SELECT {slot:DateTime('UTC')}, 'default', {trace_id:String}, 1,
               {at:DateTime64(6, 'UTC')}, {at:DateTime64(6, 'UTC')}, {summary:String},
               'pending', 0, NULL, {at:DateTime64(6, 'UTC')}, '', {at:DateTime64(6, 'UTC')}
        """,
    )


def test_poison_items_go_dead_with_their_reason_and_the_others_are_delivered_once(
    make_app: Callable[..., Starlette],
    clock: ManualClock,
    clickhouse: ClickHouse,
    receiver_for: Callable[..., Receiver],
) -> None:
    receiver = receiver_for(answer(200))
    app = make_app(
        idle_seconds=IDLE,
        analyze_url=receiver.url,
        webhook_secret=SecretStr(SECRET),
        analyze_concurrency=2,
    )
    with TestClient(app) as client:
        ingest(client, "good-1", "good-2", "good-3")
        clock.advance(IDLE)
        assert len(detect(app)) == 3
        poison(clickhouse, "not-json", "{this is not json", clock())
        poison(clickhouse, "surrogate", '{"name": "\\ud800"}', clock())
        report = deliver(app)
        for _ in range(3):  # later passes send nothing again
            clock.advance(3600)
            deliver(app)
        rows = feed(client)
    assert (report.delivered, report.dead, report.retrying) == (3, 2, 0)
    assert report.requests == 3, "poison items are never put on the wire"
    delivered = [Webhook(SECRET).verify(r.body, r.headers)["trace_id"] for r in receiver.received]
    assert sorted(delivered) == ["good-1", "good-2", "good-3"]
    assert rows["not-json"]["status"] == rows["surrogate"]["status"] == "dead"
    assert rows["not-json"]["last_error"].startswith(
        "could not encode the webhook body: ValueError: stored summary is not valid JSON"
    )
    assert "surrogate" in rows["surrogate"]["last_error"]
    assert rows["surrogate"]["summary"] == {"unreadable_summary": '{"name": "\\ud800"}'}
    metrics = app_context(app).metrics.registry
    assert metrics.get_sample_value("ta_deliveries_dead") == 2
    assert metrics.get_sample_value("ta_conclusion_pass_failures_total", {"pass": "deliver"}) == 0


def test_poison_inside_a_batch_fails_alone(
    make_app: Callable[..., Starlette],
    clock: ManualClock,
    clickhouse: ClickHouse,
    receiver_for: Callable[..., Receiver],
) -> None:
    receiver = receiver_for(answer(200))
    app = make_app(idle_seconds=IDLE, analyze_url=receiver.url, analyze_batch_size=10)
    with TestClient(app) as client:
        ingest(client, "good-1", "good-2")
        clock.advance(IDLE)
        detect(app)
        poison(clickhouse, "bad", "[1, 2", clock())
        report = deliver(app)
    assert (report.delivered, report.dead, report.requests) == (2, 1, 1)
    (request,) = receiver.received
    assert request.body.startswith(b"[")
    assert b'"bad"' not in request.body


def test_an_item_the_encoder_refuses_is_dead_without_a_request(settings: Settings) -> None:
    now = datetime.fromisoformat("2026-11-22T10:00:00+00:00")
    bad = Conclusion("p", "t", 1, now, now, {"name": "\ud800"}, Status.PENDING)
    sent: list[httpx.Request] = []
    config = settings.model_copy(update={"analyze_url": "http://analyze.test/hook"})
    transport = httpx.MockTransport(lambda request: sent.append(request) or httpx.Response(200))
    with Sender(config, transport=transport) as sender:
        (attempts,) = [f.result() for f in sender.submit([(bad,)], lambda: False)]
    (attempt,) = attempts
    assert (attempt.outcome, attempt.sent) == (Outcome.DEAD, False)
    assert attempt.error == (
        "could not encode the webhook body: TypeError: str is not valid UTF-8: "
        "surrogates not allowed"
    )
    assert sent == []


def test_an_exception_while_sending_one_item_retries_it_and_spares_the_others(
    make_app: Callable[..., Starlette], clock: ManualClock
) -> None:
    url = "http://analyze.test/hook"

    def answer_or_explode(request: httpx.Request) -> httpx.Response:
        if b'"boom"' in request.content:
            raise RuntimeError("a bug in the transport")
        return httpx.Response(200)

    app = make_app(idle_seconds=IDLE, analyze_url=url)
    with respx.mock() as mock, TestClient(app) as client:
        route = mock.post(url).mock(side_effect=answer_or_explode)
        conclude(client, app, clock, "ok-1", "boom", "ok-2")
        report = deliver(app)
        rows = feed(client)
    assert (report.delivered, report.retrying) == (2, 1)
    assert route.call_count == 3
    assert rows["boom"]["status"] == "pending"
    assert rows["boom"]["last_error"] == "unexpected error: RuntimeError: a bug in the transport"


# Item 14.11: outcomes are written while the round is still running.


def test_outcomes_are_written_before_a_slow_request_of_the_same_round_ends(
    make_app: Callable[..., Starlette],
    clock: ManualClock,
    clickhouse: ClickHouse,
    receiver_for: Callable[..., Receiver],
) -> None:
    gate = threading.Event()
    receiver = receiver_for(
        lambda request: ("gate", gate) if b'"slow"' in request.body else ("answer", 200, {})
    )
    app = make_app(idle_seconds=IDLE, analyze_url=receiver.url, analyze_concurrency=2)
    with TestClient(app) as client:
        conclude(client, app, clock, "slow", "fast-1", "fast-2", "fast-3")
        worker = threading.Thread(target=deliver, args=(app,))
        worker.start()
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                done = delivered_in_outbox(clickhouse)
                if done == {"fast-1", "fast-2", "fast-3"}:
                    break
                time.sleep(0.05)
            assert done == {"fast-1", "fast-2", "fast-3"}, "fast outcomes waited for the slow one"
            assert worker.is_alive(), "the round is still running"
        finally:
            gate.set()
            worker.join()
        assert feed(client)["slow"]["status"] == "delivered"


def delivered_in_outbox(ch: ClickHouse) -> set[str]:
    rows = ch.query_rows(
        "test:delivered",
        sql="""
        SELECT trace_id FROM delivery_outbox
        GROUP BY project_id, trace_id, revision
        HAVING argMax(status, updated_at) = 'delivered'
        """,
    )
    return {r[0] for r in rows}


def test_a_conclusion_states_round_trip_through_the_outbox(clickhouse: ClickHouse) -> None:
    """The store keeps what retries need (first attempt, attempts, error) exactly."""
    now = datetime.fromisoformat("2026-11-22T10:00:00+00:00")
    item = Conclusion(
        "p", "t", 1, now, now, {"n": 1}, Status.PENDING, 3, now, "HTTP 500", None, now
    )
    from service.clock import VersionStamp

    stamp = VersionStamp(lambda: now)
    store.write_delivery_states(clickhouse, [item], stamp)
    (back,) = store.due_deliveries(clickhouse, now=now, shard_count=1, shard_index=0, limit=10)
    assert back == item
