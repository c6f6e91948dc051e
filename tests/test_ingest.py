"""POST /v1/ingest, GET and DELETE /v1/traces/{id} against embedded chDB."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from service.clickhouse import ClickHouse
from tests.conftest import observation, trace


def raw_count(ch: ClickHouse, table: str) -> int:
    return int(ch.query_rows("t", sql=f"SELECT count() FROM {table}")[0][0])


def live_count(ch: ClickHouse, table: str) -> int:
    return int(ch.query_rows("t", sql=f"SELECT count() FROM {table} FINAL")[0][0])


def test_valid_batch_is_written_and_summarized(client: TestClient) -> None:
    body = {
        "traces": [trace("t1")],
        "observations": [
            observation("o1"),
            observation(
                "o2",
                input_tokens=5,
                output_tokens=5,
                cost=0.5,
                status="error",
                start_time="2026-11-22T10:00:02Z",
                end_time="2026-11-22T10:00:04Z",
            ),
            observation("o3", type="tool", model="", provider="", end_time=None),
        ],
    }
    response = client.post("/v1/ingest", json=body)
    assert response.status_code == 202
    assert response.json() == {"accepted": {"traces": 1, "observations": 3}}

    summary = client.get("/v1/traces/t1").json()["summary"]
    assert summary["observations"] == 3
    assert summary["orphans"] == 1
    assert summary["errors"] == 1
    assert summary["input_tokens"] == 205
    assert summary["output_tokens"] == 45
    assert summary["cost"] == pytest.approx(0.52)
    assert summary["start_time"] == "2026-11-22T10:00:00.000Z"
    assert summary["end_time"] == "2026-11-22T10:00:04.000Z"
    assert summary["duration_ms"] == 4000.0
    assert summary["models"] == ["gpt-4o"]


def test_replayed_batch_leaves_no_duplicates_on_read(
    client: TestClient, clickhouse: ClickHouse
) -> None:
    body = {"traces": [trace("t1")], "observations": [observation("o1"), observation("o2")]}
    for _ in range(3):
        assert client.post("/v1/ingest", json=body).status_code == 202
    assert raw_count(clickhouse, "observations") == 6
    assert live_count(clickhouse, "observations") == 2
    assert client.get("/v1/traces/t1").json()["summary"]["input_tokens"] == 200


def test_upsert_keeps_the_newest_version(client: TestClient) -> None:
    client.post("/v1/ingest", json={"observations": [observation("o1", output_tokens=1)]})
    client.post("/v1/ingest", json={"observations": [observation("o1", output_tokens=99)]})
    assert client.get("/v1/traces/t1").json()["summary"]["output_tokens"] == 99


BAD_BATCHES: list[tuple[str, Any, str]] = [
    ("unknown top-level field", {"spans": []}, "spans"),
    ("missing id", {"observations": [{**observation(), "id": ""}]}, "observations[0].id"),
    ("bad type", {"observations": [observation(type="bogus")]}, "observations[0].type"),
    (
        "bad time",
        {"observations": [observation(start_time="yesterday")]},
        "observations[0].start_time",
    ),
    (
        "negative tokens",
        {"observations": [observation(input_tokens=-1)]},
        "observations[0].input_tokens",
    ),
    ("negative cost", {"observations": [observation(cost=-0.1)]}, "observations[0].cost"),
    ("bad status", {"observations": [observation(status="maybe")]}, "observations[0].status"),
    ("unknown row field", {"traces": [trace(colour="red")]}, "traces[0].colour"),
    ("trace without timestamp", {"traces": [{"id": "t9"}]}, "traces[0].timestamp"),
    # Found by schemathesis: values were coerced although the document says their type.
    ("cost as a boolean", {"observations": [observation(cost=False)]}, "observations[0].cost"),
    (
        "tokens as a string",
        {"observations": [observation(input_tokens="5")]},
        "observations[0].input_tokens",
    ),
    ("timestamp as a number", {"traces": [trace(timestamp=1764000000)]}, "traces[0].timestamp"),
    # Found by schemathesis: a metadata integer beyond 64 bits was a 500.
    (
        "metadata integer beyond 64 bits",
        {"traces": [trace(metadata={"n": -(2**63) - 1})]},
        "traces[0].metadata.n",
    ),
    (
        "second row bad",
        {"observations": [observation("a"), observation("b", trace_id="")]},
        "observations[1].trace_id",
    ),
]


@pytest.mark.parametrize(("case", "body", "field"), BAD_BATCHES, ids=[c[0] for c in BAD_BATCHES])
def test_bad_input_is_rejected_naming_the_field_and_writes_nothing(
    client: TestClient, clickhouse: ClickHouse, case: str, body: Any, field: str
) -> None:
    good_rows = {"traces": [trace("ok")], "observations": [observation("ok-1", trace_id="ok")]}
    merged = {**good_rows, **body} if "spans" not in body else body
    if "observations" in body and "traces" not in body:
        merged = {"traces": good_rows["traces"], "observations": body["observations"]}
    response = client.post("/v1/ingest", json=merged)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_batch"
    assert error["message"].startswith(field)
    assert raw_count(clickhouse, "traces") == 0
    assert raw_count(clickhouse, "observations") == 0


def test_malformed_json_and_empty_body_are_400(client: TestClient) -> None:
    assert client.post("/v1/ingest", content=b"{not json").status_code == 400
    assert client.post("/v1/ingest", content=b"").status_code == 400


def test_oversized_body_is_413_and_writes_nothing(make_app: Any, clickhouse: ClickHouse) -> None:
    app = make_app(ingest_max_bytes=2048)
    body = {"observations": [observation(f"o{i}") for i in range(50)]}
    with TestClient(app) as small:
        response = small.post("/v1/ingest", json=body)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert raw_count(clickhouse, "observations") == 0


def test_delete_hides_the_trace_and_its_observations(
    client: TestClient, clickhouse: ClickHouse
) -> None:
    client.post(
        "/v1/ingest",
        json={
            "traces": [trace("t1"), trace("t2")],
            "observations": [observation("o1"), observation("o2", trace_id="t2")],
        },
    )
    assert client.delete("/v1/traces/t1").status_code == 200
    assert client.get("/v1/traces/t1").status_code == 404
    assert client.get("/v1/traces/t2").status_code == 200
    assert live_count(clickhouse, "observations") == 1
    assert client.delete("/v1/traces/t1").status_code == 404


def test_unknown_trace_is_404_with_the_error_shape(client: TestClient) -> None:
    response = client.get("/v1/traces/nope")
    assert response.status_code == 404
    assert response.json() == {
        "error": {"code": "not_found", "message": "trace_id: no trace 'nope'"}
    }


def test_times_with_offsets_or_none_are_stored_as_utc(client: TestClient) -> None:
    client.post(
        "/v1/ingest",
        json={
            "observations": [
                observation("a", start_time="2026-11-22T12:00:00+02:00", end_time=None),
                observation("b", start_time="2026-11-22T10:00:00.250", end_time=None),
            ]
        },
    )
    summary = client.get("/v1/traces/t1").json()["summary"]
    assert summary["start_time"] == "2026-11-22T10:00:00.000Z"
    assert summary["orphans"] == 2
    assert summary["duration_ms"] is None
