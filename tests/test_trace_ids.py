"""Any trace id round-trips through the path when percent-encoded, "/" included (issue 14.8)."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from starlette.testclient import TestClient

from service.clickhouse import ClickHouse
from service.clock import ManualClock
from service.durations.materialize import materialize_traces
from tests.conftest import ingest_traces

IDS = [
    "a/b",
    "x/durations",
    "/leading",
    "café",
    "50%",
    "%2F",
    "with space",
    "a+b",
    "日本/語",
    "a.b",
]


def path(trace_id: str) -> str:
    return "/v1/traces/" + quote(trace_id, safe="")


@pytest.mark.parametrize("trace_id", IDS)
def test_a_trace_id_can_be_read_its_durations_listed_and_deleted(
    client: TestClient, clickhouse: ClickHouse, clock: ManualClock, trace_id: str
) -> None:
    total = {"name": "total", "start": {"anchor": "trace_start"}, "end": {"anchor": "trace_end"}}
    assert client.post("/v1/duration-definitions", json=total).status_code == 201
    ingest_traces(client, trace_id, "x")
    materialize_traces(clickhouse, [("default", trace_id, 1)], clock)

    got = client.get(path(trace_id))
    assert got.status_code == 200, got.text
    assert got.json()["trace_id"] == trace_id
    durations = client.get(path(trace_id) + "/durations")
    assert durations.status_code == 200, durations.text
    assert [row["name"] for row in durations.json()["data"]] == ["total"]

    deleted = client.delete(path(trace_id))
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["deleted"]["trace_id"] == trace_id
    assert client.get(path(trace_id)).status_code == 404
    assert client.get(path("x")).status_code == 200  # only that trace


def test_an_id_ending_in_durations_is_not_the_durations_route(client: TestClient) -> None:
    ingest_traces(client, "x", "x/durations")
    assert client.get(path("x/durations")).json()["trace_id"] == "x/durations"
    assert client.get(path("x") + "/durations").json() == {"data": []}


def test_an_unencoded_slash_is_not_part_of_an_id(client: TestClient) -> None:
    ingest_traces(client, "a/b")
    assert client.get("/v1/traces/a/b").status_code == 404
