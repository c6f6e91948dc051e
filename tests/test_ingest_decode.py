"""The msgspec hot path never disagrees with the pydantic models it stands in for.

Property: for any body, if the fast path accepts it, the models accept it too and both
yield the same columns (same values and types: times as UTC milliseconds, metadata as
strings); and `parse_batch` either returns the models' columns or raises the models'
message, so callers can never tell the paths apart.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import msgspec
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.demo import synthetic_batches
from service.errors import InvalidBatch
from service.ingest.decode import (
    BatchStruct,
    ObservationStruct,
    TraceStruct,
    fast_batch,
    model_batch,
    parse_batch,
)
from service.ingest.models import IngestBatch, ObservationIn, TraceIn
from service.ingest.rows import Batch
from tests.conftest import observation, trace


def canonical(value: Any) -> Any:
    """Values with their exact types (so 1 != 1.0 and 0.0 != -0.0)."""
    if isinstance(value, list):
        return [canonical(v) for v in value]
    if isinstance(value, dict):
        return [(canonical(k), canonical(v)) for k, v in value.items()]
    return (type(value).__name__, repr(value))


def columns(batch: Batch) -> Any:
    return canonical(
        [batch.traces, batch.observations, batch.trace_projects, batch.observation_projects]
    )


def outcome(body: bytes) -> tuple[str, Any]:
    try:
        return "ok", columns(model_batch(body))
    except InvalidBatch as exc:
        return "error", exc.message


def assert_paths_agree(body: bytes) -> None:
    expected = outcome(body)
    fast = fast_batch(body)
    if fast is not None:
        assert expected == ("ok", columns(fast)), body
    try:
        got: tuple[str, Any] = ("ok", columns(parse_batch(body)))
    except InvalidBatch as exc:
        got = ("error", exc.message)
    assert got == expected, body


# -- strategies: mostly valid values (often at a limit), sometimes one just past it --------


def mostly(valid: st.SearchStrategy[Any], invalid: st.SearchStrategy[Any]) -> Any:
    """`valid` 29 times in 30, else `invalid`: about half the bodies fail, on one field."""
    return st.integers(0, 29).flatmap(lambda k: invalid if k == 0 else valid)


zones = st.sampled_from(["Z", "z", "", "+00:00", "-00:00", "+01:00", "-23:59", "+05:30", "+0530"])


@st.composite
def valid_time(draw: st.DrawFn) -> str:
    """A time in the window (its UTC value may still cross an edge by the offset)."""
    when = draw(st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2099, 12, 31)))
    sep = draw(st.sampled_from(["T", "t", " "]))
    extra = draw(st.one_of(st.just(""), st.text(alphabet="0123456789", max_size=3)))
    fraction = draw(st.sampled_from(["", f".{when.microsecond:06d}", f".{when.microsecond:06d}"]))
    fraction = fraction + extra if fraction else fraction
    return when.strftime(f"%Y-%m-%d{sep}%H:%M:%S") + fraction + draw(zones)


@st.composite
def odd_time(draw: st.DrawFn) -> Any:
    year = draw(st.sampled_from([1, 999, 1969, 2100, 2106, 2299, 9999]))
    month, day = draw(st.integers(1, 13)), draw(st.integers(1, 31))
    hour, minute, second = (
        draw(st.integers(0, 24)),
        draw(st.integers(0, 59)),
        draw(st.integers(0, 60)),
    )
    sep = draw(st.sampled_from(["T", "x"]))
    zone = draw(st.sampled_from(["Z", "+24:00", "+01", ""]))
    return f"{year:04d}-{month:02d}-{day:02d}{sep}{hour:02d}:{minute:02d}:{second:02d}{zone}"


edge_times = st.sampled_from(
    [
        "1970-01-01T00:00:00.000Z",
        "1969-12-31T23:59:59.999Z",
        "1970-01-01T00:59:59.999+01:00",
        "2099-12-31T23:59:59.999Z",
        "2099-12-31T23:59:59.9999999Z",
        "2100-01-01T00:00:00Z",
        "2099-12-31T22:59:59-01:00",
        "2026-11-22T10:00:00.9999999Z",
        "2026-11-22",
        "2026-11-22T10:00Z",
        "yesterday",
    ]
)
times = mostly(
    st.one_of(valid_time(), edge_times),
    st.one_of(odd_time(), st.integers(-(2**40), 2**40), st.none(), st.floats()),
)


def text(limit: int, *, min_size: int = 0) -> Any:
    return mostly(
        st.one_of(
            st.text(min_size=min_size, max_size=8),
            st.sampled_from(["x" * limit, "é" * limit, "😀" * limit]),
        ),
        st.one_of(
            st.sampled_from(["x" * (limit + 1), "😀" * (limit + 1), ""]),
            st.integers(0, 3),
            st.none(),
        ),
    )


tokens = mostly(
    st.one_of(st.integers(0, 10**9), st.just(10**9)),
    st.one_of(
        st.sampled_from([-1, 10**9 + 1, 2**53, 2**64, 2**70, 5.0, 5.5, "5", True, None]),
        st.floats(),
    ),
)
costs = mostly(
    st.one_of(st.floats(min_value=0, max_value=1e9), st.integers(0, 10**9), st.just(-0.0)),
    st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from([1e9 + 1, 1.7e308, -1e-300, "1", True, None]),
        st.integers(-3, 2**70),
    ),
)
finite_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=6),
)
any_leaf = st.one_of(finite_leaf, st.sampled_from([float("nan"), float("inf"), -float("inf")]))


def json_values(leaf: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(
        leaf,
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
        ),
        max_leaves=6,
    )


metadata = mostly(
    st.dictionaries(st.text(max_size=5), json_values(finite_leaf), max_size=3),
    st.one_of(st.dictionaries(st.text(max_size=5), json_values(any_leaf), max_size=3), st.just([])),
)
unknown = mostly(st.just({}), st.just({"colour": "red"}))


def record(required: dict[str, Any], optional: dict[str, Any]) -> st.SearchStrategy[Any]:
    return st.builds(
        lambda a, b: {**a, **b},
        st.fixed_dictionaries(required, optional=optional),
        unknown,
    )


traces = record(
    {"id": text(512, min_size=1), "timestamp": times},
    {
        "project_id": text(512, min_size=1),
        "name": text(1024),
        "user_id": text(512),
        "session_id": text(512),
        "environment": text(128, min_size=1),
        "tags": mostly(st.lists(text(256), max_size=3), st.just("x")),
        "metadata": metadata,
    },
)
observations = record(
    {
        "id": text(512, min_size=1),
        "trace_id": text(512, min_size=1),
        "type": mostly(
            st.sampled_from(["span", "generation", "tool", "guardrail"]),
            st.sampled_from(["bogus", "", "Span"]),
        ),
        "start_time": times,
    },
    {
        "project_id": text(512, min_size=1),
        "parent_id": text(512),
        "name": text(1024),
        "end_time": mostly(times, st.none()),
        "completion_start_time": mostly(times, st.none()),
        "model": text(256),
        "provider": text(256),
        "input_tokens": tokens,
        "output_tokens": tokens,
        "cost": costs,
        "status": mostly(st.sampled_from(["ok", "error"]), st.sampled_from(["maybe", None])),
        "metadata": metadata,
    },
)
batches = mostly(
    st.fixed_dictionaries(
        {},
        optional={
            "traces": st.lists(traces, max_size=3),
            "observations": st.lists(observations, max_size=4),
        },
    ),
    st.sampled_from([[], "x", 5, None, {"traces": None}, {"spans": []}]),
)


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    """JSON text of a drawn batch, sometimes ASCII-escaped or with escaped dots."""
    text = json.dumps(draw(batches), ensure_ascii=draw(st.booleans()), allow_nan=True)
    if draw(st.integers(0, 9)) == 0 and "." in text:
        text = text.replace(".", "\\u002e")
    return text.encode()


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bodies())
def test_fast_path_and_models_agree_on_every_body(body: bytes) -> None:
    assert_paths_agree(body)


@settings(max_examples=300, deadline=None)
@given(st.lists(observations, min_size=1, max_size=3))
def test_fast_path_and_models_agree_on_observation_batches(records: list[Any]) -> None:
    assert_paths_agree(json.dumps({"observations": records}, allow_nan=True).encode())


@settings(max_examples=200, deadline=None)
@given(st.lists(traces, min_size=1, max_size=3))
def test_fast_path_and_models_agree_on_trace_batches(records: list[Any]) -> None:
    assert_paths_agree(json.dumps({"traces": records}, allow_nan=True).encode())


@pytest.mark.parametrize(
    "body",
    [
        b'{"observations": [], "observations": []}',
        b'{"traces": [{"id": "a", "id": "b", "timestamp": "2026-11-22T10:00:00Z"}]}',
        b'{"traces": [{"id": "a", "timestamp": "2026-11-22T10:00:00Z", '
        b'"metadata": {"k": 1, "k": "2"}}]}',
        b'{"traces": [{"id": "a", "timestamp": "2026-11-22T10:00:00Z", '
        b'"metadata": {"big": 18446744073709551616, "nested": [18446744073709551616, 1e16]}}]}',
        b'{"traces": [{"id": "a", "timestamp": "2026-11-22T10:00:00.999999\\u0039Z"}]}',
        b'{"traces": [{"id": "\\ud800", "timestamp": "2026-11-22T10:00:00Z"}]}',
        b'\xef\xbb\xbf{"traces": []}',
        b'{"traces": []} x',
    ],
)
def test_fast_path_and_models_agree_on_hand_picked_bodies(body: bytes) -> None:
    assert_paths_agree(body)


def test_typical_sdk_bodies_take_the_fast_path() -> None:
    now = datetime(2026, 11, 22, 10, tzinfo=UTC)
    for body in synthetic_batches(traces=50, batch_size=25, now=now):
        assert fast_batch(body) is not None


def test_sub_millisecond_digits_are_truncated_as_the_models_do() -> None:
    body = orjson.dumps({"observations": [observation(start_time="2026-11-22T10:00:00.9999999Z")]})
    assert fast_batch(body) is None
    start = parse_batch(body).observations[5][0]
    assert start == int(datetime(2026, 11, 22, 10, 0, 0, 999000, tzinfo=UTC).timestamp() * 1000)


def test_structs_mirror_the_models_field_for_field() -> None:
    for struct, model in (
        (TraceStruct, TraceIn),
        (ObservationStruct, ObservationIn),
        (BatchStruct, IngestBatch),
    ):
        info = msgspec.inspect.type_info(struct)
        assert isinstance(info, msgspec.inspect.StructType)
        fields = {f.name: f for f in info.fields}
        assert set(fields) == set(model.model_fields)
        for name, field in model.model_fields.items():
            mirrored = fields[name]
            assert mirrored.required == field.is_required(), name
            if not field.is_required():
                default = field.get_default(call_default_factory=True)
                got = (
                    mirrored.default
                    if mirrored.default is not msgspec.NODEFAULT
                    else mirrored.default_factory()
                )
                assert got == default, name


def test_a_trace_record_builds_like_an_observation_record() -> None:
    body = orjson.dumps({"traces": [trace("t1", tags=["a"], metadata={"n": 1})]})
    batch = parse_batch(body)
    assert batch.traces[7] == [{"n": "1"}]
    assert batch.traces[6] == [["a"]]
