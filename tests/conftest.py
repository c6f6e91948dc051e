"""Shared fixtures: every test gets its own embedded chDB directory, migrated, then closed.

chDB opens one data directory per process at a time, so each `clickhouse` fixture closes
its client at teardown before the next test opens a new directory.
"""

from __future__ import annotations

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


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(clickhouse_url=f"chdb://{tmp_path / 'data'}", scheduler_enabled=False)


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
