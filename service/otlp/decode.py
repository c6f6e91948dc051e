"""OTLP trace exports (protobuf or OTLP/JSON) → one flat list of `Span`s.

Both encodings decode to the same shape, so the mapping never knows which one arrived.
A body that cannot be decoded raises `UndecodableBody` (HTTP 400, nothing is written);
values that decode but are wrong (an id of the wrong length, a missing start time) are left
for the mapping to reject span by span (a partial success).

OTLP/JSON follows the OTLP specification's deviations from the proto3 JSON mapping: trace
and span ids are hex (case-insensitive), enums are integers, keys are lowerCamelCase and
unknown keys are ignored. As the proto3 mapping requires of parsers, 64-bit integers are
accepted as numbers or decimal strings, and the original snake_case field names are
accepted too (the Collector's decoder does the same).
"""

from __future__ import annotations

import base64
import binascii
import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson
from google.protobuf.message import DecodeError

from service.otlp.wire import LeanRequest, key_value

# An attribute value as decoded: OTLP's AnyValue without its wrapper.
Value = str | bool | int | float | bytes | list["Value"] | dict[str, "Value"] | None
Attributes = dict[str, Value]

STATUS_ERROR = 2
_MAX_DEPTH = 16  # nested arrays / kvlists in one attribute value


class UndecodableBody(ValueError):
    """The body is not an ExportTraceServiceRequest in the declared encoding."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)


@dataclass(frozen=True, slots=True)
class Resource:
    """What the spans of one `ResourceSpans` share: the resource and its scope's name."""

    attributes: Attributes


class Span(NamedTuple):
    """One span, encoding-free. Ids are lowercase hex ("" when absent).

    A NamedTuple, not a frozen dataclass: it is built once per span on the hot path, and a
    frozen dataclass's `__init__` costs several times a tuple's.
    """

    position: tuple[int, int, int]  # (resourceSpans, scopeSpans, spans) indexes
    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    start_ns: int
    end_ns: int
    status_code: int
    status_message: str
    attributes: Attributes
    resource: Resource
    scope_name: str

    @property
    def path(self) -> str:
        """`resourceSpans[i].scopeSpans[j].spans[k]`, for messages."""
        r, s, k = self.position
        return f"resourceSpans[{r}].scopeSpans[{s}].spans[{k}]"


# Protobuf ---------------------------------------------------------------------------------


def decode_protobuf(body: bytes) -> list[Span]:
    """Binary protobuf `ExportTraceServiceRequest` → spans (via the lean wire schema)."""
    request = LeanRequest()
    try:
        request.ParseFromString(body)
        return _lean_spans(request)
    except (DecodeError, RecursionError) as exc:
        raise UndecodableBody("body", f"not a protobuf ExportTraceServiceRequest ({exc})") from None


def _lean_spans(request: Any) -> list[Span]:
    cache: dict[bytes, tuple[str, Value]] = {}  # encoded attribute → decoded, per request
    spans: list[Span] = []
    append = spans.append
    for r, resource_spans in enumerate(request.resource_spans):
        resource = Resource(_lean_attributes(resource_spans.resource.attributes, cache))
        for s, scope_spans in enumerate(resource_spans.scope_spans):
            scope_name = scope_spans.scope.name
            for k, span in enumerate(scope_spans.spans):
                status = span.status
                append(
                    Span(
                        (r, s, k),
                        span.trace_id.hex(),
                        span.span_id.hex(),
                        span.parent_span_id.hex(),
                        span.name,
                        span.start_time_unix_nano,
                        span.end_time_unix_nano,
                        status.code,
                        status.message,
                        _lean_attributes(span.attributes, cache),
                        resource,
                        scope_name,
                    )
                )
    return spans


def _lean_attributes(encoded: Any, cache: dict[bytes, tuple[str, Value]]) -> Attributes:
    attributes: Attributes = {}
    for raw in encoded:
        pair = cache.get(raw)
        if pair is None:
            pair = cache[raw] = key_value(raw)
        attributes[pair[0]] = pair[1]
    return attributes


# OTLP/JSON --------------------------------------------------------------------------------


def decode_json(body: bytes) -> list[Span]:
    """OTLP/JSON `ExportTraceServiceRequest` → spans."""
    try:
        document = orjson.loads(body) if body.strip() else {}
    except orjson.JSONDecodeError as exc:
        raise UndecodableBody("body", f"not valid JSON ({exc})") from None
    root = _object(document, "body")
    spans: list[Span] = []
    for r, resource_spans in enumerate(_list(root, "resourceSpans", "resource_spans", "")):
        where = f"resourceSpans[{r}]"
        resource_spans = _object(resource_spans, where)
        resource_doc = _object(_get(resource_spans, "resource", "resource") or {}, where)
        resource = Resource(_json_attributes(resource_doc, f"{where}.resource"))
        for s, scope_spans in enumerate(_list(resource_spans, "scopeSpans", "scope_spans", where)):
            scope_where = f"{where}.scopeSpans[{s}]"
            scope_spans = _object(scope_spans, scope_where)
            scope = _object(_get(scope_spans, "scope", "scope") or {}, f"{scope_where}.scope")
            scope_name = _string(scope, "name", "name", f"{scope_where}.scope")
            for k, span in enumerate(_list(scope_spans, "spans", "spans", scope_where)):
                spans.append(_json_span(span, (r, s, k), resource, scope_name))
    return spans


def _json_span(
    span: Any, position: tuple[int, int, int], resource: Resource, scope_name: str
) -> Span:
    r, s, k = position
    where = f"resourceSpans[{r}].scopeSpans[{s}].spans[{k}]"
    span = _object(span, where)
    status = _object(_get(span, "status", "status") or {}, f"{where}.status")
    return Span(
        position,
        _hex_id(span, "traceId", "trace_id", where),
        _hex_id(span, "spanId", "span_id", where),
        _hex_id(span, "parentSpanId", "parent_span_id", where),
        _string(span, "name", "name", where),
        _uint64(span, "startTimeUnixNano", "start_time_unix_nano", where),
        _uint64(span, "endTimeUnixNano", "end_time_unix_nano", where),
        _integer(_get(status, "code", "code"), f"{where}.status.code"),
        _string(status, "message", "message", f"{where}.status"),
        _json_attributes(span, where),
        resource,
        scope_name,
    )


def _get(obj: dict[str, Any], camel: str, snake: str) -> Any:
    value = obj.get(camel)
    if value is None and snake != camel:
        value = obj.get(snake)
    return value


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise UndecodableBody(where, f"expected a JSON object, got {_kind(value)}")
    return value


def _list(obj: dict[str, Any], camel: str, snake: str, where: str) -> list[Any]:
    value = _get(obj, camel, snake)
    if value is None:
        return []
    if not isinstance(value, list):
        field = f"{where}.{camel}" if where else camel
        raise UndecodableBody(field, f"expected a JSON array, got {_kind(value)}")
    return value


def _string(obj: dict[str, Any], camel: str, snake: str, where: str) -> str:
    value = _get(obj, camel, snake)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise UndecodableBody(f"{where}.{camel}", f"expected a string, got {_kind(value)}")
    return value


def _hex_id(obj: dict[str, Any], camel: str, snake: str, where: str) -> str:
    value = _string(obj, camel, snake, where)
    if len(value) % 2 or any(c not in "0123456789abcdefABCDEF" for c in value):
        raise UndecodableBody(f"{where}.{camel}", f"expected a hex string, got {value[:64]!r}")
    return value.lower()


def _uint64(obj: dict[str, Any], camel: str, snake: str, where: str) -> int:
    number = _integer(_get(obj, camel, snake), f"{where}.{camel}")
    if number < 0:
        raise UndecodableBody(f"{where}.{camel}", "expected an unsigned integer")
    return number


def _integer(value: Any, where: str) -> int:
    """A proto3 JSON integer: a number or a decimal string; absent is 0."""
    if value is None:
        return 0
    if isinstance(value, bool):
        raise UndecodableBody(where, "expected an integer, got a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise UndecodableBody(where, f"expected an integer, got {value!r:.64}")


def _json_attributes(obj: dict[str, Any], where: str) -> Attributes:
    attributes: Attributes = {}
    for i, pair in enumerate(_list(obj, "attributes", "attributes", where)):
        at = f"{where}.attributes[{i}]"
        pair = _object(pair, at)
        key = _string(pair, "key", "key", at)
        attributes[key] = _json_value(_get(pair, "value", "value"), f"{at}.value", 0)
    return attributes


def _json_value(value: Any, where: str, depth: int) -> Value:
    if value is None:
        return None
    value = _object(value, where)
    if "stringValue" in value or "string_value" in value:
        return _string(value, "stringValue", "string_value", where)
    if "intValue" in value or "int_value" in value:
        return _integer(_get(value, "intValue", "int_value"), f"{where}.intValue")
    if "boolValue" in value or "bool_value" in value:
        flag = _get(value, "boolValue", "bool_value")
        if not isinstance(flag, bool):
            raise UndecodableBody(f"{where}.boolValue", f"expected a boolean, got {_kind(flag)}")
        return flag
    if "doubleValue" in value or "double_value" in value:
        return _double(_get(value, "doubleValue", "double_value"), f"{where}.doubleValue")
    if depth < _MAX_DEPTH and ("arrayValue" in value or "array_value" in value):
        array = _object(_get(value, "arrayValue", "array_value") or {}, f"{where}.arrayValue")
        items = _list(array, "values", "values", f"{where}.arrayValue")
        return [
            _json_value(v, f"{where}.arrayValue.values[{i}]", depth + 1)
            for i, v in enumerate(items)
        ]
    if depth < _MAX_DEPTH and ("kvlistValue" in value or "kvlist_value" in value):
        kvlist = _object(_get(value, "kvlistValue", "kvlist_value") or {}, f"{where}.kvlistValue")
        result: dict[str, Value] = {}
        for i, pair in enumerate(_list(kvlist, "values", "values", f"{where}.kvlistValue")):
            at = f"{where}.kvlistValue.values[{i}]"
            pair = _object(pair, at)
            result[_string(pair, "key", "key", at)] = _json_value(
                _get(pair, "value", "value"), f"{at}.value", depth + 1
            )
        return result
    if "bytesValue" in value or "bytes_value" in value:
        raw = _string(value, "bytesValue", "bytes_value", where)
        try:
            return base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise UndecodableBody(f"{where}.bytesValue", "expected base64") from None
    return None


def _double(value: Any, where: str) -> float:
    if isinstance(value, bool):
        raise UndecodableBody(where, "expected a number, got a boolean")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            pass
        else:
            if not math.isnan(number) or value.strip().lower() == "nan":
                return number
    raise UndecodableBody(where, f"expected a number, got {value!r:.64}")


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    return names.get(type(value), "a number")
