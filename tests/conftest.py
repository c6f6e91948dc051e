"""Shared fixtures: every test gets its own ClickHouse data directory, migrated, then closed.

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

chDB opens one data directory per process at a time, so each test closes its clients
(and its double) at teardown before the next test opens a new directory.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from service.api import create_app
from service.clickhouse import ClickHouse, connect
from service.clock import ManualClock
from service.migrations import apply
from service.settings import Settings
from tests.clickhouse_http import ClickHouseHttpDouble

ENGINES = ("embedded", "http")
ENGINE = os.environ.get("TA_TEST_ENGINE", "embedded")


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


@pytest.fixture
def http_url(tmp_path: Path) -> Iterator[str]:
    """This test's directory behind the HTTP test double, in either mode."""
    with ClickHouseHttpDouble(tmp_path / "data") as double:
        yield f"{double.url}/default"


@pytest.fixture
def clickhouse_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """TA_CLICKHOUSE_URL for this test's own data directory, as TA_TEST_ENGINE says."""
    if ENGINE == "http":
        return str(request.getfixturevalue("http_url"))
    return f"chdb://{tmp_path / 'data'}"


@pytest.fixture
def settings(clickhouse_url: str) -> Settings:
    return Settings(clickhouse_url=clickhouse_url, scheduler_enabled=False)


@pytest.fixture
def clickhouse(settings: Settings) -> Iterator[ClickHouse]:
    ch = connect(settings)
    try:
        apply(ch)
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
