"""The rollup ledger's write side: atomic chunks, cost that follows the change, upgrades."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from starlette.testclient import TestClient

from service.clickhouse import ClickHouse
from service.clock import ManualClock
from service.jobs.kinds import default_kinds
from service.jobs.model import Job
from service.jobs.rollups_backfill import KIND as ROLLUPS
from service.jobs.rollups_backfill import RollupsBackfill, rollup_backfill_params
from service.jobs.runner import run_job
from service.jobs.store import create_job, get_job
from service.migrations import discover
from service.rollups import read_watermark, run_rollup_pass
from service.rollups.ledger import START, apply_chunk, new_batch, stage_activity
from tests.conftest import observation, trace

RANGE = {"from": "2026-11-22T00:00:00Z", "to": "2026-11-23T00:00:00Z"}


def ingest(client: TestClient, **body: Any) -> None:
    response = client.post("/v1/ingest", json=body)
    assert response.status_code == 202, response.text


def served_and_raw(client: TestClient, path: str = "/v1/usage", **params: str) -> tuple[Any, Any]:
    query = {**RANGE, **params}
    served = client.get(path, params=query).json()["data"]
    raw = client.get(path, params={**query, "source": "raw"}).json()["data"]
    return served, raw


def active_parts(clickhouse: ClickHouse) -> list[str]:
    rows = clickhouse.query_rows(
        "test:parts",
        sql="SELECT name FROM system.parts WHERE database = currentDatabase()"
        " AND table = 'rollup_ledger' AND active ORDER BY modification_time, name",
    )
    return [str(name) for (name,) in rows]


def traces_in_part(clickhouse: ClickHouse, part: str) -> set[str]:
    rows = clickhouse.query_rows(
        "test:part",
        {"part": part},
        sql="SELECT DISTINCT trace_id FROM rollup_ledger WHERE _part = {part:String}"
        " AND view = 'trace'",
    )
    return {str(trace_id) for (trace_id,) in rows}


@pytest.fixture
def no_merges(clickhouse: ClickHouse) -> ClickHouse:
    """The ledger with background merges stopped, so each insert stays its own part."""
    clickhouse.command("test:stop", sql="SYSTEM STOP MERGES rollup_ledger")
    return clickhouse


def test_a_change_is_one_part_holding_only_the_changed_traces_and_their_buckets(
    client: TestClient, no_merges: ClickHouse, clock: ManualClock
) -> None:
    ingest(
        client,
        traces=[trace(f"t{i}") for i in range(5)],
        observations=[observation(f"o{i}", f"t{i}") for i in range(5)],
    )
    clock.advance(60)  # past the safety lag: the next pass sees only what comes next
    run_rollup_pass(no_merges, clock)
    clock.advance(60)
    before = active_parts(no_merges)
    ingest(client, observations=[observation("o9", "t3", name="rerank")])
    result = run_rollup_pass(no_merges, clock)
    assert result.dirty_traces == 1
    new = [part for part in active_parts(no_merges) if part not in before]
    # One insert of one block: the trace rows and every bucket view they change, together.
    assert len(new) == 1
    assert traces_in_part(no_merges, new[0]) == {"t3"}
    views = no_merges.query_rows(
        "test:views",
        {"part": new[0]},
        sql="SELECT DISTINCT toString(view) FROM rollup_ledger WHERE _part = {part:String}",
    )
    assert {view for (view,) in views} >= {"trace", "hour", "day_total", "day_name"}
    served, raw = served_and_raw(client, group_by="name")
    assert served == raw


def test_a_chunk_read_in_many_small_blocks_still_lands_as_one_part(
    client: TestClient, no_merges: ClickHouse, clock: ManualClock
) -> None:
    ingest(
        client,
        traces=[trace(f"t{i}", environment=("prod", "dev")[i % 2]) for i in range(60)],
        observations=[
            observation(
                f"o{i}",
                f"t{i % 60}",
                name=f"step{i % 7}",
                start_time=f"2026-11-22T{i % 24:02d}:00:00Z",
                end_time=f"2026-11-22T{i % 24:02d}:00:0{i % 10}Z",
            )
            for i in range(600)
        ],
    )
    before = active_parts(no_merges)
    # Tiny read blocks: the insert's squashing must still glue them into one block.
    original = no_merges._settings
    no_merges._settings = replace(original, reads={**original.reads, "max_block_size": 37})
    try:
        result = run_rollup_pass(no_merges, clock)
    finally:
        no_merges._settings = original
    assert (result.dirty_traces, result.chunks) == (60, 1)
    new = [part for part in active_parts(no_merges) if part not in before]
    assert len(new) == 1
    assert len(traces_in_part(no_merges, new[0])) == 60
    served, raw = served_and_raw(client, "/v1/latency", group_by="name")
    assert served == raw


def test_bringing_up_to_date_traces_that_did_not_change_writes_no_part(
    client: TestClient, no_merges: ClickHouse, clock: ManualClock
) -> None:
    ingest(client, traces=[trace("t1")], observations=[observation("o1")])
    run_rollup_pass(no_merges, clock)
    before = active_parts(no_merges)
    batch = new_batch()
    assert stage_activity(no_merges, batch, None) == 1
    chunk = apply_chunk(no_merges, batch, START)
    assert (chunk.traces, chunk.last) == (1, ("default", "t1"))
    assert active_parts(no_merges) == before


def test_a_pass_applies_its_traces_in_bounded_chunks(
    client: TestClient, clickhouse: ClickHouse, clock: ManualClock
) -> None:
    ingest(
        client,
        traces=[trace(f"t{i}") for i in range(5)],
        observations=[observation(f"o{i}", f"t{i}", name=f"step{i % 2}") for i in range(5)],
    )
    result = run_rollup_pass(clickhouse, clock, chunk_traces=2)
    assert (result.dirty_traces, result.chunks) == (5, 3)
    for path in ("/v1/usage", "/v1/latency"):
        served, raw = served_and_raw(client, path, group_by="name")
        assert served == raw
        assert sum(row.get("observations", row.get("count")) for row in served) == 5


def test_a_key_that_moves_away_leaves_a_zero_row_that_no_read_shows(
    client: TestClient, clickhouse: ClickHouse, clock: ManualClock
) -> None:
    ingest(client, observations=[observation("o1")])
    run_rollup_pass(clickhouse, clock)
    clock.advance(60)
    # The trace record arrives after the pass: environment '' becomes 'prod'.
    ingest(client, traces=[trace("t1", environment="prod")])
    run_rollup_pass(clickhouse, clock)
    clickhouse.command("test:merge", sql="OPTIMIZE TABLE rollup_ledger FINAL")
    zero = clickhouse.query_rows(
        "test:zero",
        sql="SELECT count() FROM rollup_ledger WHERE view = 'trace' AND environment = ''"
        " AND kind = 'observation' AND n = 0",
    )
    assert zero[0][0] == 1
    served, raw = served_and_raw(client, group_by="environment")
    assert served == raw
    assert [row["environment"] for row in served] == ["prod"]


def test_a_backfill_whose_staged_traces_expired_stages_them_again_and_resumes(
    client: TestClient, clickhouse: ClickHouse, clock: ManualClock
) -> None:
    ingest(
        client,
        traces=[trace(f"t{i}") for i in range(3)],
        observations=[observation(f"o{i}", f"t{i}") for i in range(3)],
    )
    kind = RollupsBackfill()
    job = create_job(clickhouse, ROLLUPS, "", rollup_backfill_params(None, None, 1), clock())
    total = kind.plan(clickhouse, job)
    assert total == 3
    first = kind.run_chunk(clickhouse, _with(job, total), clock)
    assert (first.rows, first.cursor, first.finished) == (1, {"after": ["default", "t0"]}, False)
    clickhouse.command("test:expire", sql="TRUNCATE TABLE rollup_batches")
    second = kind.run_chunk(clickhouse, _with(job, total, first.cursor), clock)
    assert second.cursor == {"after": ["default", "t1"]}
    served, raw = served_and_raw(client, group_by="model")
    assert served[0]["observations"] == 2
    assert raw[0]["observations"] == 3


def _with(job: Job, total: int, cursor: dict[str, Any] | None = None) -> Job:
    """The job as the runner hands it to a chunk: planned, at `cursor`."""
    return replace(job, rows_total=total, cursor=cursor or {})


def test_upgrading_a_database_with_history_queues_one_rollups_backfill(
    client: TestClient, clickhouse: ClickHouse, clock: ManualClock
) -> None:
    ingest(client, traces=[trace("t1")], observations=[observation("o1")])
    (migration,) = [m for m in discover() if m.name.endswith("_rollup_ledger")]
    for _ in range(2):  # re-running the migration queues the same job, not a second one
        for statement in migration.statements():
            clickhouse.command("test:migrate", sql=statement)
    queued = get_job(clickhouse, "rollups-ledger-0009")
    assert queued is not None
    # Passes start an hour before the upgrade: older history is the backfill's.
    watermark = read_watermark(clickhouse)
    assert watermark is not None
    real_now = datetime.now(UTC)
    assert real_now - timedelta(hours=2) < watermark < real_now
    assert (queued.kind, queued.status, queued.project_id) == (ROLLUPS, "queued", "")
    done = run_job(clickhouse, queued, default_kinds(), clock)
    assert (done.status, done.rows_processed) == ("done", 1)
    served, raw = served_and_raw(client)
    assert served == raw
    assert served[0]["observations"] == 1


def test_a_fresh_database_gets_no_backfill_and_no_watermark(clickhouse: ClickHouse) -> None:
    rows = clickhouse.query_rows("test:jobs", sql="SELECT count() FROM jobs")
    assert rows[0][0] == 0
    assert read_watermark(clickhouse) is None
