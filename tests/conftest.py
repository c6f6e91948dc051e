"""Shared fixtures and helpers: every test gets its own ClickHouse data directory.

`TA_TEST_ENGINE` says how the tests reach that directory:

- `embedded` (the default): chDB in this process, `chdb://<tmp>/data`;
- `http`: the same chDB directory behind `tests/clickhouse_http.py`, a test double of
  ClickHouse's HTTP interface that refuses what a server refuses (field, query and URI
  sizes). `clickhouse_url` is then `http://127.0.0.1:<port>/default`, and the service, its
  CLI (in-process or in a subprocess given TA_CLICKHOUSE_URL) and the apps take the code
  path they take against a ClickHouse server: clickhouse-connect's HttpClient.

Tests that only mean something embedded (the directory lock, the self-migration) are
marked `embedded_only` and skipped over HTTP. The `http_url` fixture goes through the
double in both modes, for tests of the server path itself.

Migrations run once per session into a template directory; a test that uses the
`clickhouse` fixture gets a copy of it (a file copy costs milliseconds, the migrations about
a second), other tests get an empty directory. chDB opens one data directory per process at
a time, so the template is closed before any copy is opened, and each test closes its
clients (and its double) at teardown before the next test opens another.

Helpers every test module may import (`from tests.conftest import ...`): record builders
(`trace`, `observation`), `ingest_traces`, and the scheduled passes run by hand
(`detect`, `deliver`) with the app's own context.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from service.api import app_context, create_app
from service.clickhouse import ClickHouse, connect
from service.clock import ManualClock
from service.conclusions import DeliveryReport, run_delivery_pass, run_detection_pass
from service.conclusions.delivery import Sender
from service.conclusions.models import Conclusion
from service.engine_roles import DELIVER, DETECT
from service.migrations import apply
from service.settings import Settings
from tests.clickhouse_http import ClickHouseHttpDouble

ENGINES = ("embedded", "http")
ENGINE = os.environ.get("TA_TEST_ENGINE", "embedded")
# Idle time the conclusion tests configure; `clock.advance(IDLE)` makes a trace quiet.
IDLE = 60


def pytest_configure(config: pytest.Config) -> None:
    if ENGINE not in ENGINES:
        raise pytest.UsageError(f"TA_TEST_ENGINE={ENGINE!r}: expected one of {ENGINES}")


def pytest_report_header(config: pytest.Config) -> str:
    return f"ClickHouse engine: {ENGINE} (TA_TEST_ENGINE)"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if ENGINE != "http":
        return
    skip = pytest.mark.skip(reason="embedded chDB only (TA_TEST_ENGINE=http)")
    for item in items:
        if item.get_closest_marker("embedded_only"):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory with every migration applied, closed, ready to be copied."""
    path = tmp_path_factory.mktemp("template") / "data"
    ch = connect(Settings(clickhouse_url=f"chdb://{path}"))
    try:
        apply(ch)
    finally:
        ch.close()
    return path


@pytest.fixture
def data_dir(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """This test's data directory: a migrated copy when the test uses `clickhouse`."""
    path = tmp_path / "data"
    if "clickhouse" in request.fixturenames:
        template: Path = request.getfixturevalue("migrated_template")
        shutil.copytree(template, path, symlinks=True, ignore=shutil.ignore_patterns("*.lock"))
    return path


@pytest.fixture
def http_url(data_dir: Path) -> Iterator[str]:
    """This test's directory behind the HTTP test double, in either mode."""
    with ClickHouseHttpDouble(data_dir) as double:
        yield f"{double.url}/default"


@pytest.fixture
def clickhouse_url(request: pytest.FixtureRequest, data_dir: Path) -> str:
    """TA_CLICKHOUSE_URL for this test's own data directory, as TA_TEST_ENGINE says."""
    if ENGINE == "http":
        return str(request.getfixturevalue("http_url"))
    return f"chdb://{data_dir}"


@pytest.fixture
def settings(clickhouse_url: str) -> Settings:
    return Settings(clickhouse_url=clickhouse_url, scheduler_enabled=False)


@pytest.fixture
def clickhouse(settings: Settings) -> Iterator[ClickHouse]:
    ch = connect(settings)
    try:
        apply(ch)  # a no-op on the migrated copy; checks that it is current
        yield ch
    finally:
        ch.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def make_app(
    settings: Settings, clickhouse: ClickHouse, clock: ManualClock
) -> Callable[..., Starlette]:
    """Build an app on the test's engine, with settings overrides."""

    def build(**overrides: Any) -> Starlette:
        merged = settings.model_copy(update=overrides) if overrides else settings
        return create_app(merged, clickhouse, clock=clock)

    return build


@pytest.fixture
def app(make_app: Callable[..., Starlette]) -> Starlette:
    return make_app()


@pytest.fixture
def client(app: Starlette) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


def trace(trace_id: str = "t1", **fields: Any) -> dict[str, Any]:
    """A valid trace record."""
    return {"id": trace_id, "name": "chat", "timestamp": "2026-11-22T10:00:00Z", **fields}


def observation(obs_id: str = "o1", trace_id: str = "t1", **fields: Any) -> dict[str, Any]:
    """A valid observation record (a 1.5 s generation by default)."""
    return {
        "id": obs_id,
        "trace_id": trace_id,
        "type": "generation",
        "name": "llm",
        "start_time": "2026-11-22T10:00:00.000Z",
        "end_time": "2026-11-22T10:00:01.500Z",
        "model": "gpt-4o",
        "provider": "openai",
        "input_tokens": 100,
        "output_tokens": 20,
        "cost": 0.01,
        **fields,
    }


def ingest_traces(client: TestClient, *trace_ids: str, **query: str) -> None:
    """One batch: each trace with two observations (one generation, one tool call)."""
    body = {
        "traces": [trace(t) for t in trace_ids],
        "observations": [
            o
            for t in trace_ids
            for o in (
                observation(f"{t}-llm", t),
                observation(f"{t}-tool", t, type="tool", model="", input_tokens=0),
            )
        ],
    }
    response = client.post("/v1/ingest", json=body, params=query)
    assert response.status_code == 202, response.text


def detect(app: Starlette) -> list[Conclusion]:
    """One detection pass with the app's settings, clock and metrics, on the scheduler's role."""
    ctx = app_context(app)
    return run_detection_pass(
        ctx.engine(DETECT),
        ctx.settings,
        clock=ctx.clock,
        stamp=ctx.stamp,
        metrics=ctx.metrics,
        health=ctx.pipeline.detect,
    )


def deliver(app: Starlette) -> DeliveryReport:
    """One delivery pass with the app's settings, clock, metrics and stop flag.

    Inside the app's lifespan it uses the app's own sender; outside it (an app that was
    never started) a sender lives for this one pass, as in `trace-analytics check`.
    """
    ctx = app_context(app)
    with contextlib.ExitStack() as stack:
        sender = ctx.sender
        if sender is None and ctx.settings.analyze_url is not None:
            sender = stack.enter_context(Sender(ctx.settings))
        return run_delivery_pass(
            ctx.engine(DELIVER),
            ctx.settings,
            sender,
            clock=ctx.clock,
            stamp=ctx.stamp,
            stopping=ctx.stopping,
            metrics=ctx.metrics,
            health=ctx.pipeline.deliver,
        )
