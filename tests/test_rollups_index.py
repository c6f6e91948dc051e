"""The rollups' bucket → trace index: kept by every pass, harmless if stale, rebuilt on upgrade."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.testclient import TestClient

from service.clickhouse import ClickHouse
from service.clock import ManualClock
from service.migrations import discover
from service.rollups import recompute_buckets, run_rollup_pass
from tests.conftest import observation, trace

RANGE = {"from": "2026-11-22T00:00:00Z", "to": "2026-11-23T00:00:00Z"}
TEN = datetime(2026, 11, 22, 10, tzinfo=UTC)
TWELVE = datetime(2026, 11, 22, 12, tzinfo=UTC)


def ingest(client: TestClient, **body: Any) -> None:
    response = client.post("/v1/ingest", json=body)
    assert response.status_code == 202, response.text


def served_and_raw(client: TestClient) -> tuple[list[Any], list[Any]]:
    """Hourly usage by model from the rollups and from raw rows."""
    params = {**RANGE, "group_by": "model"}
    served = client.get("/v1/usage", params=params).json()["data"]
    raw = client.get("/v1/usage", params={**params, "source": "raw"}).json()["data"]
    return served, raw


def indexed(clickhouse: ClickHouse) -> list[tuple[datetime, str]]:
    """Live (hour, trace) entries of the index."""
    rows = clickhouse.query_rows(
        "test:index",
        sql="SELECT hour, trace_id FROM rollup_hour_traces FINAL ORDER BY hour, trace_id",
    )
    return [(hour, str(trace_id)) for hour, trace_id in rows]


def test_each_pass_points_the_index_at_the_hours_a_trace_has_now(
    client: TestClient, clickhouse: ClickHouse, clock: ManualClock
) -> None:
    ingest(client, traces=[trace("t1")], observations=[observation("o1")])
    run_rollup_pass(clickhouse, clock)
    assert indexed(clickhouse) == [(TEN, "t1")]

    # An upsert moves the observation two hours later: the old hour is tombstoned.
    clock.advance(60)
    ingest(client, observations=[observation("o1", start_time="2026-11-22T12:00:00Z")])
    run_rollup_pass(clickhouse, clock)
    assert indexed(clickhouse) == [(TWELVE, "t1")]
    served, raw = served_and_raw(client)
    assert served == raw
    assert [row["bucket"] for row in served] == ["2026-11-22T12:00:00.000Z"]

    # A deleted trace leaves the index entirely, and its hour empties.
    clock.advance(60)
    assert client.delete("/v1/traces/t1").status_code == 200
    run_rollup_pass(clickhouse, clock)
    assert indexed(clickhouse) == []
    assert served_and_raw(client) == ([], [])


def test_a_new_trace_in_an_indexed_hour_keeps_the_hours_other_traces(
    client: TestClient, clickhouse: ClickHouse, clock: ManualClock
) -> None:
    ingest(
        client,
        traces=[trace("t1"), trace("t2")],
        observations=[observation("o1", "t1"), observation("o2", "t2")],
    )
    clock.advance(60)  # past the safety lag, so the next pass sees only what comes next
    run_rollup_pass(clickhouse, clock)
    clock.advance(60)
    # Only t3 is dirty; the 10:00 recompute must still find t1 and t2 through the index.
    ingest(client, traces=[trace("t3")], observations=[observation("o3", "t3")])
    result = run_rollup_pass(clickhouse, clock)
    assert result.dirty_traces == 1
    served, raw = served_and_raw(client)
    assert served == raw
    assert served[0]["observations"] == 3


def test_stale_live_entries_cost_a_lookup_but_change_no_bucket(
    client: TestClient, clickhouse: ClickHouse, clock: ManualClock
) -> None:
    ingest(
        client,
        traces=[trace("t1"), trace("t2")],
        observations=[
            observation("o1", "t1"),
            observation("o2", "t2", start_time="2026-11-22T12:00:00Z"),
        ],
    )
    run_rollup_pass(clickhouse, clock)
    # A superset, as a failed pass can leave: t2 listed at 10:00 where it has no rows.
    clickhouse.command(
        "test:stale",
        sql="INSERT INTO rollup_hour_traces VALUES ('default', {h:DateTime('UTC')}, 't2', 1, 0)",
        parameters={"h": TEN},
    )
    recompute_buckets(clickhouse, [("default", TEN), ("default", TWELVE)])
    served, raw = served_and_raw(client)
    assert served == raw
    assert [row["observations"] for row in served] == [1, 1]


def test_upgrade_rebuilds_the_index_from_the_trace_memory(
    client: TestClient, clickhouse: ClickHouse, clock: ManualClock
) -> None:
    ingest(
        client,
        traces=[trace("t1"), trace("t2")],
        observations=[observation("o1", "t1"), observation("o2", "t2")],
    )
    run_rollup_pass(clickhouse, clock)
    # A database whose passes ran before the index existed: memory only.
    clickhouse.command("test:truncate", sql="TRUNCATE TABLE rollup_hour_traces")
    (migration,) = [m for m in discover() if m.name.endswith("_rollup_hour_index")]
    for statement in migration.statements():
        clickhouse.command("test:migrate", sql=statement)
    assert indexed(clickhouse) == [(TEN, "t1"), (TEN, "t2")]
    clock.advance(60)
    ingest(client, traces=[trace("t3")], observations=[observation("o3", "t3")])
    run_rollup_pass(clickhouse, clock)
    served, raw = served_and_raw(client)
    assert served == raw
    assert served[0]["observations"] == 3
