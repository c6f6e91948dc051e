"""Every number and time the service accepts fits what it stores and computes (issue 14.4-5).

Limits: tokens 0..1e9, cost 0..1e9 (finite), times in [1970-01-01, 2100-01-01) UTC
(`service.times.storable`), at ingest and in every time query parameter; metadata numbers
are stored as their text, up to 64 bits.
Data at the very edges goes through rollups, durations, summaries and reads without a 500.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from starlette.testclient import TestClient

from service.clickhouse import ClickHouse
from service.clock import ManualClock
from service.durations.materialize import materialize_traces
from service.ingest.rows import OBSERVATION_COLUMNS
from service.rollups import run_rollup_pass
from service.times import EARLIEST_MS, EPOCH, LATEST_MS
from tests.conftest import observation, trace

EARLIEST = "1970-01-01T00:00:00.000Z"
LATEST = "2099-12-31T23:59:59.999Z"


def outside(shown: str) -> str:
    """The message of a time outside the window, as `shown` (UTC, milliseconds)."""
    return f"{shown} is outside the supported window [{EARLIEST}, 2100-01-01T00:00:00.000Z)"


def rejected(client: TestClient, body: Any, **kwargs: Any) -> str:
    response = client.post("/v1/ingest", json=body, **kwargs)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalid_batch"
    message: str = response.json()["error"]["message"]
    return message


# -- numbers ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("input_tokens", 1_000_000_001, "Input should be less than or equal to 1000000000"),
        ("output_tokens", 2**64, "Input should be less than or equal to 1000000000"),
        ("cost", 1.7e308, "Input should be less than or equal to 1000000000"),
        ("cost", -1e-9, "Input should be greater than or equal to 0"),
    ],
)
def test_numbers_beyond_the_limits_are_400_naming_the_field(
    client: TestClient, clickhouse: ClickHouse, field: str, value: Any, message: str
) -> None:
    body = {"observations": [observation("ok"), observation("big", **{field: value})]}
    assert rejected(client, body) == f"observations[1].{field}: {message}"
    assert int(clickhouse.query_rows("t", sql="SELECT count() FROM observations")[0][0]) == 0


def test_maximal_numbers_sum_without_overflow_in_summaries_and_usage(
    client: TestClient, clickhouse: ClickHouse, clock: ManualClock
) -> None:
    biggest = {"input_tokens": 10**9, "output_tokens": 10**9, "cost": 1e9}
    body = {
        "traces": [trace("t1")],
        "observations": [observation(f"o{i}", **biggest) for i in range(3)],
    }
    assert client.post("/v1/ingest", json=body).status_code == 202
    summary = client.get("/v1/traces/t1").json()["summary"]
    assert summary["input_tokens"] == 3 * 10**9
    assert summary["total_tokens"] == 6 * 10**9
    assert summary["cost"] == 3e9
    run_rollup_pass(clickhouse, clock)
    usage = client.get(
        "/v1/usage", params={"from": "2026-11-22T00:00:00Z", "to": "2026-11-23T00:00:00Z"}
    )
    assert usage.status_code == 200, usage.text
    assert usage.json()["data"][0]["cost"] == 3e9
    assert usage.json()["data"][0]["total_tokens"] == 6 * 10**9


def insert_raw_observations(ch: ClickHouse, starts_ms: list[int], tokens: int) -> None:
    """Rows written past the ingest limits, as an older release could have stored them."""
    n = len(starts_ms)
    # A recent version: the activity table keeps 30 days, and rollup passes read it.
    stamp = (datetime.now(UTC) - EPOCH) // timedelta(microseconds=1)
    ch.insert(
        "observations",
        OBSERVATION_COLUMNS,
        [
            ["default"] * n,
            ["t1"] * n,
            [f"o{i}" for i in range(n)],
            [""] * n,
            ["generation"] * n,
            ["llm"] * n,
            starts_ms,
            [None] * n,
            [None] * n,
            ["m"] * n,
            ["p"] * n,
            [tokens] * n,
            [0] * n,
            [0.0] * n,
            ["ok"] * n,
            [{}] * n,
            [stamp] * n,
            [0] * n,
        ],
        by_column=True,
    )


def test_usage_token_sums_do_not_wrap_at_two_to_the_64(
    make_app: Any, clickhouse: ClickHouse, clock: ManualClock
) -> None:
    hour = int(datetime(2026, 11, 22, 10, tzinfo=UTC).timestamp() * 1000)
    insert_raw_observations(clickhouse, [hour, hour + 3_600_000], tokens=2**63)
    run_rollup_pass(clickhouse, clock)  # each 2^63 is past Int64 already; the ledger is Int128
    # A part of a day: its bucket adds the two hours up.
    day = {"from": "2026-11-22T10:00:00Z", "to": "2026-11-22T12:00:00Z", "granularity": "day"}
    for read_from_raw in (False, True):
        with TestClient(make_app(rollup_read_from_raw=read_from_raw)) as client:
            response = client.get("/v1/usage", params=day)
        assert response.status_code == 200, response.text
        assert response.json()["data"][0]["input_tokens"] == 2**64, read_from_raw


def test_ledger_sums_are_wide_enough_for_any_volume_within_the_limits(
    clickhouse: ClickHouse,
) -> None:
    """Per observation: tokens <= 1e9, duration <= ~4.1e12 ms (the window), cost_pico <= 1e21.

    An Int64 bucket row of durations would wrap after ~2.2 million observations lasting the
    whole window; in Int128 every sum needs more than 1e25 observations. Counts stay Int64.
    """
    types = dict(
        clickhouse.query_rows(
            "t",
            sql="SELECT name, type FROM system.columns "
            "WHERE database = currentDatabase() AND table = 'rollup_ledger'",
        )
    )
    assert {name: types[name] for name in ("input_tokens", "output_tokens", "sum_ms")} == {
        "input_tokens": "Int128",
        "output_tokens": "Int128",
        "sum_ms": "Int128",
    }
    assert types["cost_pico"] == "Int128"
    assert (LATEST_MS - EARLIEST_MS) * 2**64 < 2**127  # 2^64 whole-window durations fit


def test_metadata_numbers_are_stored_as_their_text(
    client: TestClient, clickhouse: ClickHouse
) -> None:
    metadata = {
        "big": 2**64 - 1,
        "neg": -(2**63),
        "nested": [2**64 - 1, 1.5],
        "flag": True,
        "n": None,
    }
    response = client.post("/v1/ingest", json={"traces": [trace("t1", metadata=metadata)]})
    assert response.status_code == 202, response.text
    stored = clickhouse.query_rows("t", sql="SELECT metadata FROM traces")[0][0]
    assert stored == {
        "big": "18446744073709551615",
        "neg": "-9223372036854775808",
        "nested": "[18446744073709551615,1.5]",
        "flag": "true",
        "n": "null",
    }


@pytest.mark.parametrize("value", [2**64, -(2**63) - 1, -(2**70), [1, {"deep": 2**64}]])
def test_metadata_integers_beyond_64_bits_are_400_naming_the_key(
    client: TestClient, value: Any
) -> None:
    body = {"observations": [observation(metadata={"ok": 1, "x": value})]}
    assert rejected(client, body) == (
        "observations[0].metadata.x: integer beyond 64 bits (send it as a string)"
    )


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400", "[1, NaN]"])
def test_non_finite_metadata_numbers_are_400_naming_the_key(
    client: TestClient, literal: str
) -> None:
    body = (
        '{"observations": [{"id": "o1", "trace_id": "t1", "type": "span", '
        '"start_time": "2026-11-22T10:00:00Z", "metadata": {"ok": 1, "x": ' + literal + "}}]}"
    )
    message = rejected(client, None, content=body.encode())
    assert message.startswith("observations[0].metadata.x: must ")


# -- times ------------------------------------------------------------------------------------


def edge_trace(trace_id: str, at: str, end: str) -> dict[str, Any]:
    return {
        "traces": [trace(trace_id, timestamp=at)],
        "observations": [
            observation(
                f"{trace_id}-o", trace_id, start_time=at, end_time=end, completion_start_time=at
            )
        ],
    }


def test_times_at_the_window_edges_work_everywhere(
    client: TestClient, clickhouse: ClickHouse, clock: ManualClock
) -> None:
    total = {"name": "total", "start": {"anchor": "trace_start"}, "end": {"anchor": "trace_end"}}
    assert client.post("/v1/duration-definitions", json=total).status_code == 201
    early = edge_trace("early", EARLIEST, "1970-01-01T00:00:01.000Z")
    late = edge_trace("late", "2099-12-31T23:59:59.000Z", LATEST)
    for body in (early, late):
        response = client.post("/v1/ingest", json=body)
        assert response.status_code == 202, response.text

    run_rollup_pass(clickhouse, clock)
    materialize_traces(clickhouse, [("default", "early", 1), ("default", "late", 1)], clock)

    assert client.get("/v1/traces/early").json()["timestamp"] == EARLIEST
    assert client.get("/v1/traces/late").json()["summary"]["end_time"] == LATEST
    durations = client.get("/v1/traces/early/durations").json()["data"]
    assert durations[0]["duration_ms"] == 1000.0
    for lo, hi, granularity in (
        (EARLIEST, "1970-01-02T00:00:00Z", "hour"),
        ("2099-12-31T00:00:00Z", LATEST, "day"),
    ):
        params = {"from": lo, "to": hi, "granularity": granularity}
        usage = client.get("/v1/usage", params=params)
        assert usage.status_code == 200, usage.text
        assert [row["observations"] for row in usage.json()["data"]] == [1]
        latency = client.get("/v1/latency", params=params)
        assert latency.status_code == 200, latency.text
        stats = client.get("/v1/duration-definitions/total/stats", params=params)
        assert stats.status_code == 200, stats.text


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("1969-12-31T23:59:59.999Z", "1969-12-31T23:59:59.999Z"),
        ("2100-01-01T00:00:00Z", "2100-01-01T00:00:00.000Z"),
        ("1970-01-01T00:59:59+01:00", "1969-12-31T23:59:59.000Z"),
    ],
)
@pytest.mark.parametrize("field", ["start_time", "end_time", "completion_start_time"])
def test_observation_times_outside_the_window_are_400(
    client: TestClient, clickhouse: ClickHouse, value: str, shown: str, field: str
) -> None:
    body = {"observations": [observation("ok"), observation("bad", **{field: value})]}
    assert rejected(client, body) == f"observations[1].{field}: {outside(shown)}"
    assert int(clickhouse.query_rows("t", sql="SELECT count() FROM observations")[0][0]) == 0


def test_trace_timestamp_outside_the_window_is_400(client: TestClient) -> None:
    body = {"traces": [trace("t1", timestamp="0001-01-01T00:00:00Z")]}
    assert rejected(client, body) == f"traces[0].timestamp: {outside('0001-01-01T00:00:00.000Z')}"


@pytest.mark.parametrize(
    ("path", "name", "value", "shown"),
    [
        ("/v1/conclusions", "since", "0001-01-01T00:00:00Z", "0001-01-01T00:00:00.000Z"),
        ("/v1/conclusions", "since", "2100-01-01T00:00:00Z", "2100-01-01T00:00:00.000Z"),
        ("/v1/usage", "from", "0001-01-01T00:00:00Z", "0001-01-01T00:00:00.000Z"),
        ("/v1/usage", "to", "2106-01-01T00:00:00Z", "2106-01-01T00:00:00.000Z"),
        ("/v1/latency", "from", "0999-12-31T00:00:00Z", "0999-12-31T00:00:00.000Z"),
        ("/v1/latency", "to", "9999-12-31T23:59:59-01:00", "'9999-12-31T23:59:59-01:00'"),
        (
            "/v1/duration-definitions/total/stats",
            "from",
            "1969-12-31T23:00:00Z",
            "1969-12-31T23:00:00.000Z",
        ),
    ],
)
def test_time_parameters_outside_the_window_are_400_naming_the_parameter(
    client: TestClient, path: str, name: str, value: str, shown: str
) -> None:
    total = {"name": "total", "start": {"anchor": "trace_start"}, "end": {"anchor": "trace_end"}}
    client.post("/v1/duration-definitions", json=total)
    response = client.get(path, params={name: value})
    assert response.status_code == 400, response.text
    assert response.json()["error"] == {
        "code": "invalid_parameter",
        "message": f"{name}: {outside(shown)}",
    }
