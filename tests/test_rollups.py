"""Usage and latency rollups: read APIs, validation, freshness, fallback, and the pass itself."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.testclient import TestClient

from service.api import app_context
from service.clickhouse import ClickHouse, load_query
from service.clock import ManualClock
from service.errors import InvalidParameter
from service.ranges import time_range
from service.rollups import LedgerWriter, pending_buckets, read_watermark, run_rollup_pass
from service.rollups.buckets import whole_days
from service.rollups.passes import next_watermark
from service.rollups.read import latency_row, latency_views, usage_views
from service.rollups.request import parse_group_by, range_query
from service.rollups.sketch import (
    RELATIVE_ACCURACY,
    ZERO_BUCKET,
    bucket_index,
    bucket_value,
    position_index,
    quantiles,
)
from service.times import ceil_hour, floor_hour
from tests.conftest import observation, trace

RANGE = {"from": "2026-11-22T00:00:00Z", "to": "2026-11-23T00:00:00Z"}


def ingest(client: TestClient, **body: Any) -> None:
    response = client.post("/v1/ingest", json=body)
    assert response.status_code == 202, response.text


def usage(client: TestClient, **params: str) -> dict[str, Any]:
    response = client.get("/v1/usage", params={**RANGE, **params})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def latency(client: TestClient, **params: str) -> dict[str, Any]:
    response = client.get("/v1/latency", params={**RANGE, **params})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def rollup(clickhouse: ClickHouse, clock: ManualClock) -> None:
    run_rollup_pass(clickhouse, clock)


def ledger_rows(clickhouse: ClickHouse) -> int:
    """Rows stored in the ledger, every part counted (a pass that changes nothing adds none)."""
    return int(clickhouse.query_rows("test:rows", sql="SELECT count() FROM rollup_ledger")[0][0])


# Pure pieces -------------------------------------------------------------------------------


def test_hour_rounding_selects_buckets_overlapping_the_range() -> None:
    t = datetime(2026, 11, 22, 10, 30, tzinfo=UTC)
    assert floor_hour(t) == datetime(2026, 11, 22, 10, tzinfo=UTC)
    assert ceil_hour(t) == datetime(2026, 11, 22, 11, tzinfo=UTC)
    assert ceil_hour(floor_hour(t)) == floor_hour(t)


def test_zero_milliseconds_has_its_own_bucket_worth_zero() -> None:
    assert bucket_index(0) == ZERO_BUCKET
    assert bucket_value(ZERO_BUCKET) == 0.0
    assert bucket_index(1) == 0
    assert bucket_value(0) == pytest.approx(1.0, rel=RELATIVE_ACCURACY)


def test_dense_positions_map_back_to_buckets() -> None:
    assert position_index(1) == ZERO_BUCKET
    assert position_index(2) == 0
    assert position_index(300) == 298
    with pytest.raises(ValueError, match="start at 1"):
        position_index(0)


def test_watermark_stops_short_of_the_pass_start_and_never_moves_back() -> None:
    start = datetime(2026, 11, 22, 10, tzinfo=UTC)
    lag = timedelta(seconds=10)
    assert next_watermark(None, start, lag) == start - lag
    later = start + timedelta(minutes=5)
    assert next_watermark(later, start, lag) == later


def test_group_by_is_canonical_and_rejects_unknown_and_repeated_keys() -> None:
    assert parse_group_by(["provider", "model"], ("model", "provider")) == ("model", "provider")
    with pytest.raises(InvalidParameter, match="group_by"):
        parse_group_by(["model", "colour"], ("model",))
    with pytest.raises(InvalidParameter, match="group_by"):
        parse_group_by(["model", "model"], ("model",))


def test_range_defaults_to_the_last_day_and_rounds_to_hours() -> None:
    now = datetime(2026, 11, 22, 10, 30, tzinfo=UTC)
    query = range_query(
        project_id="p",
        bounds=time_range(None, None, "hour", now=now, max_range_days=7),
        group_by=[],
        group_keys=("model",),
        source="rollup",
    )
    assert query.lo == datetime(2026, 11, 21, 10, tzinfo=UTC)
    assert query.hi == datetime(2026, 11, 22, 11, tzinfo=UTC)
    assert query.granularity == "hour"
    assert query.source == "rollup"


@given(
    st.lists(
        st.integers(min_value=0, max_value=10_000_000) | st.floats(min_value=1, max_value=1e7),
        min_size=1,
        max_size=300,
    ),
    st.sampled_from([0.0, 0.5, 0.9, 0.95, 0.99, 1.0]),
)
def test_histogram_quantile_is_within_one_percent_of_the_rank(
    durations: list[float], level: float
) -> None:
    histogram: dict[int, int] = {}
    for ms in durations:
        index = bucket_index(ms)
        histogram[index] = histogram.get(index, 0) + 1
    (value,) = quantiles(histogram, [level])
    assert value is not None
    truth = sorted(durations)[int(level * (len(durations) - 1))]
    assert abs(value - truth) <= RELATIVE_ACCURACY * truth + 1e-9


def test_sql_buckets_match_python(clickhouse: ClickHouse) -> None:
    """The contribution rules' log buckets are `bucket_index`, durations whole milliseconds."""
    durations = [0, 1, 2, 999, 1000, 1001, 20_000, 86_400_000]
    sql = (
        "WITH live AS (SELECT 'p' AS project_id, toString(ms) AS trace_id,"
        " toDateTime64('2026-11-22 10:00:00', 3, 'UTC') AS start_time,"
        " CAST(start_time + toIntervalMillisecond(ms) AS Nullable(DateTime64(3, 'UTC')))"
        " AS end_time, '' AS model, '' AS provider, 'span' AS type, '' AS name,"
        " toUInt64(0) AS input_tokens, toUInt64(0) AS output_tokens, 0.0 AS cost,"
        " 'ok' AS status FROM (SELECT arrayJoin({ms:Array(UInt64)}) AS ms)),"
        " meta AS (SELECT '' AS project_id, '' AS trace_id, '' AS name, '' AS environment"
        " WHERE 0)"
        f" SELECT sum_ms, slots FROM ({load_query('rollups/observation_contributions')})"
        " ORDER BY sum_ms"
    )
    rows = clickhouse.query_rows("test:buckets", {"ms": durations}, sql=sql)
    assert [(int(ms), list(slots)) for ms, slots in rows] == [
        (ms, [bucket_index(ms)]) for ms in durations
    ]


def test_empty_histogram_has_no_quantiles() -> None:
    assert quantiles({}, [0.5, 0.99]) == [None, None]


def test_whole_days_split_a_range_into_daily_and_hourly_parts() -> None:
    lo = datetime(2026, 11, 20, 10, tzinfo=UTC)
    hi = datetime(2026, 11, 23, 5, tzinfo=UTC)
    assert whole_days(lo, hi) == (
        datetime(2026, 11, 21, tzinfo=UTC),
        datetime(2026, 11, 23, tzinfo=UTC),
    )
    assert whole_days(lo, lo + timedelta(hours=3)) == (lo, lo)


def test_day_reads_mix_whole_days_and_edge_hours(
    client: TestClient, clickhouse: ClickHouse, clock: ManualClock
) -> None:
    starts = ["2026-11-21T22:00:00Z", "2026-11-22T03:00:00Z", "2026-11-22T23:30:00Z"]
    ingest(
        client,
        traces=[trace("t1")],
        observations=[
            observation(f"o{i}", start_time=s, end_time=s.replace(":00Z", ":02Z"))
            for i, s in enumerate(starts)
        ],
    )
    rollup(clickhouse, clock)
    # 21st 22:00 .. 23rd 00:00: the 21st is a partial day (hourly rows), the 22nd whole (daily).
    params = {"from": "2026-11-21T22:00:00Z", "to": "2026-11-23T00:00:00Z", "granularity": "day"}
    for path in ("/v1/usage", "/v1/latency"):
        ours = client.get(path, params=params).json()["data"]
        raw = client.get(path, params={**params, "source": "raw"}).json()["data"]
        assert ours == raw
    rows = usage(client, **params)["data"]
    assert [(r["bucket"], r["observations"]) for r in rows] == [
        ("2026-11-21T00:00:00.000Z", 1),
        ("2026-11-22T00:00:00.000Z", 2),
    ]


def test_latency_row_reports_nulls_when_only_orphans() -> None:
    row = {
        "bucket": datetime(2026, 11, 22, 10, tzinfo=UTC),
        "g_name": "llm",
        "s_count": 0,
        "s_sum_ms": 0,
        "s_orphans": 2,
        "s_skewed": 1,
        "s_positions": [0, 0, 0, 0, 0],
    }
    out = latency_row(row, ("name",))
    assert out["name"] == "llm"
    assert out["count"] == 0
    assert out["avg_ms"] is None
    assert out["p50_ms"] is None
    assert out["max_ms"] is None
    assert (out["orphans"], out["skewed"]) == (2, 1)


# Validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "params", "named"),
    [
        ("/v1/usage", {"colour": "red"}, "colour"),
        ("/v1/usage", {"from": "yesterday"}, "from"),
        ("/v1/usage", {"to": "2026-13-01"}, "to"),
        ("/v1/usage", {"from": "2026-11-23T00:00:00Z", "to": "2026-11-22T00:00:00Z"}, "from"),
        ("/v1/usage", {"from": "2024-01-01T00:00:00Z", "to": "2026-11-22T00:00:00Z"}, "to"),
        ("/v1/usage", {"granularity": "week"}, "granularity"),
        ("/v1/usage", {"group_by": "model,colour"}, "group_by"),
        ("/v1/usage", {"source": "cache"}, "source"),
        ("/v1/latency", {"level": "span"}, "level"),
        ("/v1/latency", {"group_by": "environment"}, "group_by"),
        ("/v1/latency", {"level": "trace", "group_by": "model"}, "group_by"),
        # Found by schemathesis: times the hour buckets cannot hold were a 500.
        ("/v1/usage", {"to": "1000-01-01T00:00:00Z"}, "to"),
        ("/v1/latency", {"from": "1969-12-31T00:00:00Z"}, "from"),
        ("/v1/usage", {"to": "1970-01-01T05:00:00Z"}, "from"),  # from defaults to a day earlier
        ("/v1/usage", {"to": "9999-01-01T00:00:00Z"}, "to"),
    ],
)
def test_bad_parameter_is_400_naming_it(
    client: TestClient, path: str, params: dict[str, str], named: str
) -> None:
    response = client.get(path, params=params)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_parameter"
    assert error["message"].startswith(f"{named}:")


# Read APIs over the rollup -----------------------------------------------------------------


def test_usage_groups_by_model_and_environment_per_hour(
    client: TestClient, clickhouse: ClickHouse, clock: ManualClock
) -> None:
    ingest(
        client,
        traces=[trace("t1", environment="prod"), trace("t2", environment="dev")],
        observations=[
            observation("o1", "t1"),
            observation("o2", "t1", model="claude", provider="anthropic", status="error"),
            observation("o3", "t2", start_time="2026-11-22T11:10:00Z", end_time=None),
        ],
    )
    rollup(clickhouse, clock)
    body = usage(client, group_by="model,environment")
    assert body["data"] == [
        {
            "bucket": "2026-11-22T10:00:00.000Z",
            "model": "claude",
            "environment": "prod",
            "observations": 1,
            "input_tokens": 100,
            "output_tokens": 20,
            "total_tokens": 120,
            "cost": pytest.approx(0.01),
            "errors": 1,
        },
        {
            "bucket": "2026-11-22T10:00:00.000Z",
            "model": "gpt-4o",
            "environment": "prod",
            "observations": 1,
            "input_tokens": 100,
            "output_tokens": 20,
            "total_tokens": 120,
            "cost": pytest.approx(0.01),
            "errors": 0,
        },
        {
            "bucket": "2026-11-22T11:00:00.000Z",
            "model": "gpt-4o",
            "environment": "dev",
            "observations": 1,
            "input_tokens": 100,
            "output_tokens": 20,
            "total_tokens": 120,
            "cost": pytest.approx(0.01),
            "errors": 0,
        },
    ]


def test_empty_group_by_gives_totals_and_day_granularity_merges_hours(
    client: TestClient, clickhouse: ClickHouse, clock: ManualClock
) -> None:
    ingest(
        client,
        traces=[trace("t1")],
        observations=[
            observation("o1", start_time="2026-11-22T01:00:00Z", end_time="2026-11-22T01:00:01Z"),
            observation("o2", start_time="2026-11-22T09:00:00Z", end_time="2026-11-22T09:00:03Z"),
            observation("o3", start_time="2026-11-23T09:00:00Z", end_time="2026-11-23T09:00:02Z"),
        ],
    )
    rollup(clickhouse, clock)
    hourly = usage(client)["data"]
    assert [(r["bucket"], r["observations"]) for r in hourly] == [
        ("2026-11-22T01:00:00.000Z", 1),
        ("2026-11-22T09:00:00.000Z", 1),
    ]
    assert "model" not in hourly[0]
    wide = {"from": "2026-11-22T00:00:00Z", "to": "2026-11-24T00:00:00Z", "granularity": "day"}
    daily = usage(client, **wide)["data"]
    assert [(r["bucket"], r["observations"], r["input_tokens"]) for r in daily] == [
        ("2026-11-22T00:00:00.000Z", 2, 200),
        ("2026-11-23T00:00:00.000Z", 1, 100),
    ]
    day_latency = latency(client, **wide)["data"]
    assert [(r["bucket"], r["count"]) for r in day_latency] == [
        ("2026-11-22T00:00:00.000Z", 2),
        ("2026-11-23T00:00:00.000Z", 1),
    ]
    # max_ms is the top histogram bucket's value: within the sketch's 1%, like percentiles.
    assert [r["max_ms"] for r in day_latency] == [
        pytest.approx(3000.0, rel=RELATIVE_ACCURACY),
        pytest.approx(2000.0, rel=RELATIVE_ACCURACY),
    ]
    assert day_latency[0]["avg_ms"] == pytest.approx(2000.0)


def test_orphans_and_skew_are_excluded_from_stats_but_counted(
    client: TestClient, clickhouse: ClickHouse, clock: ManualClock
) -> None:
    ingest(
        client,
        traces=[trace("t1"), trace("t2", name="skewed-trace")],
        observations=[
            observation("o1", end_time="2026-11-22T10:00:01Z"),
            observation("o2", end_time="2026-11-22T10:00:03Z"),
            observation("o3", end_time=None),
            observation("o4", end_time="2026-11-22T09:59:00Z"),
            observation(
                "o5", "t2", start_time="2026-11-22T10:00:05Z", end_time="2026-11-22T10:00:04Z"
            ),
        ],
    )
    rollup(clickhouse, clock)
    (row,) = latency(client)["data"]
    assert row["count"] == 2
    assert (row["orphans"], row["skewed"]) == (1, 2)
    assert row["avg_ms"] == 2000.0  # (1000 + 3000) / 2 exactly: no zeros averaged in
    assert row["max_ms"] == bucket_value(bucket_index(3000))
    traces = latency(client, level="trace", group_by="name")["data"]
    by_name = {r["name"]: r for r in traces}
    assert by_name["chat"]["count"] == 1
    # last end 10:00:03 - first start 10:00:00
    assert by_name["chat"]["max_ms"] == bucket_value(bucket_index(3000))
    assert by_name["skewed-trace"]["count"] == 0
    assert by_name["skewed-trace"]["skewed"] == 1
    assert by_name["skewed-trace"]["p50_ms"] is None


def test_percentiles_are_within_the_sketch_error(
    client: TestClient, clickhouse: ClickHouse, clock: ManualClock
) -> None:
    base = datetime(2026, 11, 22, 10, tzinfo=UTC)
    durations = [float(50 + 37 * i) for i in range(200)]
    observations = [
        observation(
            f"o{i}",
            start_time=(base + timedelta(seconds=i)).isoformat(),
            end_time=(base + timedelta(seconds=i, milliseconds=ms)).isoformat(),
        )
        for i, ms in enumerate(durations)
    ]
    ingest(client, traces=[trace("t1")], observations=observations)
    rollup(clickhouse, clock)
    (row,) = latency(client)["data"]
    ordered = sorted(durations)
    for label, q in (("p50_ms", 0.5), ("p90_ms", 0.9), ("p95_ms", 0.95), ("p99_ms", 0.99)):
        rank = q * (len(ordered) - 1)
        low, high = ordered[int(rank)], ordered[min(int(rank) + 1, len(ordered) - 1)]
        assert low * 0.99 <= row[label] <= high * 1.01, label


def test_response_carries_the_watermark(
    client: TestClient, clickhouse: ClickHouse, clock: ManualClock
) -> None:
    before = usage(client)["freshness"]
    assert before == {"watermark": None, "lag_seconds": None, "source": "rollup"}
    rollup(clickhouse, clock)
    clock.advance(20)
    fresh = latency(client)["freshness"]
    assert fresh["source"] == "rollup"
    assert fresh["watermark"] == "2026-11-22T09:59:50.000Z"  # pass time minus the safety lag
    assert fresh["lag_seconds"] == 30.0


def test_new_data_appears_only_after_a_pass(
    client: TestClient, clickhouse: ClickHouse, clock: ManualClock
) -> None:
    ingest(client, traces=[trace("t1")], observations=[observation("o1")])
    assert usage(client)["data"] == []
    assert usage(client, source="raw")["data"][0]["observations"] == 1
    rollup(clickhouse, clock)
    assert usage(client)["data"][0]["observations"] == 1


def test_fallback_switch_reads_raw_rows(
    make_app: Callable[..., Starlette], clickhouse: ClickHouse, clock: ManualClock
) -> None:
    with TestClient(make_app(rollup_read_from_raw=True)) as client:
        ingest(client, traces=[trace("t1")], observations=[observation("o1")])
        body = usage(client, group_by="model")
        assert body["freshness"]["source"] == "raw"
        assert body["data"][0]["model"] == "gpt-4o"
        assert body["data"][0]["observations"] == 1
        forced = usage(client, source="rollup")
        assert forced["freshness"]["source"] == "rollup"
        assert forced["data"] == []
        assert latency(client)["data"][0]["count"] == 1


def test_raw_and_rollup_paths_agree_including_percentiles(
    client: TestClient, clickhouse: ClickHouse, clock: ManualClock
) -> None:
    base = datetime(2026, 11, 22, 3, tzinfo=UTC)
    observations = [
        observation(
            f"o{i}",
            f"t{i % 7}",
            name=f"step{i % 3}",
            start_time=(base + timedelta(minutes=17 * i)).isoformat(),
            end_time=(base + timedelta(minutes=17 * i, milliseconds=13 * i + 1)).isoformat(),
        )
        for i in range(60)
    ]
    ingest(client, traces=[trace(f"t{i}") for i in range(7)], observations=observations)
    rollup(clickhouse, clock)
    # Every stored grouping is read: all keys, name only and totals (observations), name (traces).
    cases = [("observation", "name,model"), ("observation", "name"), ("observation", "")]
    for level, group in [*cases, ("trace", "name"), ("trace", "")]:
        for granularity in ("hour", "day"):
            params = {"level": level, "group_by": group, "granularity": granularity}
            assert (
                latency(client, **params)["data"] == latency(client, source="raw", **params)["data"]
            )
    for group in ("model,environment", "model", ""):
        for granularity in ("hour", "day"):
            params = {"group_by": group, "granularity": granularity}
            raw = usage(client, source="raw", **params)["data"]
            # Costs are float sums, added in another order by the rollup.
            expected = [{**row, "cost": pytest.approx(row["cost"])} for row in raw]
            assert usage(client, **params)["data"] == expected


def test_reads_pick_the_coarsest_view_holding_the_keys() -> None:
    assert [usage_views(g) for g in [("model", "name"), ("name",), ("model",), ()]] == [
        ("hour", "day"),
        ("hour", "day"),
        ("hour_model", "day_model"),
        ("hour_total", "day_total"),
    ]
    assert latency_views("observation", ("name", "model")) == ("hour", "day")
    assert latency_views("observation", ("name",)) == ("hour_name", "day_name")
    assert latency_views("observation", ()) == ("hour_total", "day_total")
    assert latency_views("trace", ("name",)) == ("hour_name", "day_name")
    assert latency_views("trace", ()) == ("hour_total", "day_total")


def test_project_keys_read_only_their_project(
    make_app: Callable[..., Starlette], clickhouse: ClickHouse, clock: ManualClock
) -> None:
    app = make_app(api_keys=SecretStr("ka=acme,kg=globex,k0=*"))
    with TestClient(app) as client:
        for key, cost in (("ka", 1.0), ("kg", 5.0)):
            response = client.post(
                "/v1/ingest",
                json={"traces": [trace("t1")], "observations": [observation("o1", cost=cost)]},
                headers={"Authorization": f"Bearer {key}"},
            )
            assert response.status_code == 202
        rollup(clickhouse, clock)
        for source in ("rollup", "raw"):
            acme = client.get(
                "/v1/usage",
                params={**RANGE, "source": source},
                headers={"Authorization": "Bearer ka"},
            ).json()
            assert [r["cost"] for r in acme["data"]] == [1.0]
            other = client.get(
                "/v1/usage",
                params={**RANGE, "project_id": "globex", "source": source},
                headers={"Authorization": "Bearer ka"},
            )
            assert other.status_code == 403
        admin = client.get(
            "/v1/usage",
            params={**RANGE, "project_id": "globex"},
            headers={"Authorization": "Bearer k0"},
        ).json()
        assert [r["cost"] for r in admin["data"]] == [5.0]
        assert client.get("/v1/usage", params=RANGE).status_code == 401


# The pass ----------------------------------------------------------------------------------


def test_upsert_moving_an_observation_and_changing_environment_moves_usage(
    client: TestClient, clickhouse: ClickHouse, clock: ManualClock
) -> None:
    ingest(client, traces=[trace("t1", environment="prod")], observations=[observation("o1")])
    rollup(clickhouse, clock)
    clock.advance(60)
    ingest(
        client,
        traces=[trace("t1", environment="staging")],
        observations=[
            observation("o1", start_time="2026-11-22T07:00:00Z", end_time="2026-11-22T07:00:01Z")
        ],
    )
    clickhouse.command("optimize", sql="OPTIMIZE TABLE observations FINAL")
    rollup(clickhouse, clock)
    rows = usage(client, group_by="environment")["data"]
    assert [(r["bucket"], r["environment"], r["observations"]) for r in rows] == [
        ("2026-11-22T07:00:00.000Z", "staging", 1)
    ]


def test_delete_clears_the_bucket_and_replays_do_not_double_count(
    client: TestClient, clickhouse: ClickHouse, clock: ManualClock
) -> None:
    body = {"traces": [trace("t1")], "observations": [observation("o1"), observation("o2")]}
    for _ in range(3):
        ingest(client, **body)
        rollup(clickhouse, clock)
        clock.advance(5)
    assert usage(client)["data"][0]["observations"] == 2
    assert client.delete("/v1/traces/t1").status_code == 200
    assert pending_buckets(clickhouse) == 1
    rollup(clickhouse, clock)
    assert usage(client)["data"] == []
    assert latency(client, level="trace")["data"] == []
    assert pending_buckets(clickhouse) == 0


def test_late_row_with_an_old_timestamp_is_picked_up(
    client: TestClient, clickhouse: ClickHouse, clock: ManualClock
) -> None:
    ingest(client, traces=[trace("t1")], observations=[observation("o1")])
    rollup(clickhouse, clock)
    clock.advance(3600)
    ingest(
        client,
        traces=[trace("t9")],
        observations=[
            observation("o9", "t9", start_time="2026-11-22T02:00:00Z", end_time=None),
        ],
    )
    rollup(clickhouse, clock)
    buckets = [r["bucket"] for r in usage(client)["data"]]
    assert buckets == ["2026-11-22T02:00:00.000Z", "2026-11-22T10:00:00.000Z"]


def test_a_pass_over_traces_already_up_to_date_writes_nothing(
    client: TestClient, clickhouse: ClickHouse, clock: ManualClock
) -> None:
    ingest(client, traces=[trace("t1")], observations=[observation("o1"), observation("o2")])
    rollup(clickhouse, clock)
    before = ledger_rows(clickhouse)
    # Same clock: the pass re-reads the same traces (inside the safety lag) and finds no change.
    again = run_rollup_pass(clickhouse, clock)
    assert again.dirty_traces == 1
    assert ledger_rows(clickhouse) == before
    assert usage(client)["data"][0]["observations"] == 2


def test_failed_pass_leaves_buckets_dirty_and_the_watermark_unmoved(
    client: TestClient, clickhouse: ClickHouse, clock: ManualClock
) -> None:
    ingest(client, traces=[trace("t1")], observations=[observation("o1")])
    rollup(clickhouse, clock)
    watermark = read_watermark(clickhouse)
    clock.advance(60)
    ingest(client, observations=[observation("o2")])
    clickhouse.command("break", sql="RENAME TABLE rollup_ledger TO rollup_ledger_away")
    with pytest.raises(Exception, match="rollup_ledger"):
        rollup(clickhouse, clock)
    clickhouse.command("mend", sql="RENAME TABLE rollup_ledger_away TO rollup_ledger")
    assert read_watermark(clickhouse) == watermark
    assert pending_buckets(clickhouse) == 1
    rollup(clickhouse, clock)
    assert usage(client)["data"][0]["observations"] == 2


def test_scheduled_job_runs_a_pass_and_records_metrics(
    app: Starlette, client: TestClient, clickhouse: ClickHouse, clock: ManualClock
) -> None:
    from service.scheduler import default_jobs

    ingest(client, traces=[trace("t1")], observations=[observation("o1")])
    ctx = app_context(app)
    (job,) = [j for j in default_jobs(ctx) if j.id == "rollups.recompute"]
    assert job.every_seconds == ctx.settings.rollup_interval_seconds
    clock.advance(30)
    job.run()
    registry = ctx.metrics.registry
    assert registry.get_sample_value("ta_rollup_pass_duration_seconds_count") == 1.0
    assert registry.get_sample_value("ta_rollup_dirty_buckets") == 0.0
    assert registry.get_sample_value("ta_rollup_lag_seconds") == 10.0
    assert usage(client)["data"][0]["observations"] == 1
    metrics = client.get("/metrics").text
    assert "ta_rollup_lag_seconds" in metrics


def test_only_shard_zero_writes_the_ledger(
    make_app: Callable[..., Starlette], clickhouse: ClickHouse, clock: ManualClock
) -> None:
    from service.scheduler import default_jobs

    app = make_app(shard_index=1, shard_count=2)
    with TestClient(app) as client:
        ingest(client, traces=[trace("t1")], observations=[observation("o1")])
        (job,) = [j for j in default_jobs(app_context(app)) if j.id == "rollups.recompute"]
        job.run()
        assert read_watermark(clickhouse) is None
        assert ledger_rows(clickhouse) == 0


def test_a_pass_waits_while_another_writer_holds_the_ledger(
    client: TestClient, clickhouse: ClickHouse, clock: ManualClock
) -> None:
    ingest(client, traces=[trace("t1")], observations=[observation("o1")])
    writer = LedgerWriter()
    finished = threading.Event()

    def run() -> None:
        run_rollup_pass(clickhouse, clock, writer=writer)
        finished.set()

    with writer.hold():
        thread = threading.Thread(target=run)
        thread.start()
        # Held by "a backfill chunk": the pass may not even read its watermark yet.
        assert not finished.wait(0.3)
        assert read_watermark(clickhouse) is None
    thread.join()
    assert finished.is_set()
    assert usage(client)["data"][0]["observations"] == 1


def test_rollup_command_runs_one_pass_and_says_what_it_did(
    clickhouse_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from service.cli import main

    monkeypatch.setenv("TA_CLICKHOUSE_URL", clickhouse_url)
    assert main(["migrate"]) == 0
    assert main(["demo", "--traces", "20"]) == 0
    capsys.readouterr()
    assert main(["rollup"]) == 0
    out = capsys.readouterr().out
    assert "rollup pass: 20 dirty trace(s) since the beginning" in out
    # The demo wrote moments ago, inside the safety lag: the next pass reads it again.
    assert "buckets still pending: " in out
    assert main(["rollup"]) == 0
    again = capsys.readouterr().out
    assert "since the beginning" not in again
    assert "since 20" in again
