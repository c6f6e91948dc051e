"""Delivery to the analyze endpoint: signed, retried, dead-lettered, redriven, restart-safe."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import respx
from pydantic import SecretStr
from standardwebhooks import Webhook
from starlette.applications import Starlette
from starlette.testclient import TestClient

from service.api import app_context, create_app
from service.clickhouse import ClickHouse
from service.clock import ManualClock
from service.traces.summary import fetch_summaries
from tests.conftest import IDLE, deliver, detect, observation
from tests.conftest import ingest_traces as ingest

URL = "http://analyze.test/v1/analyze"
SECRET = "whsec_" + base64.b64encode(b"a-32-byte-secret-for-the-tests!!").decode()
LONG_ENOUGH = 3600.0  # past any backoff a test's attempt count can reach


def verified(request: httpx.Request) -> Any:
    """The body, after checking its Standard Webhooks signature (raises when invalid)."""
    return Webhook(SECRET).verify(request.content, dict(request.headers))


@pytest.fixture
def receiver() -> Iterator[respx.Route]:
    with respx.mock(assert_all_called=False) as mock:
        yield mock.post(URL).respond(200)


@pytest.fixture
def app(make_app: Callable[..., Starlette]) -> Starlette:
    return make_app(idle_seconds=IDLE, analyze_url=URL, webhook_secret=SecretStr(SECRET))


@pytest.fixture
def client(app: Starlette) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


def conclude(client: TestClient, app: Starlette, clock: ManualClock, *trace_ids: str) -> None:
    ingest(client, *trace_ids)
    clock.advance(IDLE)
    assert len(detect(app)) == len(trace_ids)


def feed(client: TestClient, **params: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = client.get("/v1/conclusions", params=params).json()["data"]
    return rows


def test_each_trace_delivered_once_signed_with_its_summary(
    client: TestClient,
    app: Starlette,
    clock: ManualClock,
    receiver: respx.Route,
    clickhouse: ClickHouse,
) -> None:
    conclude(client, app, clock, "t1", "t2", "t3")
    report = deliver(app)
    assert (report.delivered, report.retrying, report.dead, report.pending) == (3, 0, 0, 0)

    bodies = {}
    for call in receiver.calls:
        body = verified(call.request)
        assert call.request.headers["idempotency-key"] == f"default:{body['trace_id']}:1"
        bodies[body["trace_id"]] = body
    assert sorted(bodies) == ["t1", "t2", "t3"]
    summaries = fetch_summaries(clickhouse, [("default", t) for t in bodies])
    for trace_id, body in bodies.items():
        assert body["type"] == "trace.concluded"
        assert body["revision"] == 1
        assert body["summary"] == summaries[("default", trace_id)].to_json()
        assert body["summary"]["observations"] == 2

    clock.advance(LONG_ENOUGH)
    deliver(app)
    assert detect(app) == []
    assert receiver.call_count == 3, "a delivered conclusion is never sent again"
    assert {row["status"] for row in feed(client)} == {"delivered"}


def test_late_activity_is_delivered_as_revision_two_with_a_new_key(
    client: TestClient, app: Starlette, clock: ManualClock, receiver: respx.Route
) -> None:
    conclude(client, app, clock, "t1")
    deliver(app)
    clock.advance(1)
    client.post("/v1/ingest", json={"observations": [observation("late", "t1")]})
    clock.advance(IDLE)
    assert [c.revision for c in detect(app)] == [2]
    deliver(app)
    keys = [call.request.headers["idempotency-key"] for call in receiver.calls]
    assert keys == ["default:t1:1", "default:t1:2"]
    assert verified(receiver.calls[1].request)["summary"]["observations"] == 3


def test_server_errors_and_timeouts_retry_with_the_same_key_until_delivered(
    client: TestClient, app: Starlette, clock: ManualClock, receiver: respx.Route
) -> None:
    receiver.side_effect = [
        httpx.Response(503),
        httpx.ReadTimeout("slow receiver"),
        httpx.ConnectError("refused"),
        httpx.Response(500, text="boom"),
        httpx.Response(204),
    ]
    conclude(client, app, clock, "t1")
    for attempt in range(1, 5):
        report = deliver(app)
        assert report.retrying == 1
        row = feed(client)[0]
        assert (row["status"], row["attempts"]) == ("pending", attempt)
        deliver(app)  # not due yet: backoff holds it back
        assert receiver.call_count == attempt
        clock.advance(LONG_ENOUGH)
    assert row["last_error"] == "HTTP 500: boom"
    assert deliver(app).delivered == 1
    keys = {call.request.headers["idempotency-key"] for call in receiver.calls}
    assert keys == {"default:t1:1"}
    row = feed(client)[0]
    assert (row["status"], row["attempts"], row["last_error"]) == ("delivered", 5, None)


def test_retry_after_is_honoured(
    client: TestClient, app: Starlette, clock: ManualClock, receiver: respx.Route
) -> None:
    receiver.side_effect = [
        httpx.Response(429, headers={"retry-after": "120"}),
        httpx.Response(200),
    ]
    conclude(client, app, clock, "t1")
    deliver(app)
    clock.advance(119)
    deliver(app)
    assert receiver.call_count == 1
    clock.advance(1)
    assert deliver(app).delivered == 1


def test_client_error_is_dead_then_redrive_delivers(
    client: TestClient, app: Starlette, clock: ManualClock, receiver: respx.Route
) -> None:
    conclude(client, app, clock, "t1", "t2")
    receiver.side_effect = [httpx.Response(400, text="bad payload"), httpx.Response(200)]
    report = deliver(app)
    assert (report.delivered, report.dead, report.dead_total) == (1, 1, 1)
    dead = feed(client, status="dead")
    assert len(dead) == 1
    assert dead[0]["last_error"] == "HTTP 400: bad payload"
    metrics = app_context(app).metrics.registry
    assert metrics.get_sample_value("ta_deliveries_dead") == 1
    assert metrics.get_sample_value("ta_deliveries_total", {"outcome": "dead"}) == 1

    clock.advance(LONG_ENOUGH)
    deliver(app)
    assert receiver.call_count == 2, "a dead delivery is not retried on its own"

    response = client.post("/v1/conclusions/redrive")
    assert response.json() == {"requeued": 1}
    receiver.side_effect = None
    report = deliver(app)
    assert (report.delivered, report.dead_total) == (1, 0)
    last = receiver.calls[-1].request
    assert last.headers["idempotency-key"] == f"default:{dead[0]['trace_id']}:1"
    assert feed(client, status="dead") == []
    assert client.post("/v1/conclusions/redrive").json() == {"requeued": 0}


def test_dead_after_max_attempts(
    make_app: Callable[..., Starlette], clock: ManualClock, receiver: respx.Route
) -> None:
    receiver.respond(502)
    app = make_app(idle_seconds=IDLE, analyze_url=URL, analyze_max_attempts=2)
    with TestClient(app) as client:
        conclude(client, app, clock, "t1")
        assert deliver(app).retrying == 1
        clock.advance(LONG_ENOUGH)
        assert deliver(app).dead == 1
        row = feed(client)[0]
    assert (row["status"], row["attempts"]) == ("dead", 2)
    assert "gave up after 2 attempts" in row["last_error"]


def test_redrive_is_scoped_to_the_callers_project_and_trace(
    make_app: Callable[..., Starlette], clock: ManualClock, receiver: respx.Route
) -> None:
    receiver.respond(410)
    app = make_app(idle_seconds=IDLE, analyze_url=URL, api_keys=SecretStr("k1=acme,k2=globex"))
    acme = {"authorization": "Bearer k1"}
    globex = {"authorization": "Bearer k2"}
    with TestClient(app) as client:
        for trace_id in ("t1", "t2"):
            body = {"observations": [observation(f"{trace_id}-o", trace_id)]}
            assert client.post("/v1/ingest", json=body, headers=acme).status_code == 202
        clock.advance(IDLE + 1)
        assert sorted(c.trace_id for c in detect(app)) == ["t1", "t2"]
        assert deliver(app).dead == 2
        assert client.post("/v1/conclusions/redrive", headers=globex).json() == {"requeued": 0}
        one = client.post("/v1/conclusions/redrive", json={"trace_id": "t2"}, headers=acme)
        assert one.json() == {"requeued": 1}
        bad = client.post("/v1/conclusions/redrive", json={"trace": "t2"}, headers=acme)
        assert bad.status_code == 400
        assert bad.json()["error"]["message"].startswith("trace:")


def test_pending_deliveries_survive_a_restart(
    make_app: Callable[..., Starlette], clock: ManualClock, receiver: respx.Route
) -> None:
    first = make_app(idle_seconds=IDLE, analyze_url=URL)
    with TestClient(first) as client:
        conclude(client, first, clock, "t1", "t2")
    # The process dies here: conclusions recorded, nothing delivered.
    assert receiver.call_count == 0

    clock.advance(5)
    second = make_app(idle_seconds=IDLE, analyze_url=URL)
    with TestClient(second) as client:
        assert deliver(second).delivered == 2
        assert {row["status"] for row in feed(client)} == {"delivered"}
    assert detect(second) == []
    assert receiver.call_count == 2


def test_shutdown_stops_new_deliveries_and_keeps_them_pending(
    make_app: Callable[..., Starlette], clock: ManualClock, receiver: respx.Route
) -> None:
    app = make_app(idle_seconds=IDLE, analyze_url=URL, analyze_concurrency=1)
    stopping = app_context(app).stopping

    def answer_then_stop(request: httpx.Request) -> httpx.Response:
        stopping.set()  # SIGTERM arrives while this request is in flight
        return httpx.Response(200)

    receiver.side_effect = answer_then_stop
    with TestClient(app) as client:
        conclude(client, app, clock, "t1", "t2", "t3")
        report = deliver(app)
        assert (report.delivered, report.not_sent, report.pending) == (1, 2, 2)
        assert sorted(row["status"] for row in feed(client)) == ["delivered", "pending", "pending"]


def test_no_analyze_url_records_without_delivering(
    make_app: Callable[..., Starlette], clock: ManualClock, receiver: respx.Route
) -> None:
    app = make_app(idle_seconds=IDLE)
    with TestClient(app) as client:
        conclude(client, app, clock, "t1")
        report = deliver(app)
        assert (report.delivered, report.pending) == (0, 0)
        assert [row["status"] for row in feed(client)] == ["recorded"]
    assert receiver.call_count == 0


def test_batch_mode_sends_signed_arrays(
    make_app: Callable[..., Starlette], clock: ManualClock, receiver: respx.Route
) -> None:
    app = make_app(
        idle_seconds=IDLE, analyze_url=URL, analyze_batch_size=2, webhook_secret=SecretStr(SECRET)
    )
    with TestClient(app) as client:
        conclude(client, app, clock, "t1", "t2", "t3")
        assert deliver(app).delivered == 3
    arrays = [verified(call.request) for call in receiver.calls]
    assert sorted(len(a) for a in arrays) == [1, 2]
    items = [item for array in arrays for item in array]
    assert sorted(i["trace_id"] for i in items) == ["t1", "t2", "t3"]
    assert all(i["idempotency_key"] == f"default:{i['trace_id']}:1" for i in items)


def test_metrics_count_passes_and_outcomes(
    client: TestClient, app: Starlette, clock: ManualClock, receiver: respx.Route
) -> None:
    receiver.side_effect = [httpx.Response(503), httpx.Response(200)]
    conclude(client, app, clock, "t1")
    deliver(app)
    registry = app_context(app).metrics.registry
    assert registry.get_sample_value("ta_deliveries_pending") == 1
    clock.advance(LONG_ENOUGH)
    deliver(app)
    sample = registry.get_sample_value
    assert sample("ta_traces_concluded_total") == 1
    assert sample("ta_conclusion_passes_total", {"pass": "detect"}) == 1
    assert sample("ta_conclusion_passes_total", {"pass": "deliver"}) == 2
    assert sample("ta_deliveries_total", {"outcome": "retry"}) == 1
    assert sample("ta_deliveries_total", {"outcome": "delivered"}) == 1
    assert sample("ta_delivery_duration_seconds_count") == 2
    assert sample("ta_conclusion_detection_lag_seconds_count") == 1
    assert sample("ta_deliveries_pending") == 0
    assert "ta_deliveries_dead 0.0" in client.get("/metrics").text


class _Recorder(BaseHTTPRequestHandler):
    received: list[tuple[bytes, dict[str, str]]]

    def do_POST(self) -> None:
        length = int(self.headers["content-length"])
        self.received.append((self.rfile.read(length), dict(self.headers.items())))
        self.send_response(202)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_delivers_to_a_real_local_receiver(
    make_app: Callable[..., Starlette], clock: ManualClock
) -> None:
    received: list[tuple[bytes, dict[str, str]]] = []
    handler = type("Handler", (_Recorder,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/analyze"
        app = make_app(idle_seconds=IDLE, analyze_url=url, webhook_secret=SecretStr(SECRET))
        with TestClient(app) as client:
            conclude(client, app, clock, "t1", "t2")
            assert deliver(app).delivered == 2
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    payloads = [Webhook(SECRET).verify(body, headers) for body, headers in received]
    assert sorted(p["trace_id"] for p in payloads) == ["t1", "t2"]
    assert json.loads(received[0][0]) == payloads[0]


def test_a_backlog_beyond_one_round_drains_in_one_pass(
    make_app: Callable[..., Starlette], clock: ManualClock, receiver: respx.Route
) -> None:
    app = make_app(idle_seconds=IDLE, analyze_url=URL, check_batch_limit=2)
    with TestClient(app) as client:
        ingest(client, "t1", "t2", "t3", "t4", "t5")
        clock.advance(IDLE + 1)
        while detect(app):
            pass
        report = deliver(app)
    assert (report.delivered, report.requests, report.pending) == (5, 5, 0)
    assert receiver.call_count == 5


class _KeepAlive(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    peers: list[int]

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["content-length"]))
        self.peers.append(self.client_address[1])
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_passes_reuse_the_apps_keep_alive_connection(
    make_app: Callable[..., Starlette], clock: ManualClock
) -> None:
    peers: list[int] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), type("H", (_KeepAlive,), {"peers": peers}))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/analyze"
        app = make_app(idle_seconds=IDLE, analyze_url=url, analyze_concurrency=1)
        with TestClient(app) as client:
            conclude(client, app, clock, "t1")
            assert deliver(app).delivered == 1
            clock.advance(1)
            conclude(client, app, clock, "t2")
            assert deliver(app).delivered == 1
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    # One TCP connection (one client port) carried both passes' requests.
    assert len(peers) == 2
    assert peers[0] == peers[1]


def test_the_delivery_transport_is_injectable(
    make_app: Callable[..., Starlette], clickhouse: ClickHouse, clock: ManualClock
) -> None:
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["idempotency-key"])
        return httpx.Response(204)

    settings = app_context(make_app()).settings.model_copy(
        update={"idle_seconds": IDLE, "analyze_url": URL}
    )
    app = create_app(
        settings, clickhouse, clock=clock, delivery_transport=httpx.MockTransport(answer)
    )
    with TestClient(app) as client:
        conclude(client, app, clock, "t1")
        assert deliver(app).delivered == 1
    assert seen == ["default:t1:1"]
