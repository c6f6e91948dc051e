"""The OTLP mapping as pure functions: precedence rules, bounds, and both decoders agreeing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from service.otlp.decode import Resource, Span, decode_json, decode_protobuf
from service.otlp.export import prepare
from service.otlp.mapping import (
    DROPPED_KEY,
    MAX_METADATA_KEYS,
    MAX_METADATA_VALUE_CHARS,
    TRUNCATED_KEY,
    map_observation,
)
from tests.otlp_builders import ROOT, T0_NS, TRACE, json_request, protobuf_body, span

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def make_span(attributes: dict[str, Any], *, status: int = 0, parent: str = ROOT) -> Span:
    return Span(
        position=(0, 0, 0),
        trace_id=TRACE,
        span_id="a1a1a1a1a1a1a1a1",
        parent_span_id=parent,
        name="op",
        start_ns=T0_NS,
        end_ns=T0_NS + 1_000_000_000,
        status_code=status,
        status_message="",
        attributes=attributes,
        resource=Resource({}),
        scope_name="",
    )


def mapped(attributes: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    return map_observation(make_span(attributes, **kwargs), root_attributes=None)


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        ({}, "span"),
        ({"langfuse.observation.type": "guardrail", "openinference.span.kind": "LLM"}, "guardrail"),
        ({"openinference.span.kind": "LLM", "gen_ai.operation.name": "execute_tool"}, "generation"),
        ({"openinference.span.kind": "TOOL"}, "tool"),
        ({"openinference.span.kind": "agent"}, "agent"),
        ({"openinference.span.kind": "CHAIN"}, "chain"),
        ({"openinference.span.kind": "RETRIEVER"}, "retriever"),
        ({"openinference.span.kind": "EMBEDDING"}, "embedding"),
        ({"openinference.span.kind": "EVALUATOR"}, "evaluator"),
        ({"openinference.span.kind": "GUARDRAIL"}, "guardrail"),
        ({"openinference.span.kind": "RERANKER"}, "span"),
        ({"gen_ai.operation.name": "chat"}, "generation"),
        ({"gen_ai.operation.name": "text_completion"}, "generation"),
        ({"gen_ai.operation.name": "generate_content"}, "generation"),
        ({"gen_ai.operation.name": "embeddings"}, "embedding"),
        ({"gen_ai.operation.name": "execute_tool"}, "tool"),
        ({"gen_ai.operation.name": "invoke_agent"}, "agent"),
        ({"gen_ai.operation.name": "create_agent"}, "agent"),
        ({"gen_ai.operation.name": "something_else"}, "span"),
    ],
)
def test_type_precedence(attributes: dict[str, Any], expected: str) -> None:
    assert mapped(attributes)["type"] == expected


def test_model_and_provider_first_present_wins() -> None:
    every = {
        "langfuse.observation.model.name": "lf-model",
        "gen_ai.response.model": "response-model",
        "gen_ai.request.model": "request-model",
        "llm.model_name": "oi-model",
        "gen_ai.provider.name": "openai",
        "gen_ai.system": "legacy-system",
        "llm.provider": "oi-provider",
        "llm.system": "oi-system",
    }
    record = mapped(every)
    assert (record["model"], record["provider"]) == ("lf-model", "openai")
    # The losing candidates are not lost: they stay in metadata.
    assert record["metadata"] == {
        "gen_ai.response.model": "response-model",
        "gen_ai.request.model": "request-model",
        "llm.model_name": "oi-model",
        "gen_ai.system": "legacy-system",
        "llm.provider": "oi-provider",
        "llm.system": "oi-system",
    }
    only_openinference = mapped({"llm.model_name": "m", "llm.system": "anthropic"})
    assert (only_openinference["model"], only_openinference["provider"]) == ("m", "anthropic")


@pytest.mark.parametrize(
    ("attributes", "tokens"),
    [
        ({"gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 3}, (10, 3)),
        ({"gen_ai.usage.prompt_tokens": 11, "gen_ai.usage.completion_tokens": 4}, (11, 4)),
        ({"llm.token_count.prompt": 12, "llm.token_count.completion": 5}, (12, 5)),
        (
            {
                "langfuse.observation.usage_details": '{"input": 13, "output": 6, "total": 19}',
                "gen_ai.usage.input_tokens": 99,
            },
            (13, 6),
        ),
        ({"gen_ai.usage.input_tokens": "14", "gen_ai.usage.output_tokens": 7.0}, (14, 7)),
    ],
)
def test_token_sources(attributes: dict[str, Any], tokens: tuple[int, int]) -> None:
    record = mapped(attributes)
    assert (record["input_tokens"], record["output_tokens"]) == tokens


@pytest.mark.parametrize(
    ("attributes", "cost"),
    [
        ({"langfuse.observation.cost_details": '{"input": 0.5, "output": 1.5, "total": 9}'}, 9),
        ({"langfuse.observation.cost_details": '{"input": 0.5, "output": 1.5}'}, 2.0),
        ({"gen_ai.usage.cost": 0.25}, 0.25),
        ({"llm.cost.total": 0.75, "gen_ai.usage.cost": 0.25}, 0.25),
        ({"llm.cost.total": 0.75}, 0.75),
    ],
)
def test_cost_sources(attributes: dict[str, Any], cost: float) -> None:
    assert mapped(attributes)["cost"] == cost


def test_first_token_from_langfuse_then_time_to_first_chunk() -> None:
    langfuse = mapped(
        {
            "langfuse.observation.completion_start_time": '"2026-11-22T10:00:00.450000+00:00"',
            "gen_ai.response.time_to_first_chunk": 0.9,
        }
    )
    assert langfuse["completion_start_time"] == "2026-11-22T10:00:00.450000+00:00"
    assert langfuse["metadata"] == {"gen_ai.response.time_to_first_chunk": "0.9"}
    semconv = mapped({"gen_ai.response.time_to_first_chunk": 0.25})
    assert semconv["completion_start_time"] == T0 + timedelta(milliseconds=250)
    assert "completion_start_time" not in mapped({})


def test_error_status_and_langfuse_error_level_both_mark_errors() -> None:
    assert mapped({}, status=2)["status"] == "error"
    assert mapped({"langfuse.observation.level": "ERROR"})["status"] == "error"
    assert mapped({"langfuse.observation.level": "WARNING"})["status"] == "ok"
    assert mapped({}, status=1)["status"] == "ok"


def test_payloads_are_not_stored_and_langfuse_metadata_is_unwrapped() -> None:
    record = mapped(
        {
            "gen_ai.input.messages": "[...]",
            "gen_ai.output.messages": "[...]",
            "gen_ai.system_instructions": "be nice",
            "gen_ai.prompt.0.content": "hello",
            "gen_ai.completion.0.content": "hi",
            "langfuse.observation.input": '{"q": 1}',
            "langfuse.observation.output": '"a"',
            "input.value": "hello",
            "output.value": "hi",
            "llm.input_messages.0.message.content": "hello",
            "llm.output_messages.0.message.content": "hi",
            "retrieval.documents.0.document.content": "doc",
            "langfuse.observation.metadata.team": '"search"',
            "langfuse.observation.metadata.retries": "3",
            "langfuse.observation.metadata.flags": '{"a": true}',
            "langfuse.observation.metadata": '"plain"',
            "http.status_code": 200,
            "retry": True,
            "weights": [0.5, 1],
            "blob": b"\x00\x01",
        }
    )
    assert record["metadata"] == {
        "team": "search",
        "retries": "3",
        "flags": '{"a": true}',
        "metadata": "plain",
        "http.status_code": "200",
        "retry": "true",
        "weights": "[0.5,1]",
        "blob": "AAE=",
    }


def test_metadata_is_bounded_and_counts_what_it_drops() -> None:
    attributes: dict[str, Any] = {f"k{i:03d}": "v" for i in range(MAX_METADATA_KEYS + 6)}
    attributes["long"] = "x" * (MAX_METADATA_VALUE_CHARS + 10)
    attributes["x" * 300] = "key too long"
    metadata = mapped(attributes)["metadata"]
    assert len(metadata) == MAX_METADATA_KEYS + 1
    assert metadata[DROPPED_KEY] == "8"  # 6 over the key cap, "long" and the long key
    assert "long" not in metadata

    few = mapped({"long": "x" * (MAX_METADATA_VALUE_CHARS + 10), "short": "y"})["metadata"]
    assert few["long"] == "x" * (MAX_METADATA_VALUE_CHARS - 1) + "…"
    assert len(few["long"]) == MAX_METADATA_VALUE_CHARS
    assert few[TRUNCATED_KEY] == "1"


def test_both_decoders_give_the_same_spans_for_every_value_kind() -> None:
    spans = [
        span(
            ROOT,
            name="kinds",
            text="t",
            integer=-(2**62),
            double=0.5,
            flag=False,
            array=["a", 1, [True]],
            kvlist={"inner": {"deep": 2.5}},
        ),
        span("a1a1a1a1a1a1a1a1", ROOT, end=None, error=True),
    ]
    from_protobuf = decode_protobuf(protobuf_body(spans))
    from_json = decode_json(orjson.dumps(json_request(spans)))
    assert from_protobuf == from_json
    assert from_json[0].attributes == {
        "text": "t",
        "integer": -(2**62),
        "double": 0.5,
        "flag": False,
        "array": ["a", 1, [True]],
        "kvlist": {"inner": {"deep": 2.5}},
    }
    assert (from_json[1].end_ns, from_json[1].status_code) == (0, 2)


def test_json_accepts_snake_case_names_numbers_for_int64_and_special_doubles() -> None:
    document = {
        "resource_spans": [
            {
                "scope_spans": [
                    {
                        "spans": [
                            {
                                "trace_id": TRACE.upper(),
                                "span_id": ROOT,
                                "start_time_unix_nano": T0_NS,
                                "attributes": [
                                    {"key": "nan", "value": {"doubleValue": "NaN"}},
                                    {"key": "inf", "value": {"doubleValue": "Infinity"}},
                                    {"key": "n", "value": {"intValue": 7}},
                                    {"key": "b", "value": {"bytesValue": "AAE="}},
                                    {"key": "empty", "value": {}},
                                ],
                            }
                        ]
                    }
                ]
            }
        ]
    }
    (decoded,) = decode_json(orjson.dumps(document))
    assert (decoded.trace_id, decoded.span_id, decoded.start_ns) == (TRACE, ROOT, T0_NS)
    assert decoded.attributes["inf"] == float("inf")
    assert decoded.attributes["nan"] != decoded.attributes["nan"]
    assert (decoded.attributes["n"], decoded.attributes["b"]) == (7, b"\x00\x01")
    assert decoded.attributes["empty"] is None


def test_a_span_without_start_or_with_bad_ids_is_rejected_before_mapping() -> None:
    spans = decode_protobuf(
        protobuf_body(
            [
                span(ROOT, name="ok"),
                span("a1a1a1a1a1a1a1a1", ROOT, trace_id="00" * 16),
                span("abcd", ROOT),
                span("b2b2b2b2b2b2b2b2", "abcd"),
            ]
        )
    )
    no_start = spans[0]._replace(span_id="c3c3c3c3c3c3c3c3", start_ns=0)
    prepared = prepare([*spans, no_start])
    assert [o.id for o in prepared.batch.observations] == [ROOT]
    assert prepared.rejected == 4
    assert prepared.first_rejection is not None
    assert prepared.first_rejection.describe() == (
        "resourceSpans[0].scopeSpans[0].spans[1].traceId: must be 16 bytes and not all zero "
        f"(spanId a1a1a1a1a1a1a1a1, traceId {'0' * 32})"
    )


def test_unusable_first_token_values_stay_in_metadata() -> None:
    record = mapped(
        {
            "gen_ai.response.time_to_first_chunk": "soon",
            "langfuse.observation.completion_start_time": 5,
        }
    )
    assert "completion_start_time" not in record
    assert record["metadata"] == {
        "gen_ai.response.time_to_first_chunk": "soon",
        "langfuse.observation.completion_start_time": "5",
    }
