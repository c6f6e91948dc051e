"""End to end through the conclusion detector: a trace that concludes gets its durations."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from service.clickhouse import ClickHouse
from service.clock import ManualClock
from tests.conftest import detect, observation, trace

IDLE = 60
TTFT = {
    "name": "time_to_first_token",
    "start": {"anchor": "trace_start"},
    "end": {"anchor": "observation", "type": "generation", "pick": "first", "edge": "first_token"},
}
TOTAL = {"name": "total", "start": {"anchor": "trace_start"}, "end": {"anchor": "trace_end"}}


@pytest.fixture
def app(make_app: Callable[..., Starlette]) -> Starlette:
    return make_app(idle_seconds=IDLE, check_interval_seconds=10)


@pytest.fixture
def client(app: Starlette) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


def durations(client: TestClient, trace_id: str) -> dict[str, dict[str, object]]:
    response = client.get(f"/v1/traces/{trace_id}/durations")
    assert response.status_code == 200, response.text
    return {row["name"]: row for row in response.json()["data"]}


def test_detector_materializes_durations_at_each_revision(
    client: TestClient, app: Starlette, clock: ManualClock, clickhouse: ClickHouse
) -> None:
    for definition in (TTFT, TOTAL):
        assert client.post("/v1/duration-definitions", json=definition).status_code == 201
    first = observation(
        "g1",
        "t1",
        start_time="2026-11-22T10:00:00.000Z",
        end_time="2026-11-22T10:00:02.000Z",
        completion_start_time="2026-11-22T10:00:00.400Z",
    )
    client.post("/v1/ingest", json={"traces": [trace("t1")], "observations": [first]})
    assert durations(client, "t1") == {}  # open: nothing materialized, nothing computed

    clock.advance(IDLE + 1)
    assert [(c.trace_id, c.revision) for c in detect(app)] == [("t1", 1)]
    got = durations(client, "t1")
    assert (got["time_to_first_token"]["duration_ms"], got["time_to_first_token"]["revision"]) == (
        400.0,
        1,
    )
    assert got["total"]["duration_ms"] == 2000.0

    # Late activity reopens the trace; its next conclusion recomputes with revision 2.
    clock.advance(5)
    late = observation(
        "s2",
        "t1",
        type="span",
        name="post",
        start_time="2026-11-22T10:00:01.000Z",
        end_time="2026-11-22T10:00:05.000Z",
    )
    client.post("/v1/ingest", json={"observations": [late]})
    clock.advance(IDLE + 1)
    assert [(c.trace_id, c.revision) for c in detect(app)] == [("t1", 2)]
    got = durations(client, "t1")
    assert (got["total"]["duration_ms"], got["total"]["revision"]) == (5000.0, 2)
    assert got["time_to_first_token"]["revision"] == 2
    registered = clickhouse.query_rows(
        "t", sql="SELECT revision FROM duration_traces FINAL WHERE trace_id = 't1'"
    )
    assert registered == [(2,)]


def test_a_pass_reads_each_traces_observations_once_for_summary_and_durations(
    client: TestClient, app: Starlette, clock: ManualClock, clickhouse: ClickHouse
) -> None:
    client.post("/v1/duration-definitions", json=TOTAL)
    body = {
        "traces": [trace(f"t{i}") for i in range(3)],
        "observations": [observation(f"o{i}", f"t{i}") for i in range(3)],
    }
    client.post("/v1/ingest", json=body)
    statements: list[str] = []
    clickhouse.add_observer(lambda name, _seconds: statements.append(name))
    clock.advance(IDLE + 1)
    assert len(detect(app)) == 3
    observation_reads = [s for s in statements if "observation" in s]
    assert observation_reads == ["traces/observation_rows"]
    assert durations(client, "t1")["total"]["duration_ms"] == 1500.0
