"""Property: after any interleaving of writes and passes, the rollup equals the raw truth.

Hypothesis drives inserts, replays, upserts that move observations between hours or change
a trace's environment and name, deletes, late rows with old timestamps, forced merges (so
replaced versions are physically gone and the ledger's rows are summed), backfills of an
hour between the passes, and repeated passes. After every pass `/v1/usage` must equal a
recomputation from a Python model of the live rows (and the raw read path); at the end
latency counts, sums and orphan/skew counts must match exactly, and percentiles and
`max_ms` must be within the sketch's documented 1% relative error.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from service.clickhouse import ClickHouse
from service.clock import ManualClock
from service.rollups import rebuild_range, run_rollup_pass
from service.times import format_time

BASE = datetime(2026, 11, 22, 10, tzinfo=UTC)
RANGE = {"from": "2026-11-22T00:00:00Z", "to": "2026-11-23T00:00:00Z"}
ALL_KEYS = "model,provider,type,name,environment"
TRACE_IDS = ("t0", "t1", "t2")
OBS_IDS = ("o0", "o1", "o2")
DD_ERROR = 0.01


@dataclass
class Truth:
    """The live rows as the service should see them."""

    environments: dict[str, str] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    observations: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)


def iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


observation_fields = st.builds(
    lambda obs_id, hour, second, duration, model, name, tokens, cost, error: {
        "id": obs_id,
        "type": "generation" if model != "tool" else "tool",
        "name": name,
        "start_time": iso(BASE + timedelta(hours=hour, seconds=second)),
        "end_time": None
        if duration is None
        else iso(BASE + timedelta(hours=hour, seconds=second, milliseconds=duration)),
        "model": model,
        "provider": "anthropic" if model == "claude" else "openai",
        "input_tokens": tokens,
        "output_tokens": tokens // 3,
        "cost": cost,
        "status": "error" if error else "ok",
    },
    obs_id=st.sampled_from(OBS_IDS),
    hour=st.integers(min_value=-6, max_value=1),  # negative: late rows for old hours
    second=st.integers(min_value=0, max_value=3599),
    duration=st.none() | st.integers(min_value=-500, max_value=90_000),
    model=st.sampled_from(["gpt-4o", "claude", "tool"]),
    name=st.sampled_from(["llm", "search"]),
    tokens=st.integers(min_value=0, max_value=5000),
    cost=st.floats(min_value=0, max_value=2, allow_nan=False).map(lambda c: round(c, 4)),
    error=st.booleans(),
)

# One batch per trace (as SDKs send them); the trace record is sometimes left out so that
# observations can arrive before, after or without their trace.
ingests = st.tuples(
    st.just("ingest"),
    st.sampled_from(TRACE_IDS),
    st.booleans(),
    st.sampled_from(["prod", "dev"]),
    st.lists(observation_fields, min_size=1, max_size=3),
)

operations = st.lists(
    st.one_of(
        ingests,
        ingests,
        st.tuples(st.just("pass")),
        st.tuples(st.just("pass")),
        st.tuples(st.just("replay")),
        st.tuples(st.just("delete"), st.sampled_from(TRACE_IDS)),
        st.tuples(st.just("merge")),
        st.tuples(st.just("backfill"), st.integers(min_value=-6, max_value=1)),
        st.tuples(st.just("advance"), st.integers(min_value=1, max_value=120)),
    ),
    min_size=1,
    max_size=16,
)


def apply_ingest(truth: Truth, body: dict[str, Any]) -> None:
    for record in body["traces"]:
        truth.environments[record["id"]] = record["environment"]
        truth.names[record["id"]] = record["name"]
    for record in body["observations"]:
        truth.observations[(record["trace_id"], record["id"])] = record


def expected_usage(truth: Truth) -> list[dict[str, Any]]:
    groups: dict[tuple[str, ...], dict[str, Any]] = {}
    for (trace_id, _), o in truth.observations.items():
        start = datetime.fromisoformat(o["start_time"].replace("Z", "+00:00"))
        hour = format_time(start.replace(minute=0, second=0, microsecond=0))
        environment = truth.environments.get(trace_id, "")
        key = (hour, o["model"], o["provider"], o["type"], o["name"], environment)
        row = groups.setdefault(
            key,
            {
                "bucket": hour,
                "model": o["model"],
                "provider": o["provider"],
                "type": o["type"],
                "name": o["name"],
                "environment": environment,
                "observations": 0,
                "input_tokens": 0,
                "output_tokens": 0,
                "total_tokens": 0,
                "cost": 0.0,
                "errors": 0,
            },
        )
        row["observations"] += 1
        row["input_tokens"] += o["input_tokens"]
        row["output_tokens"] += o["output_tokens"]
        row["total_tokens"] += o["input_tokens"] + o["output_tokens"]
        row["cost"] += o["cost"]
        row["errors"] += o["status"] == "error"
    return [groups[k] for k in sorted(groups)]


def assert_usage_matches(actual: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    assert [{**r, "cost": 0} for r in actual] == [{**r, "cost": 0} for r in expected]
    for got, want in zip(actual, expected, strict=True):
        assert got["cost"] == pytest.approx(want["cost"], rel=1e-9, abs=1e-9)


def millis(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000


def expected_latency(truth: Truth, level: str) -> dict[tuple[str, str], dict[str, Any]]:
    """(bucket, name) -> durations, orphans, skewed; trace level uses last end - first start."""
    out: dict[tuple[str, str], dict[str, Any]] = defaultdict(
        lambda: {"durations": [], "orphans": 0, "skewed": 0}
    )
    spans: list[tuple[str, str, float | None, float | None]] = []
    if level == "observation":
        for o in truth.observations.values():
            end = None if o["end_time"] is None else millis(o["end_time"])
            spans.append((o["start_time"], o["name"], millis(o["start_time"]), end))
    else:
        per_trace: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for (trace_id, _), o in truth.observations.items():
            per_trace[trace_id].append(o)
        for trace_id, rows in per_trace.items():
            first = min(rows, key=lambda r: millis(r["start_time"]))
            ends = [millis(r["end_time"]) for r in rows if r["end_time"] is not None]
            last_end = max(ends) if ends else None
            name = truth.names.get(trace_id, "")
            spans.append((first["start_time"], name, millis(first["start_time"]), last_end))
    for start_text, name, start, end in spans:
        start_dt = datetime.fromisoformat(start_text.replace("Z", "+00:00"))
        bucket = format_time(start_dt.replace(minute=0, second=0, microsecond=0))
        cell = out[(bucket, name)]
        if end is None:
            cell["orphans"] += 1
        elif end < start:
            cell["skewed"] += 1
        else:
            cell["durations"].append(end - start)
    return dict(out)


def within_sketch_error(value: float, ordered: list[float], q: float) -> bool:
    """Within 1% (relative) of an order statistic adjacent to rank q(n-1)."""
    rank = q * (len(ordered) - 1)
    low = ordered[int(rank)]
    high = ordered[min(int(rank) + 1, len(ordered) - 1)]
    return low * (1 - DD_ERROR) - 1e-9 <= value <= high * (1 + DD_ERROR) + 1e-9


def assert_latency_matches(client: TestClient, truth: Truth) -> None:
    for level in ("observation", "trace"):
        params = {**RANGE, "level": level, "group_by": "name"}
        rows = client.get("/v1/latency", params=params).json()["data"]
        raw = client.get("/v1/latency", params={**params, "source": "raw"}).json()["data"]
        assert rows == raw
        daily = {**params, "granularity": "day"}
        by_day = client.get("/v1/latency", params=daily).json()["data"]
        assert by_day == client.get("/v1/latency", params={**daily, "source": "raw"}).json()["data"]
        expected = expected_latency(truth, level)
        assert {(r["bucket"], r["name"]) for r in rows} == set(expected)
        for row in rows:
            cell = expected[(row["bucket"], row["name"])]
            ordered = sorted(cell["durations"])
            assert (row["count"], row["orphans"], row["skewed"]) == (
                len(ordered),
                cell["orphans"],
                cell["skewed"],
            )
            if not ordered:
                assert row["p50_ms"] is None
                continue
            assert within_sketch_error(row["max_ms"], ordered, 1.0), (row, ordered)
            assert row["avg_ms"] == pytest.approx(sum(ordered) / len(ordered))
            for label, q in (("p50_ms", 0.5), ("p90_ms", 0.9), ("p95_ms", 0.95), ("p99_ms", 0.99)):
                assert within_sketch_error(row[label], ordered, q), (label, row, ordered)


def reset(clickhouse: ClickHouse) -> None:
    """Empty every table the migrations made (not their record), so no example leaks state."""
    rows = clickhouse.query_rows(
        "tables",
        sql="SELECT name FROM system.tables WHERE database = currentDatabase()"
        " AND engine NOT IN ('MaterializedView', 'View') AND name != 'schema_migrations'",
    )
    assert {"observations", "rollup_ledger", "rollup_state"} <= {name for (name,) in rows}
    for (table,) in rows:
        clickhouse.command("truncate", sql=f"TRUNCATE TABLE {table}")


def run_scenario(
    client: TestClient, clickhouse: ClickHouse, clock: ManualClock, ops: list[tuple[Any, ...]]
) -> None:
    """Apply the operations, checking the rollup against the model after every pass."""
    reset(clickhouse)
    truth = Truth()
    sent: list[dict[str, Any]] = []

    def check_usage() -> None:
        params = {**RANGE, "group_by": ALL_KEYS}
        actual = client.get("/v1/usage", params=params).json()["data"]
        assert_usage_matches(actual, expected_usage(truth))
        raw = client.get("/v1/usage", params={**params, "source": "raw"}).json()["data"]
        assert_usage_matches(raw, expected_usage(truth))
        # Day granularity is served from the daily rollup: it must agree with raw rows too.
        daily = {**params, "granularity": "day"}
        by_day = client.get("/v1/usage", params=daily).json()["data"]
        raw_by_day = client.get("/v1/usage", params={**daily, "source": "raw"}).json()["data"]
        assert_usage_matches(by_day, raw_by_day)

    for op in ops:
        kind = op[0]
        if kind == "ingest":
            _, trace_id, with_trace, environment, fields = op
            trace_record = {
                "id": trace_id,
                "name": f"job-{environment}",
                "timestamp": iso(BASE),
                "environment": environment,
            }
            body = {
                "traces": [trace_record] if with_trace else [],
                "observations": [{**f, "trace_id": trace_id} for f in fields],
            }
            assert client.post("/v1/ingest", json=body).status_code == 202
            apply_ingest(truth, body)
            sent.append(body)
        elif kind == "replay" and sent:
            body = sent[len(sent) // 2]
            assert client.post("/v1/ingest", json=body).status_code == 202
            apply_ingest(truth, body)
        elif kind == "delete":
            trace_id = op[1]
            response = client.delete(f"/v1/traces/{trace_id}")
            assert response.status_code in (200, 404)
            truth.environments.pop(trace_id, None)
            truth.names.pop(trace_id, None)
            for key in [k for k in truth.observations if k[0] == trace_id]:
                del truth.observations[key]
        elif kind == "pass":
            run_rollup_pass(clickhouse, clock)
            check_usage()
        elif kind == "merge":
            for table in ("observations", "traces", "rollup_ledger"):
                clickhouse.command("merge", sql=f"OPTIMIZE TABLE {table} FINAL")
        elif kind == "backfill":
            # The backfill primitive between passes: one hour's traces brought up to date.
            hour = BASE + timedelta(hours=op[1])
            rebuild_range(clickhouse, hour, hour + timedelta(hours=1))
        elif kind == "advance":
            clock.advance(op[1])
    # Two passes in a row: the second is a replay and must change nothing.
    run_rollup_pass(clickhouse, clock)
    check_usage()
    run_rollup_pass(clickhouse, clock)
    check_usage()
    assert_latency_matches(client, truth)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=operations)
def test_rollup_equals_raw_truth_under_any_interleaving(
    client: TestClient, clickhouse: ClickHouse, clock: ManualClock, ops: list[tuple[Any, ...]]
) -> None:
    run_scenario(client, clickhouse, clock, ops)


def record(obs_id: str, hour: int) -> dict[str, Any]:
    start = BASE + timedelta(hours=hour)
    return {
        "id": obs_id,
        "type": "generation",
        "name": "llm",
        "start_time": iso(start),
        "end_time": iso(start + timedelta(seconds=2)),
        "model": "gpt-4o",
        "provider": "openai",
        "input_tokens": 10,
        "output_tokens": 3,
        "cost": 0.5,
        "status": "ok",
    }


def test_scenario_move_merge_then_delete(
    client: TestClient, clickhouse: ClickHouse, clock: ManualClock
) -> None:
    run_scenario(
        client,
        clickhouse,
        clock,
        [
            ("ingest", "t0", True, "prod", [record("o0", 0), record("o1", -2)]),
            ("ingest", "t1", False, "prod", [record("o1", -2)]),
            ("pass",),
            ("ingest", "t0", True, "dev", [record("o0", -3)]),
            ("merge",),
            ("pass",),
            ("delete", "t1"),
            ("pass",),
        ],
    )
