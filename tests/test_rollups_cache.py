"""Rollup answers kept per version: never stale, bounded, and computed again on request."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from service.api import app_context
from service.clickhouse import ClickHouse
from service.clock import ManualClock
from service.rollups import rebuild_range, run_rollup_pass
from service.rollups.cache import CachedAnswer, ReadCache
from tests.conftest import observation, trace

RANGE = {"from": "2026-11-22T00:00:00Z", "to": "2026-11-23T00:00:00Z", "group_by": "model"}
WATERMARK = datetime(2026, 11, 22, 9, 59, 50, tzinfo=UTC)


def answer(data: bytes) -> CachedAnswer:
    return CachedAnswer(watermark=WATERMARK, data=data)


# The cache itself (pure) ------------------------------------------------------------------


def test_an_answer_is_found_only_at_the_version_it_was_stored_under() -> None:
    cache = ReadCache(max_bytes=1000)
    assert cache.get("q", version=1) is None
    cache.put("q", 1, answer(b"[1]"))
    assert cache.get("q", version=1) == answer(b"[1]")
    assert cache.get("q", version=2) is None
    # Moving to a new version dropped the old answers: going back finds nothing.
    assert cache.get("q", version=1) is None
    assert cache.size_bytes == 0


def test_an_answer_computed_for_a_version_no_longer_current_is_not_kept() -> None:
    cache = ReadCache(max_bytes=1000)
    cache.get("q", version=1)
    cache.get("q", version=2)  # another request saw the ledger move meanwhile
    cache.put("q", 1, answer(b"[old]"))
    assert cache.get("q", version=2) is None


def test_the_least_recently_used_answers_go_first_past_the_byte_bound() -> None:
    cache = ReadCache(max_bytes=10)
    cache.get("a", version=1)
    cache.put("a", 1, answer(b"aaaa"))
    cache.put("b", 1, answer(b"bbbb"))
    assert cache.get("a", version=1) is not None  # a is now the most recently used
    cache.put("c", 1, answer(b"cccc"))
    assert cache.get("b", version=1) is None
    assert cache.get("a", version=1) is not None
    assert cache.get("c", version=1) is not None
    assert cache.size_bytes == 8
    cache.put("huge", 1, answer(b"x" * 11))  # larger than the whole cache: not kept
    assert cache.get("huge", version=1) is None
    assert cache.size_bytes == 8


def test_a_cache_of_zero_bytes_is_off() -> None:
    assert not ReadCache(max_bytes=0).enabled


# Through the API --------------------------------------------------------------------------


@pytest.fixture
def statements(clickhouse: ClickHouse) -> list[str]:
    """Names of the statements every role runs from here on."""
    names: list[str] = []
    clickhouse.add_observer(lambda name, seconds: names.append(name))
    return names


def usage(client: TestClient, **headers: str) -> dict[str, Any]:
    response = client.get("/v1/usage", params=RANGE, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def cache_outcomes(app: Starlette) -> dict[str, float]:
    registry = app_context(app).metrics.registry
    return {
        outcome: registry.get_sample_value("ta_rollup_read_cache_total", {"outcome": outcome})
        or 0.0
        for outcome in ("hit", "miss", "refresh")
    }


def ingest(client: TestClient, *observations: dict[str, Any]) -> None:
    body = {"traces": [trace("t1")], "observations": list(observations)}
    assert client.post("/v1/ingest", json=body).status_code == 202


def test_a_repeated_read_reads_only_the_version(
    app: Starlette,
    client: TestClient,
    clickhouse: ClickHouse,
    clock: ManualClock,
    statements: list[str],
) -> None:
    ingest(client, observation("o1"))
    run_rollup_pass(clickhouse, clock)
    clock.advance(30)
    first = usage(client)
    statements.clear()
    clock.advance(5)
    again = usage(client)
    assert statements == ["rollups/read_version"]
    assert again["data"] == first["data"]
    assert again["freshness"]["watermark"] == first["freshness"]["watermark"]
    # The lag is the request's own, not the stored answer's.
    assert again["freshness"]["lag_seconds"] == first["freshness"]["lag_seconds"] + 5
    assert cache_outcomes(app) == {"hit": 1, "miss": 1, "refresh": 0}


def test_an_answer_is_never_reused_once_the_ledger_changed(
    client: TestClient, clickhouse: ClickHouse, clock: ManualClock
) -> None:
    ingest(client, observation("o1"))
    run_rollup_pass(clickhouse, clock)
    assert usage(client)["data"][0]["observations"] == 1
    # A pass at the same instant leaves the watermark where it was, yet the ledger moved.
    ingest(client, observation("o2"))
    run_rollup_pass(clickhouse, clock)
    assert usage(client)["data"][0]["observations"] == 2


def test_a_backfill_that_repairs_the_ledger_shows_at_once(
    client: TestClient, clickhouse: ClickHouse, clock: ManualClock
) -> None:
    ingest(client, observation("o1"))
    run_rollup_pass(clickhouse, clock)
    before = usage(client)
    # Lose the trace's ledger rows (as on a database upgraded from the bucket design), read,
    # then let a backfill bring them back: the watermark never moves meanwhile.
    clickhouse.command("test:empty", sql="TRUNCATE TABLE rollup_ledger")
    assert usage(client)["data"] == []
    start = datetime(2026, 11, 22, tzinfo=UTC)
    rebuild_range(clickhouse, start, start + timedelta(days=1))
    assert usage(client) == before


def test_a_merge_changes_the_version_but_not_the_answer(
    app: Starlette,
    client: TestClient,
    clickhouse: ClickHouse,
    clock: ManualClock,
) -> None:
    for i in range(3):
        ingest(client, observation(f"o{i}"))
        run_rollup_pass(clickhouse, clock)
    first = usage(client)
    clickhouse.command("test:merge", sql="OPTIMIZE TABLE rollup_ledger FINAL")
    assert usage(client) == first
    assert cache_outcomes(app)["miss"] == 2


def test_no_cache_computes_the_answer_again(
    app: Starlette,
    client: TestClient,
    clickhouse: ClickHouse,
    clock: ManualClock,
    statements: list[str],
) -> None:
    ingest(client, observation("o1"))
    run_rollup_pass(clickhouse, clock)
    first = usage(client)
    statements.clear()
    assert usage(client, **{"Cache-Control": "max-age=0, no-cache"}) == first
    assert statements == [
        "rollups/read_version",
        "rollups/read_cursor",
        "rollups/usage_from_ledger",
    ]
    assert cache_outcomes(app) == {"hit": 0, "miss": 1, "refresh": 1}


def test_no_store_leaves_the_answer_it_computed_out(
    app: Starlette,
    client: TestClient,
    clickhouse: ClickHouse,
    clock: ManualClock,
    statements: list[str],
) -> None:
    ingest(client, observation("o1"))
    run_rollup_pass(clickhouse, clock)
    statements.clear()
    first = usage(client, **{"Cache-Control": "no-cache, no-store"})
    # Neither looked up nor kept: the version is not even read.
    assert statements == ["rollups/read_cursor", "rollups/usage_from_ledger"]
    assert usage(client) == first
    assert cache_outcomes(app) == {"hit": 0, "miss": 1, "refresh": 1}
    statements.clear()
    assert usage(client, **{"Cache-Control": "no-store"}) == first  # a kept answer is used
    assert statements == ["rollups/read_version"]


def test_with_the_cache_off_every_read_is_computed(
    make_app: Callable[..., Starlette],
    clickhouse: ClickHouse,
    clock: ManualClock,
    statements: list[str],
) -> None:
    app = make_app(rollup_read_cache_mb=0)
    with TestClient(app) as client:
        ingest(client, observation("o1"))
        run_rollup_pass(clickhouse, clock)
        first = usage(client)
        statements.clear()
        assert usage(client) == first
        assert statements == ["rollups/read_cursor", "rollups/usage_from_ledger"]
        assert cache_outcomes(app) == {"hit": 0, "miss": 0, "refresh": 0}


def test_raw_reads_are_never_kept(
    client: TestClient, clickhouse: ClickHouse, clock: ManualClock
) -> None:
    ingest(client, observation("o1"))
    raw = {**RANGE, "source": "raw"}
    assert client.get("/v1/usage", params=raw).json()["data"][0]["observations"] == 1
    ingest(client, observation("o2"))
    assert client.get("/v1/usage", params=raw).json()["data"][0]["observations"] == 2
