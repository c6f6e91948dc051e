"""Named durations against embedded chDB: definitions API, materialization, reads, stats."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.testclient import TestClient

from service.clickhouse import ClickHouse
from service.clock import ManualClock
from service.durations.materialize import materialize_concluded, materialize_traces
from service.durations.plan import Subject
from service.jobs.kinds import default_kinds
from service.jobs.runner import run_job
from service.jobs.store import get_job
from service.traces.store import load_trace_rows
from tests.conftest import observation, trace

TTFT = {
    "name": "time_to_first_token",
    "start": {"anchor": "trace_start"},
    "end": {"anchor": "observation", "type": "generation", "pick": "first", "edge": "first_token"},
}
TOTAL = {"name": "total", "start": {"anchor": "trace_start"}, "end": {"anchor": "trace_end"}}
TOOL = {
    "name": "first_tool",
    "start": {"anchor": "trace_start"},
    "end": {"anchor": "observation", "type": "tool", "pick": "first", "edge": "end"},
}


def chat_trace(
    trace_id: str, *, offset_s: int = 0, first_token: str | None = None
) -> dict[str, Any]:
    """One trace: a root span at 10:00:00, a generation 10:00:01-10:00:03 (+ first token)."""
    minute = f"10:{offset_s // 60:02d}:{offset_s % 60:02d}"
    return {
        "traces": [trace(trace_id)],
        "observations": [
            observation(
                f"{trace_id}-root",
                trace_id,
                type="span",
                name="root",
                start_time=f"2026-11-22T{minute}.000Z",
                end_time=f"2026-11-22T{minute}.500Z",
            ),
            observation(
                f"{trace_id}-gen",
                trace_id,
                start_time=f"2026-11-22T{minute}.100Z",
                end_time=f"2026-11-22T{minute}.400Z",
                completion_start_time=first_token,
            ),
        ],
    }


def durations_by_name(client: TestClient, trace_id: str, **params: str) -> dict[str, Any]:
    response = client.get(f"/v1/traces/{trace_id}/durations", params=params)
    assert response.status_code == 200, response.text
    return {row["name"]: row for row in response.json()["data"]}


def row_count(ch: ClickHouse, table: str) -> int:
    return int(ch.query_rows("t", sql=f"SELECT count() FROM {table}")[0][0])


def run_queued_jobs(ch: ClickHouse, clock: ManualClock) -> list[str]:
    ids = [
        r[0] for r in ch.query_rows("t", sql="SELECT id FROM jobs FINAL WHERE status = 'queued'")
    ]
    statuses: list[str] = []
    for job_id in ids:
        job = get_job(ch, job_id)
        assert job is not None
        statuses.append(run_job(ch, job, default_kinds(), clock).status)
    return statuses


def test_concluded_trace_gets_its_named_durations(
    client: TestClient, clickhouse: ClickHouse, clock: ManualClock
) -> None:
    for definition in (TTFT, TOTAL, TOOL):
        assert client.post("/v1/duration-definitions", json=definition).status_code == 201
    body = chat_trace("t1", first_token="2026-11-22T10:00:00.250Z")
    assert client.post("/v1/ingest", json=body).status_code == 202

    materialize_traces(clickhouse, [("default", "t1", 1)], clock)

    got = durations_by_name(client, "t1")
    assert got["time_to_first_token"]["duration_ms"] == 250.0
    assert got["time_to_first_token"]["start_time"] == "2026-11-22T10:00:00.000Z"
    assert got["time_to_first_token"]["end_time"] == "2026-11-22T10:00:00.250Z"
    assert got["total"]["duration_ms"] == 500.0
    assert got["first_tool"] == {
        "name": "first_tool",
        "duration_ms": None,
        "start_time": "2026-11-22T10:00:00.000Z",
        "end_time": None,
        "reason": "end anchor missing: no observation of type tool",
        "revision": 1,
    }


def test_get_durations_only_reads(client: TestClient, clickhouse: ClickHouse) -> None:
    client.post("/v1/duration-definitions", json=TOTAL)
    client.post("/v1/ingest", json=chat_trace("t1"))
    before = {t: row_count(clickhouse, t) for t in ("trace_durations", "duration_traces")}

    # An open (not yet concluded) trace: nothing materialized, and the GET computes nothing.
    assert client.get("/v1/traces/t1/durations").json() == {"data": []}
    assert {t: row_count(clickhouse, t) for t in before} == before


def test_unknown_or_other_projects_trace_is_404(
    make_app: Callable[..., Starlette], clickhouse: ClickHouse, clock: ManualClock
) -> None:
    app = make_app(api_keys=SecretStr("ka=acme,kb=globex"))
    with TestClient(app) as client:
        acme = {"Authorization": "Bearer ka"}
        globex = {"Authorization": "Bearer kb"}
        client.post("/v1/duration-definitions", json=TOTAL, headers=acme)
        client.post("/v1/ingest", json=chat_trace("t1"), headers=acme)
        materialize_traces(clickhouse, [("acme", "t1", 1)], clock)
        assert client.get("/v1/traces/t1/durations", headers=acme).status_code == 200
        response = client.get("/v1/traces/t1/durations", headers=globex)
        assert response.status_code == 404
        assert response.json()["error"]["message"] == "trace_id: no trace 't1'"
        assert client.get("/v1/traces/nope/durations", headers=acme).status_code == 404
        # Definitions are per project too.
        assert client.get("/v1/duration-definitions/total", headers=globex).status_code == 404


def test_skew_is_null_and_counted_in_stats(
    client: TestClient, clickhouse: ClickHouse, clock: ManualClock
) -> None:
    client.post("/v1/duration-definitions", json=TTFT)
    # t1: first token before the trace start is impossible -> skew (a clock problem upstream).
    client.post("/v1/ingest", json=chat_trace("t1", first_token="2026-11-22T09:59:59.000Z"))
    client.post("/v1/ingest", json=chat_trace("t2", first_token="2026-11-22T10:00:00.300Z"))
    client.post("/v1/ingest", json=chat_trace("t3", first_token=None))
    client.post("/v1/ingest", json=chat_trace("t4", first_token="2026-11-22T10:00:00.100Z"))
    keys = [("default", t, 1) for t in ("t1", "t2", "t3", "t4")]
    materialize_traces(clickhouse, keys, clock)

    t1 = durations_by_name(client, "t1")["time_to_first_token"]
    assert t1["duration_ms"] is None
    assert t1["reason"] == "clock skew: end anchor is before start anchor"

    stats = client.get(
        "/v1/duration-definitions/time_to_first_token/stats",
        params={"from": "2026-11-22T00:00:00Z", "to": "2026-11-23T00:00:00Z", "granularity": "day"},
    )
    assert stats.status_code == 200, stats.text
    [bucket] = stats.json()["data"]
    assert bucket["bucket"] == "2026-11-22T00:00:00.000Z"
    assert (bucket["count"], bucket["skewed"], bucket["missing"]) == (2, 1, 1)
    assert bucket["avg_ms"] == pytest.approx(200.0)
    assert bucket["max_ms"] == 300.0
    assert 100.0 <= bucket["p50_ms"] <= 300.0


def test_stats_are_bounded_by_the_range_and_validated(client: TestClient) -> None:
    client.post("/v1/duration-definitions", json=TOTAL)
    url = "/v1/duration-definitions/total/stats"
    day = {"from": "2026-11-21T00:00:00Z", "to": "2026-11-22T00:00:00Z"}
    assert client.get(url, params=day).json()["data"] == []
    reversed_range = client.get(url, params={"from": day["to"], "to": day["from"]})
    assert reversed_range.status_code == 400
    assert reversed_range.json()["error"]["message"] == "from: must be before to"
    bad = client.get(url, params={**day, "granularity": "week"})
    assert bad.json()["error"]["message"].startswith("granularity:")
    too_long = client.get(url, params={"from": "2020-01-01T00:00:00Z", "to": day["to"]})
    assert too_long.json()["error"]["message"].startswith("to: range from..to is longer")
    # The same range parser as /v1/usage: `to` defaults to now.
    assert client.get(url, params={"from": day["from"]}).status_code == 200
    ancient = client.get(url, params={"from": "0999-01-01T00:00:00Z"})
    assert ancient.status_code == 400
    message = ancient.json()["error"]["message"]
    assert message.startswith("from: 0999-01-01T00:00:00.000Z is outside")


def test_revision_recomputes_durations_and_moves_stats_without_double_counting(
    client: TestClient, clickhouse: ClickHouse, clock: ManualClock
) -> None:
    client.post("/v1/duration-definitions", json=TOTAL)
    client.post("/v1/ingest", json=chat_trace("t1"))
    materialize_traces(clickhouse, [("default", "t1", 1)], clock)
    assert durations_by_name(client, "t1")["total"]["duration_ms"] == 500.0

    # The trace reopens: a late observation that starts an hour earlier and ends later.
    clock.advance(120)
    late = observation(
        "t1-late",
        "t1",
        type="span",
        name="retry",
        start_time="2026-11-22T09:00:00.000Z",
        end_time="2026-11-22T10:00:02.000Z",
    )
    client.post("/v1/ingest", json={"observations": [late]})
    materialize_traces(clickhouse, [("default", "t1", 2)], clock)

    total = durations_by_name(client, "t1")["total"]
    assert total["revision"] == 2
    assert total["duration_ms"] == 3602000.0
    assert total["start_time"] == "2026-11-22T09:00:00.000Z"
    stats = client.get(
        "/v1/duration-definitions/total/stats",
        params={"from": "2026-11-22T09:00:00Z", "to": "2026-11-22T11:00:00Z"},
    ).json()["data"]
    assert [(b["bucket"], b["count"]) for b in stats] == [("2026-11-22T09:00:00.000Z", 1)]


def test_creating_a_definition_backfills_already_concluded_traces(
    client: TestClient, clickhouse: ClickHouse, clock: ManualClock
) -> None:
    for trace_id in ("t1", "t2", "t3"):
        client.post("/v1/ingest", json=chat_trace(trace_id))
    # Concluded before any definition existed: registered, nothing to compute yet.
    materialize_traces(clickhouse, [("default", t, 1) for t in ("t1", "t2", "t3")], clock)
    assert row_count(clickhouse, "trace_durations") == 0

    created = client.post("/v1/duration-definitions", json=TOTAL)
    assert created.status_code == 201
    job = created.json()["job"]
    assert (job["kind"], job["status"]) == ("durations.backfill", "queued")
    pending = durations_by_name(client, "t1")["total"]
    assert pending["duration_ms"] is None
    assert pending["reason"].startswith("pending:")

    assert run_queued_jobs(clickhouse, clock) == ["done"]
    for trace_id in ("t1", "t2", "t3"):
        assert durations_by_name(client, trace_id)["total"]["duration_ms"] == 500.0
    listed = client.get("/v1/jobs").json()["data"]
    assert [(j["status"], j["rows_processed"], j["rows_total"]) for j in listed] == [("done", 3, 3)]


def test_updating_a_definition_backfill_recomputes_old_traces(
    client: TestClient, clickhouse: ClickHouse, clock: ManualClock
) -> None:
    client.post("/v1/duration-definitions", json=TTFT)
    client.post("/v1/ingest", json=chat_trace("t1", first_token="2026-11-22T10:00:00.250Z"))
    materialize_traces(clickhouse, [("default", "t1", 3)], clock)
    run_queued_jobs(clickhouse, clock)
    assert durations_by_name(client, "t1")["time_to_first_token"]["duration_ms"] == 250.0

    clock.advance(60)
    changed = {**TTFT, "end": {**TTFT["end"], "edge": "end"}}  # type: ignore[dict-item]
    response = client.put("/v1/duration-definitions/time_to_first_token", json=changed)
    assert response.status_code == 200, response.text
    assert response.json()["definition"]["version"] == 2
    assert run_queued_jobs(clickhouse, clock) == ["done"]

    got = durations_by_name(client, "t1")["time_to_first_token"]
    assert got["duration_ms"] == 400.0
    assert got["revision"] == 3


def test_deleted_definition_is_no_longer_served_and_recreating_continues_versions(
    client: TestClient, clickhouse: ClickHouse, clock: ManualClock
) -> None:
    client.post("/v1/duration-definitions", json=TOTAL)
    client.post("/v1/ingest", json=chat_trace("t1"))
    materialize_traces(clickhouse, [("default", "t1", 1)], clock)
    assert client.delete("/v1/duration-definitions/total").status_code == 200
    assert client.get("/v1/duration-definitions").json() == {"data": []}
    assert durations_by_name(client, "t1") == {}
    assert client.delete("/v1/duration-definitions/total").status_code == 404

    recreated = client.post("/v1/duration-definitions", json=TOTAL).json()["definition"]
    assert recreated["version"] == 2
    # The old result (version 1) is not served as if it were the new definition's.
    assert durations_by_name(client, "t1")["total"]["reason"].startswith("pending:")


def test_definition_api_validates_and_names_the_field(client: TestClient) -> None:
    bad = {
        **TTFT,
        "end": {"anchor": "observation", "type": "span", "pick": "first", "edge": "first_token"},
    }
    response = client.post("/v1/duration-definitions", json=bad)
    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "invalid_definition",
        "message": "end.edge: first_token never exists on type 'span': only generations "
        "have a completion_start_time",
    }
    assert client.post("/v1/duration-definitions", json=TTFT).status_code == 201
    duplicate = client.post("/v1/duration-definitions", json=TTFT)
    assert duplicate.status_code == 409
    missing = client.put("/v1/duration-definitions/nope", json={**TOTAL, "name": "nope"})
    assert missing.status_code == 404
    renamed = client.put("/v1/duration-definitions/total", json=TOTAL | {"name": "other"})
    assert renamed.json()["error"]["message"].startswith("name: 'other' differs")
    assert client.post("/v1/duration-definitions", content=b"{").status_code == 400
    listed = client.get("/v1/duration-definitions").json()["data"]
    assert [d["name"] for d in listed] == ["time_to_first_token"]
    assert listed[0]["end"] == TTFT["end"]


def test_openapi_documents_the_definition_body(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    paths = document["paths"]
    post = paths["/v1/duration-definitions"]["post"]
    ref = post["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert "name" in schema["required"]
    assert "201" in post["responses"]
    assert "put" in paths["/v1/duration-definitions/{name}"]
    assert "get" in paths["/v1/traces/{trace_id}/durations"]


def test_deleting_a_trace_removes_its_durations_from_reads_and_stats(
    client: TestClient, clickhouse: ClickHouse, clock: ManualClock
) -> None:
    client.post("/v1/duration-definitions", json=TOTAL)
    for trace_id in ("t1", "t2"):
        client.post("/v1/ingest", json=chat_trace(trace_id))
    materialize_traces(clickhouse, [("default", "t1", 1), ("default", "t2", 1)], clock)
    day = {"from": "2026-11-22T00:00:00Z", "to": "2026-11-23T00:00:00Z", "granularity": "day"}
    stats_url = "/v1/duration-definitions/total/stats"
    assert client.get(stats_url, params=day).json()["data"][0]["count"] == 2

    assert client.delete("/v1/traces/t1").status_code == 200
    assert client.get("/v1/traces/t1/durations").status_code == 404
    assert client.get(stats_url, params=day).json()["data"][0]["count"] == 1

    # A backfill that meets the deleted trace in the registry does not bring it back.
    clock.advance(5)
    client.put("/v1/duration-definitions/total", json=TOTAL)
    assert run_queued_jobs(clickhouse, clock) == ["done", "done"]  # the POST's and the PUT's
    [bucket] = client.get(stats_url, params=day).json()["data"]
    assert bucket["count"] == 1
    live = clickhouse.query_rows("t", sql="SELECT trace_id FROM trace_durations FINAL")
    assert live == [("t2",)]


def test_detector_hook_logs_a_failure_instead_of_failing_the_pass(
    client: TestClient, clickhouse: ClickHouse, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    client.post("/v1/duration-definitions", json=TOTAL)
    client.post("/v1/ingest", json=chat_trace("t1"))
    clickhouse.command("t", sql="DROP TABLE trace_durations")
    [rows] = load_trace_rows(clickhouse, [("default", "t1")]).values()
    assert materialize_concluded(clickhouse, [Subject(rows, 1)], clock) == 0
    assert "run `trace-analytics backfill durations`" in caplog.text
