"""Anchor semantics and definition validation, as plain functions (no ClickHouse)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.durations.anchors import Obs, compute_duration, pick_observation
from service.durations.definitions import (
    DurationDefinitionIn,
    DurationSpec,
    InvalidDefinition,
    ObservationAnchor,
    parse_definition,
)

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def obs(
    obs_id: str,
    start: float,
    end: float | None,
    *,
    type_: str = "generation",
    name: str = "llm",
    first_token: float | None = None,
) -> Obs:
    return Obs(
        obs_id,
        type_,
        name,
        at(start),
        None if end is None else at(end),
        None if first_token is None else at(first_token),
    )


def spec(start: dict[str, Any], end: dict[str, Any]) -> DurationSpec:
    return parse_definition(DurationSpec, {"start": start, "end": end})


TRACE_START = {"anchor": "trace_start"}
TRACE_END = {"anchor": "trace_end"}


def gen(pick: str, edge: str, **extra: Any) -> dict[str, Any]:
    return {"anchor": "observation", "type": "generation", "pick": pick, "edge": edge, **extra}


TRACE = [
    obs("a", 0, 1, type_="span", name="root"),
    obs("g1", 2, 5, first_token=2.5),
    obs("g2", 6, 9, first_token=7.0),
    obs("t1", 3, 4, type_="tool", name="search"),
]


def test_trace_start_to_trace_end_spans_first_start_to_last_end() -> None:
    result = compute_duration(spec(TRACE_START, TRACE_END), TRACE)
    assert result.duration_ms == 9000.0
    assert (result.start_time, result.end_time, result.reason) == (at(0), at(9), None)


def test_time_to_first_token_of_the_first_generation() -> None:
    result = compute_duration(spec(TRACE_START, gen("first", "first_token")), TRACE)
    assert result.duration_ms == 2500.0


def test_last_pick_reads_the_latest_starting_match() -> None:
    assert compute_duration(spec(TRACE_START, gen("last", "first_token")), TRACE).duration_ms == (
        7000.0
    )
    assert compute_duration(spec(gen("last", "start"), gen("last", "end")), TRACE).duration_ms == (
        3000.0
    )


def test_pick_orders_by_start_time_not_by_arrival() -> None:
    shuffled = [TRACE[2], TRACE[3], TRACE[1], TRACE[0]]
    anchor = ObservationAnchor(anchor="observation", type="generation", pick="first", edge="end")
    picked = pick_observation(anchor, shuffled)
    assert picked is not None
    assert picked.id == "g1"


def test_name_filter_alone_matches_any_type() -> None:
    named = {"anchor": "observation", "name": "search", "pick": "first", "edge": "end"}
    assert compute_duration(spec(TRACE_START, named), TRACE).duration_ms == 4000.0


def test_missing_observation_anchor_is_null_with_reason() -> None:
    result = compute_duration(spec(TRACE_START, gen("first", "end")), [TRACE[0]])
    assert result.duration_ms is None
    assert result.reason == "end anchor missing: no observation of type generation"
    assert result.missing
    assert not result.skewed


def test_orphan_end_is_null_with_reason_and_no_fallback() -> None:
    orphan_first = [obs("g1", 1, None), obs("g2", 2, 3)]
    result = compute_duration(spec(TRACE_START, gen("first", "end")), orphan_first)
    assert result.duration_ms is None
    assert result.reason == "end anchor has no end_time (orphan): observation 'g1'"


def test_generation_without_first_token_is_null_with_reason() -> None:
    result = compute_duration(spec(TRACE_START, gen("first", "first_token")), [obs("g1", 1, 2)])
    assert result.duration_ms is None
    assert result.reason is not None
    assert "first token" in result.reason


def test_trace_without_observations_misses_trace_anchors() -> None:
    result = compute_duration(spec(TRACE_START, TRACE_END), [])
    assert result.duration_ms is None
    assert result.reason == "start anchor missing: trace has no live observations"


def test_trace_end_missing_when_every_observation_is_an_orphan() -> None:
    result = compute_duration(spec(TRACE_START, TRACE_END), [obs("a", 0, None)])
    assert result.duration_ms is None
    assert result.reason == "end anchor missing: no observation has an end_time"


def test_end_before_start_is_skew_not_a_negative_number() -> None:
    skewed = [obs("s", 5, 6, type_="span", name="setup"), obs("g", 1, 2)]
    named_span = {"anchor": "observation", "name": "setup", "pick": "first", "edge": "start"}
    result = compute_duration(spec(named_span, gen("first", "end")), skewed)
    assert result.duration_ms is None
    assert result.skewed
    assert not result.missing
    assert result.reason == "clock skew: end anchor is before start anchor"
    assert (result.start_time, result.end_time) == (at(5), at(2))


def test_example_definition_from_the_design_parses() -> None:
    body = {
        "name": "time_to_first_token",
        "start": {"anchor": "trace_start"},
        "end": {
            "anchor": "observation",
            "type": "generation",
            "pick": "first",
            "edge": "first_token",
        },
    }
    definition = parse_definition(DurationDefinitionIn, body)
    assert definition.name == "time_to_first_token"


INVALID: list[tuple[str, dict[str, Any], str]] = [
    (
        "first_token on a tool",
        {
            "start": TRACE_START,
            "end": {
                "anchor": "observation",
                "type": "tool",
                "pick": "first",
                "edge": "first_token",
            },
        },
        "end.edge: first_token never exists on type 'tool'",
    ),
    (
        "no type and no name",
        {"start": TRACE_START, "end": {"anchor": "observation", "pick": "first", "edge": "end"}},
        "end.type: an observation anchor needs a type and/or a name",
    ),
    (
        "unknown type",
        {"start": TRACE_START, "end": gen("first", "end", type="llm_call")},
        "end.type: Input should be",
    ),
    ("unknown edge", {"start": TRACE_START, "end": gen("first", "middle")}, "end.edge:"),
    ("unknown pick", {"start": gen("any", "start"), "end": TRACE_END}, "start.pick:"),
    ("unknown anchor", {"start": {"anchor": "session_start"}, "end": TRACE_END}, "start:"),
    ("identical anchors", {"start": TRACE_END, "end": TRACE_END}, "end: is identical to start"),
    ("reversed trace anchors", {"start": TRACE_END, "end": TRACE_START}, "end: trace_start"),
    (
        "end edge before start edge of one observation",
        {"start": gen("first", "end"), "end": gen("first", "start")},
        "end.edge: start of the same observation is never after its end",
    ),
    (
        "extra field on a trace anchor",
        {"start": {"anchor": "trace_start", "type": "span"}, "end": TRACE_END},
        "start.type: Extra inputs are not permitted",
    ),
    ("bad slug", {"name": "Time To Token", "start": TRACE_START, "end": TRACE_END}, "name:"),
    ("unknown top-level field", {"start": TRACE_START, "end": TRACE_END, "x": 1}, "x:"),
]


@pytest.mark.parametrize(("case", "body", "message"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_definitions_name_the_field(case: str, body: dict[str, Any], message: str) -> None:
    body = {"name": "d", **body}
    with pytest.raises(InvalidDefinition) as raised:
        parse_definition(DurationDefinitionIn, body)
    assert str(raised.value).startswith(message), str(raised.value)


ANCHORS = st.one_of(
    st.sampled_from([TRACE_START, TRACE_END]),
    st.builds(
        lambda type_, pick, edge: {
            "anchor": "observation",
            "type": type_,
            "pick": pick,
            "edge": edge,
        },
        st.sampled_from(["generation", "span"]),
        st.sampled_from(["first", "last"]),
        st.sampled_from(["start", "end"]),
    ),
)
OBSERVATIONS = st.lists(
    st.builds(
        lambda i, type_, start, length, orphan: obs(
            f"o{i}", start, None if orphan else start + length, type_=type_
        ),
        st.integers(0, 10_000),
        st.sampled_from(["generation", "span", "tool"]),
        st.integers(0, 600),
        st.integers(-5, 60),
        st.booleans(),
    ),
    max_size=8,
    unique_by=lambda o: o.id,
)


@given(start=ANCHORS, end=ANCHORS, observations=OBSERVATIONS)
def test_a_duration_is_never_negative_and_always_explained(
    start: dict[str, Any], end: dict[str, Any], observations: list[Obs]
) -> None:
    try:
        definition = spec(start, end)
    except InvalidDefinition:
        return  # degenerate pairs are refused up front
    result = compute_duration(definition, observations)
    if result.duration_ms is None:
        assert result.reason
        assert result.skewed == (
            result.start_time is not None
            and result.end_time is not None
            and result.end_time < result.start_time
        )
    else:
        assert result.reason is None
        assert result.start_time is not None
        assert result.end_time is not None
        assert result.duration_ms == (result.end_time - result.start_time).total_seconds() * 1000
        assert result.duration_ms >= 0
