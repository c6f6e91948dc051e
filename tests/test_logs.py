"""Structured logs: JSON lines, request ids on request-time lines, access log, no secrets."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.testclient import TestClient

from service.logs import (
    REDACTED,
    build_handler,
    configure_logging,
    request_context,
    secret_values,
)
from service.settings import Settings

API_KEY = "k-acme-0123456789"
ADMIN_KEY = "k-admin-9876543210"
WEBHOOK = "whsec_c2VjcmV0LXdlYmhvb2sta2V5"
PASSWORD = "p@ss word/42"
PASSWORD_IN_URL = "p%40ss%20word%2F42"


class Captured:
    """The JSON lines one handler on the root logger wrote."""

    def __init__(self, stream: io.StringIO) -> None:
        self.stream = stream

    def events(self) -> list[dict[str, Any]]:
        lines = self.stream.getvalue().splitlines()
        return [json.loads(line) for line in lines]


@pytest.fixture
def capture() -> Iterator[Callable[..., Captured]]:
    """Attach our handler (with `secrets`) to the root logger for one test, then remove it."""
    root = logging.getLogger()
    level = root.level
    added: list[logging.Handler] = []

    def attach(secrets: list[str] | None = None, level: int = logging.DEBUG) -> Captured:
        stream = io.StringIO()
        handler = build_handler(secrets or [], stream=stream)
        root.addHandler(handler)
        root.setLevel(level)
        added.append(handler)
        return Captured(stream)

    yield attach
    for handler in added:
        root.removeHandler(handler)
    root.setLevel(level)


def test_each_event_is_one_json_line_with_its_extra_fields(
    capture: Callable[..., Captured],
) -> None:
    captured = capture()
    logging.getLogger("service.conclusions").info(
        "conclusion recorded\nwith a newline", extra={"trace_id": "t1", "revision": 2}
    )
    lines = captured.stream.getvalue().splitlines()
    assert len(lines) == 1
    event = json.loads(lines[0])
    assert event["event"] == "conclusion recorded\nwith a newline"
    assert event["level"] == "info"
    assert event["logger"] == "service.conclusions"
    assert event["trace_id"] == "t1"
    assert event["revision"] == 2
    assert event["ts"].endswith("Z")
    assert "request_id" not in event


def test_uvicorn_colour_copies_of_the_message_are_left_out(
    capture: Callable[..., Captured],
) -> None:
    captured = capture()
    logging.getLogger("uvicorn.error").info(
        "Finished server process [%d]",
        7,
        extra={"color_message": "Finished server process [\x1b[36m%d\x1b[0m]"},
    )
    (event,) = captured.events()
    assert event["event"] == "Finished server process [7]"
    assert "color_message" not in event


def test_lines_inside_a_request_context_carry_its_id(capture: Callable[..., Captured]) -> None:
    captured = capture()
    log = logging.getLogger("service.test")
    with request_context("req-1"):
        log.info("inside")
    log.info("outside")
    inside, outside = captured.events()
    assert inside["request_id"] == "req-1"
    assert "request_id" not in outside


def test_a_request_tags_lines_logged_in_the_thread_pool_and_writes_an_access_line(
    capture: Callable[..., Captured], make_app: Callable[..., Starlette]
) -> None:
    """The auth check runs in a sync endpoint (Starlette's thread pool); its warning carries
    the request id the middleware assigned, and the access line follows."""
    captured = capture(level=logging.INFO)
    app = make_app(api_keys=SecretStr(f"{API_KEY}=acme"))
    with TestClient(app) as client:
        response = client.get(
            "/v1/traces/t1",
            headers={"Authorization": "Bearer wrong-key", "X-Request-ID": "req-42"},
        )
    assert response.status_code == 401
    assert response.headers["x-request-id"] == "req-42"
    events = captured.events()
    rejected = [e for e in events if e["event"] == "rejected request with an unknown API key"]
    assert [e["request_id"] for e in rejected] == ["req-42"]
    access = [e for e in events if e["logger"] == "service.access"]
    assert len(access) == 1
    assert access[0]["event"] == "request"
    assert access[0]["request_id"] == "req-42"
    assert access[0]["method"] == "GET"
    assert access[0]["route"] == "/v1/traces/{trace_id}"
    assert access[0]["status"] == 401
    assert access[0]["duration_ms"] >= 0
    assert "wrong-key" not in captured.stream.getvalue()


def test_probes_are_logged_at_debug_only(
    capture: Callable[..., Captured], client: TestClient
) -> None:
    captured = capture(level=logging.INFO)
    assert client.get("/healthz").status_code == 200
    assert client.get("/v1/traces/nope").status_code == 404
    routes = [e["route"] for e in captured.events() if e["logger"] == "service.access"]
    assert routes == ["/v1/traces/{trace_id}"]


def test_a_generated_request_id_is_returned_and_logged(
    capture: Callable[..., Captured], client: TestClient
) -> None:
    captured = capture(level=logging.INFO)
    response = client.get("/v1/traces/nope")
    request_id = response.headers["x-request-id"]
    assert len(request_id) == 32
    access = [e for e in captured.events() if e["logger"] == "service.access"]
    assert access[0]["request_id"] == request_id


def secret_settings() -> Settings:
    return Settings(
        clickhouse_url=f"https://ta:{PASSWORD_IN_URL}@ch.internal:8443/traces",
        api_keys=f"{API_KEY}=acme,{ADMIN_KEY}=*",
        webhook_secret=WEBHOOK,
    )


def test_secret_values_cover_keys_webhook_secret_and_clickhouse_password() -> None:
    secrets = secret_values(secret_settings())
    assert {API_KEY, ADMIN_KEY, WEBHOOK, PASSWORD, PASSWORD_IN_URL} <= set(secrets)
    assert WEBHOOK.removeprefix("whsec_") in secrets
    assert secret_values(Settings()) == []


def test_secrets_are_masked_in_messages_args_extras_and_tracebacks(
    capture: Callable[..., Captured],
) -> None:
    captured = capture(secret_values(secret_settings()))
    log = logging.getLogger("service.test")
    log.warning("could not reach https://ta:%s@ch.internal:8443", PASSWORD_IN_URL)
    log.info("delivery signed", extra={"header": f"Bearer {API_KEY}", "keys": [ADMIN_KEY]})
    try:
        raise RuntimeError(f"webhook secret {WEBHOOK} rejected; password {PASSWORD}")
    except RuntimeError:
        log.exception("delivery failed", extra={"trace_id": "t1"})
    text = captured.stream.getvalue()
    for secret in (API_KEY, ADMIN_KEY, WEBHOOK, PASSWORD, PASSWORD_IN_URL):
        assert secret not in text
    first, second, third = captured.events()
    assert first["event"] == f"could not reach https://ta:{REDACTED}@ch.internal:8443"
    assert second["header"] == f"Bearer {REDACTED}"
    assert second["keys"] == [REDACTED]
    assert third["trace_id"] == "t1"
    assert "RuntimeError: webhook secret *** rejected; password ***" in third["exception"]


def test_configure_logging_sets_the_level_and_replaces_only_its_own_handler() -> None:
    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    foreign = logging.NullHandler()  # e.g. pytest's capture handler
    root.addHandler(foreign)
    try:
        configure_logging("WARNING", [API_KEY])
        configure_logging("ERROR", [API_KEY])
        ours = [h for h in root.handlers if type(h) is type(build_handler())]
        assert len(ours) == 1
        assert foreign in root.handlers
        assert root.level == logging.ERROR
    finally:
        root.handlers[:] = before
        root.setLevel(level)
