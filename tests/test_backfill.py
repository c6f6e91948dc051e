"""Backfills end to end: the rollups backfill job, and the `trace-analytics backfill` CLI."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient

from service.cli import main
from service.clickhouse import ClickHouse, connect
from service.clock import ManualClock, VersionStamp
from service.durations.catalog import save_definition
from service.durations.definitions import DurationSpec, parse_definition
from service.durations.materialize import materialize_traces
from service.ingest.decode import parse_batch
from service.ingest.writer import write_rows
from service.jobs.kinds import default_kinds
from service.jobs.rollups_backfill import KIND as ROLLUPS
from service.jobs.rollups_backfill import RollupsBackfill, rollup_backfill_params
from service.jobs.runner import RunOptions, run_job
from service.jobs.store import create_job, get_job, list_jobs
from service.migrations import apply
from service.settings import Settings
from tests.conftest import observation

HOURS = [
    "2026-11-22T07:10:00Z",
    "2026-11-22T08:20:00Z",
    "2026-11-22T08:40:00Z",
    "2026-11-22T11:05:00Z",
]


def spread_observations() -> list[dict[str, Any]]:
    return [
        observation(
            f"o{i}",
            f"t{i}",
            start_time=start,
            end_time=start.replace("Z", ".5Z")[:19] + ".500Z",
            input_tokens=10 * (i + 1),
        )
        for i, start in enumerate(HOURS)
    ]


USAGE = {"from": "2026-11-22T00:00:00Z", "to": "2026-11-23T00:00:00Z", "granularity": "hour"}


def test_rollups_backfill_brings_every_trace_up_to_date_in_paced_chunks(
    client: TestClient, clickhouse: ClickHouse, clock: ManualClock
) -> None:
    assert (
        client.post("/v1/ingest", json={"observations": spread_observations()}).status_code == 202
    )
    raw = client.get("/v1/usage", params={**USAGE, "source": "raw"}).json()["data"]
    assert len(raw) == 3

    clock.advance(10)
    params = rollup_backfill_params(None, None, batch_size=1)
    job = create_job(clickhouse, ROLLUPS, "", params, clock())
    slept: list[float] = []
    done = run_job(
        clickhouse, job, default_kinds(), clock, RunOptions(pause_seconds=1, sleep=slept.append)
    )
    # Progress counts traces: four, one per chunk, and a pause after each full chunk.
    assert (done.status, done.rows_total, done.rows_processed) == ("done", 4, 4)
    assert len(slept) == 4
    served = client.get("/v1/usage", params=USAGE).json()["data"]
    assert served == raw
    # Run again on a consistent ledger: every chunk finds nothing to change.
    rows = clickhouse.query_rows("rows", sql="SELECT count() FROM rollup_ledger")
    again = run_job(
        clickhouse, create_job(clickhouse, ROLLUPS, "", params, clock()), default_kinds(), clock
    )
    assert again.status == "done"
    assert clickhouse.query_rows("rows", sql="SELECT count() FROM rollup_ledger") == rows


def test_rollups_backfill_honours_an_explicit_range(
    client: TestClient, clickhouse: ClickHouse, clock: ManualClock
) -> None:
    client.post("/v1/ingest", json={"observations": spread_observations()})
    clock.advance(10)
    from datetime import UTC, datetime

    params = rollup_backfill_params(
        datetime(2026, 11, 22, 8, 0, tzinfo=UTC), datetime(2026, 11, 22, 9, 0, tzinfo=UTC), 6
    )
    # Two traces start in 08:00 .. 09:00; the others stay out of the ledger.
    done = run_job(
        clickhouse, create_job(clickhouse, ROLLUPS, "", params, clock()), default_kinds(), clock
    )
    assert (done.status, done.rows_total, done.rows_processed) == ("done", 2, 2)
    served = client.get("/v1/usage", params=USAGE).json()["data"]
    assert [row["observations"] for row in served] == [2]
    assert RollupsBackfill().name == ROLLUPS


@pytest.fixture
def cli_settings(clickhouse_url: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    url = clickhouse_url
    monkeypatch.setenv("TA_CLICKHOUSE_URL", url)
    monkeypatch.setenv("TA_BACKFILL_PAUSE_SECONDS", "0")
    return Settings(clickhouse_url=url)


def seed_concluded(settings: Settings) -> str:
    """Three concluded traces and one definition, written then closed (the CLI opens the dir)."""
    clock = ManualClock()
    ch = connect(settings)
    try:
        apply(ch)
        body = {"observations": [observation(f"o{i}", f"t{i}") for i in range(3)]}
        rows = parse_batch(orjson.dumps(body)).resolve(lambda _p, _f: "default")
        write_rows(ch, rows, VersionStamp(clock))
        materialize_traces(ch, [("default", f"t{i}", 1) for i in range(3)], clock)
        spec = parse_definition(
            DurationSpec, {"start": {"anchor": "trace_start"}, "end": {"anchor": "trace_end"}}
        )
        save_definition(ch, "default", "total", spec, clock())
        failed = create_job(ch, "retired.kind", "default", {}, clock())
        return failed.id
    finally:
        ch.close()


def test_cli_backfill_durations_list_and_resume(
    cli_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    unknown_kind_job = seed_concluded(cli_settings)

    assert main(["backfill", "durations", "--definition", "total", "--batch-size", "2"]) == 0
    out = capsys.readouterr().out
    assert "durations.backfill" in out
    assert "done" in out
    assert "3/3" in out

    assert main(["backfill", "--resume", unknown_kind_job]) == 1
    assert "unknown job kind 'retired.kind'" in capsys.readouterr().err

    assert main(["backfill", "--list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert len(listed) == 2
    assert any("failed" in line for line in listed)

    ch = connect(cli_settings)
    try:
        totals = ch.query_rows(
            "t", sql="SELECT trace_id, duration_ms FROM trace_durations FINAL ORDER BY trace_id"
        )
        assert totals == [("t0", 1500.0), ("t1", 1500.0), ("t2", 1500.0)]
        done = [j for j in list_jobs(ch, None, ["done"])]
        assert len(done) == 1
        assert get_job(ch, done[0].id) == done[0]
    finally:
        ch.close()

    assert main(["backfill", "--resume", done[0].id]) == 0


def test_cli_backfill_usage_errors_are_one_line(
    cli_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["migrate"]) == 0  # a server is migrated before anything else runs
    capsys.readouterr()
    assert main(["backfill"]) == 2
    assert "name a backfill" in capsys.readouterr().err
    assert main(["backfill", "--resume", "nope"]) == 2
    assert "--resume: no job 'nope'" in capsys.readouterr().err
    assert main(["backfill", "rollups", "--from", "yesterday"]) == 2
    assert "--from: 'yesterday' is not an RFC 3339 time" in capsys.readouterr().err
