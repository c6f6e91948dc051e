"""A trace's summary from its live rows: pure arithmetic, checked without the engine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from service.traces.rows import ObservationRow, TraceRow, TraceRows
from service.traces.summary import summarize

T0 = datetime(2026, 11, 22, 10, tzinfo=UTC)


def obs(obs_id: str, start: float, end: float | None, **fields: object) -> ObservationRow:
    return ObservationRow(
        obs_id,
        str(fields.pop("type", "generation")),
        "llm",
        T0 + timedelta(seconds=start),
        None if end is None else T0 + timedelta(seconds=end),
        None,
        **fields,  # type: ignore[arg-type]
    )


def test_counts_orphans_skew_errors_tokens_cost_and_models() -> None:
    rows = TraceRows(
        ("p", "t"),
        TraceRow("chat", T0, "u1", "s1", "prod", ("a",)),
        (
            obs("a", 1, 3, model="gpt-4o", input_tokens=10, output_tokens=2, cost=0.1),
            obs("b", 2, None, model="", status="error", cost=0.2),  # orphan
            obs("c", 4, 3.5, model="claude", input_tokens=5, cost=0.3),  # skewed
            obs("d", 0.5, 6, model="gpt-4o", output_tokens=7),
        ),
    )
    summary = summarize(rows).to_json()
    assert summary == {
        "name": "chat",
        "environment": "prod",
        "user_id": "u1",
        "session_id": "s1",
        "start_time": "2026-11-22T10:00:00.500Z",
        "end_time": "2026-11-22T10:00:06.000Z",
        "duration_ms": 5500.0,
        "observations": 4,
        "orphans": 1,
        "skewed": 1,
        "errors": 1,
        "input_tokens": 15,
        "output_tokens": 9,
        "total_tokens": 24,
        # fsum: the correctly rounded total, not 0.1 + 0.2 + 0.3 = 0.6000000000000001
        "cost": 0.6,
        "models": ["claude", "gpt-4o"],
    }


def test_a_trace_without_observations_starts_at_its_timestamp_and_has_no_duration() -> None:
    summary = summarize(TraceRows(("p", "t"), TraceRow("chat", T0), ()))
    assert (summary.start_time, summary.end_time, summary.duration_ms) == (T0, None, None)
    assert summary.observations == 0


def test_observations_without_a_trace_record_still_summarize() -> None:
    summary = summarize(TraceRows(("p", "t"), None, (obs("a", 1, 2),)))
    assert (summary.name, summary.timestamp, summary.duration_ms) == ("", None, 1000.0)
