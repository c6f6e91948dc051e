"""Build OTLP trace exports for tests: protobuf messages, and OTLP/JSON written by hand."""

from __future__ import annotations

from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
ROOT = "00f067aa0ba902b7"
T0_NS = 1795341600 * 10**9  # 2026-11-22T10:00:00Z, the test clock's start
PROTOBUF = {"content-type": "application/x-protobuf"}
JSON = {"content-type": "application/json"}


def ms(milliseconds: float) -> int:
    """Unix nanoseconds `milliseconds` after T0."""
    return T0_NS + int(milliseconds * 1_000_000)


def span(
    span_id: str = ROOT,
    parent: str = "",
    *,
    trace_id: str = TRACE,
    name: str = "span",
    start: float = 0,
    end: float | None = 1000,
    error: bool = False,
    **attributes: Any,
) -> dict[str, Any]:
    """A span description; attribute names use `__` for `.` (gen_ai__usage__input_tokens)."""
    return {
        "trace_id": trace_id,
        "span_id": span_id,
        "parent": parent,
        "name": name,
        "start": ms(start),
        "end": ms(end) if end is not None else 0,
        "error": error,
        "attributes": {k.replace("__", "."): v for k, v in attributes.items()},
    }


def any_value(value: Any) -> AnyValue:
    out = AnyValue()
    if isinstance(value, bool):
        out.bool_value = value
    elif isinstance(value, int):
        out.int_value = value
    elif isinstance(value, float):
        out.double_value = value
    elif isinstance(value, str):
        out.string_value = value
    elif isinstance(value, bytes):
        out.bytes_value = value
    elif isinstance(value, list):
        out.array_value.values.extend(any_value(v) for v in value)
    elif isinstance(value, dict):
        out.kvlist_value.values.extend(
            KeyValue(key=k, value=any_value(v)) for k, v in value.items()
        )
    return out


def protobuf_request(
    spans: list[dict[str, Any]], resource: dict[str, Any] | None = None, scope: str = "tests"
) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    for key, value in (resource or {"service.name": "chat-app"}).items():
        resource_spans.resource.attributes.add(key=key, value=any_value(value))
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = scope
    for s in spans:
        out = scope_spans.spans.add()
        out.trace_id = bytes.fromhex(s["trace_id"])
        out.span_id = bytes.fromhex(s["span_id"])
        out.parent_span_id = bytes.fromhex(s["parent"])
        out.name = s["name"]
        out.kind = 1
        out.start_time_unix_nano = s["start"]
        out.end_time_unix_nano = s["end"]
        if s["error"]:
            out.status.code = 2
            out.status.message = "boom"
        for key, value in s["attributes"].items():
            out.attributes.add(key=key, value=any_value(value))
    return request


def protobuf_body(spans: list[dict[str, Any]], **kwargs: Any) -> bytes:
    return protobuf_request(spans, **kwargs).SerializeToString()


def json_value(value: Any) -> dict[str, Any]:
    """An OTLP/JSON AnyValue, int64 as a string as proto3 JSON writes it."""
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, list):
        return {"arrayValue": {"values": [json_value(v) for v in value]}}
    if isinstance(value, dict):
        return {
            "kvlistValue": {
                "values": [{"key": k, "value": json_value(v)} for k, v in value.items()]
            }
        }
    return {"stringValue": value}


def json_request(
    spans: list[dict[str, Any]], resource: dict[str, Any] | None = None, scope: str = "tests"
) -> dict[str, Any]:
    """The OTLP/JSON document of the same export `protobuf_request` builds."""
    return {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [
                        {"key": k, "value": json_value(v)}
                        for k, v in (resource or {"service.name": "chat-app"}).items()
                    ]
                },
                "scopeSpans": [
                    {
                        "scope": {"name": scope},
                        "spans": [
                            {
                                "traceId": s["trace_id"],
                                "spanId": s["span_id"],
                                "parentSpanId": s["parent"],
                                "name": s["name"],
                                "kind": 1,
                                "startTimeUnixNano": str(s["start"]),
                                "endTimeUnixNano": str(s["end"]),
                                "status": {"code": 2, "message": "boom"} if s["error"] else {},
                                "attributes": [
                                    {"key": k, "value": json_value(v)}
                                    for k, v in s["attributes"].items()
                                ],
                            }
                            for s in spans
                        ],
                    }
                ],
            }
        ]
    }
