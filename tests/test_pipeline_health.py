"""A failing conclusion pipeline is visible: /readyz, metrics, and start-up refuses a bad secret."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx2
import pytest
import respx
from starlette.applications import Starlette
from starlette.testclient import TestClient

from service.api import app_context
from service.api.app import api_routes
from service.api.openapi import build_document
from service.clickhouse import ClickHouse
from service.clock import ManualClock
from service.conclusions.health import FAILING_AFTER
from service.errors import ConfigError
from service.migrations import discover
from service.operations import CheckReport
from service.settings import load_settings
from tests.conftest import IDLE, deliver, detect
from tests.conftest import ingest_traces as ingest
from tests.subprocesses import base_env, cli, one_line
from tests.test_openapi import Checker

URL = "http://analyze.test/hook"


@pytest.fixture
def receiver() -> Iterator[respx.Route]:
    with respx.mock(assert_all_called=False) as mock:
        yield mock.post(URL).respond(200)


def readyz(client: TestClient) -> httpx2.Response:
    """GET /readyz, checked against the OpenAPI document (degraded and failing included)."""
    return Checker(build_document(api_routes()))(client.get("/readyz"))


def sample(app: Starlette, name: str, labels: dict[str, str] | None = None) -> float | None:
    return app_context(app).metrics.registry.get_sample_value(name, labels or {})


def test_a_delivery_pass_that_fails_every_time_shows_in_readyz_and_metrics(
    make_app: Callable[..., Starlette],
    clock: ManualClock,
    clickhouse: ClickHouse,
    receiver: respx.Route,
) -> None:
    app = make_app(idle_seconds=IDLE, analyze_url=URL)
    with TestClient(app) as client:
        ingest(client, "t1")
        clock.advance(IDLE)
        detect(app)
        # A broken local pipeline: the outbox is gone (a bad restore, a manual DROP).
        clickhouse.command("t", sql="DROP TABLE delivery_outbox")
        for attempt in range(1, FAILING_AFTER + 1):
            with pytest.raises(Exception, match="delivery_outbox"):
                deliver(app)
            body = readyz(client).json()
            expected = "degraded" if attempt >= FAILING_AFTER else "ready"
            assert body["status"] == expected
        response = readyz(client)
        assert response.status_code == 200, "a broken delivery never takes the API out"
        delivery = response.json()["checks"]["delivery"]
        assert delivery["status"] == "failing"
        assert delivery["consecutive_failed_passes"] == FAILING_AFTER
        assert "delivery_outbox" in delivery["last_error"]
        assert response.json()["warnings"][0].startswith(
            f"conclusion delivery has failed {FAILING_AFTER} passes in a row: "
        )
        labels = {"pass": "deliver"}
        assert sample(app, "ta_conclusion_pass_failures_total", labels) == FAILING_AFTER
        assert sample(app, "ta_conclusion_consecutive_pass_failures", labels) == FAILING_AFTER
        assert sample(app, "ta_conclusion_last_success_timestamp_seconds", labels) == 0

        (migration,) = [m for m in discover() if m.name.startswith("0010")]
        clickhouse.command("t", sql=migration.statements()[0])  # the table is back
        deliver(app)
        body = readyz(client).json()
    assert body["status"] == "ready"
    assert body["checks"]["delivery"]["status"] == "ok"
    assert body["checks"]["delivery"]["last_success_at"] is not None
    assert sample(app, "ta_conclusion_consecutive_pass_failures", labels) == 0
    assert sample(app, "ta_conclusion_last_success_timestamp_seconds", labels) > 0


def test_a_receiver_outage_is_shown_but_is_not_a_pipeline_failure(
    make_app: Callable[..., Starlette], clock: ManualClock, receiver: respx.Route
) -> None:
    receiver.respond(503)
    app = make_app(idle_seconds=IDLE, analyze_url=URL)
    with TestClient(app) as client:
        ingest(client, "t1")
        clock.advance(IDLE)
        detect(app)
        for _ in range(FAILING_AFTER + 1):
            deliver(app)
            clock.advance(3600)
        body = readyz(client).json()
        assert body["status"] == "ready"
        delivery = body["checks"]["delivery"]
        assert delivery["status"] == "ok"
        assert delivery["attempts_failing_since"] == "2026-11-22T10:01:00.000Z"
        assert sample(app, "ta_deliveries_pending") == 1

        receiver.respond(200)
        deliver(app)
        assert "attempts_failing_since" not in readyz(client).json()["checks"]["delivery"]


def test_readyz_says_delivery_is_not_configured_without_a_url(client: TestClient) -> None:
    body = readyz(client).json()
    assert body["checks"]["delivery"]["status"] == "not_configured"
    assert body["checks"]["detection"]["status"] == "ok"


@pytest.mark.parametrize(
    "secret",
    ["whsec_!!!notbase64", "whsec_", "not-even-prefixed!", "whsec_abc$def"],
)
def test_a_malformed_webhook_secret_is_refused_in_one_line(secret: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(webhook_secret=secret)
    message = str(caught.value)
    assert message.startswith("TA_WEBHOOK_SECRET: must be whsec_ followed by a base64 key")
    assert "notbase64" not in message, "the secret is never echoed"
    assert "\n" not in message


def test_a_valid_webhook_secret_passes() -> None:
    assert load_settings(webhook_secret="whsec_" + "a" * 43).webhook_secret is not None


def refused_serve(data: Path, **env: str) -> str:
    """`serve`'s one line on stderr when it refuses to start (exit 2, the engine untouched)."""
    done = cli("serve", env=base_env(TA_CLICKHOUSE_URL=f"chdb://{data}", TA_PORT="0", **env))
    assert done.returncode == 2
    assert not data.exists(), "refused before touching the engine"
    return one_line(done.stderr)


def test_serve_with_a_malformed_webhook_secret_exits_2_with_one_line(tmp_path: Path) -> None:
    line = refused_serve(tmp_path / "data", TA_WEBHOOK_SECRET="whsec_!!!notbase64")
    assert line == (
        "trace-analytics: TA_WEBHOOK_SECRET: must be whsec_ followed by a base64 key "
        "(Standard Webhooks)"
    )


def test_serve_with_a_proxy_delivery_cannot_use_exits_2_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("NO_PROXY", "no_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    line = refused_serve(
        tmp_path / "data",
        TA_ANALYZE_URL="http://analyze.test/hook",
        HTTP_PROXY="socks5://127.0.0.1:1080",
    )
    assert line == (
        "trace-analytics: http_proxy / all_proxy: delivery supports http:// and https:// "
        "proxies only (got 'socks5')"
    )


def test_a_check_asked_over_the_admin_api_reports_why_and_counts_in_readyz(
    make_app: Callable[..., Starlette], clock: ManualClock, receiver: respx.Route
) -> None:
    receiver.respond(503, text="receiver down")
    app = make_app(idle_seconds=IDLE, analyze_url=URL)
    with TestClient(app) as client:
        ingest(client, "t1", "t2")
        clock.advance(IDLE)
        answer = client.post("/v1/admin/check")
        delivery = readyz(client).json()["checks"]["delivery"]
    Checker(build_document(api_routes()))(answer)
    report = CheckReport.from_json(answer.json())
    assert report.lines()[:2] == [
        "concluded 2 trace(s)",
        "delivered 0, retrying 2, dead 0; open now: 2 pending, 0 dead",
    ]
    [reason] = report.lines()[2:]
    assert reason.startswith("  failed: ")
    assert "503" in reason
    assert delivery["last_success_at"] == "2026-11-22T10:01:00.000Z"
    assert delivery["attempts_failing_since"] == "2026-11-22T10:01:00.000Z"
