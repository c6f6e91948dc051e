"""OTLP spans → the records `/v1/ingest` takes: one span is one observation, and the root span
of a trace (with the trace-level attributes of its request) is the trace row.

Pure functions over decoded spans; the README's "OTLP mapping" table documents every rule
here. The records are plain dicts that the caller validates with `ObservationIn`/`TraceIn`,
so both ingest paths store identical rows under identical bounds.

Trace rows are upsert-by-id (newest wins, whole row), and OTLP has no trace record, so:

* a trace row is written only from a request that carries the trace's root span (no parent);
  its fields come from the root span first, then from the other spans of the same trace in
  that request;
* trace-level attributes (`user.id`, `session.id`, `langfuse.trace.*`, ...) on any other span
  stay in that span's observation metadata under their own names, unless the root span of
  the same request carries the same value: a value that cannot reach the trace row is still
  stored, never dropped;
* a request without the root writes no trace row, so it can never overwrite the root's.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from service.otlp.decode import STATUS_ERROR, Attributes, Span, Value

# Bounds on what one span stores in metadata (the models leave metadata unbounded).
MAX_METADATA_KEYS = 64
MAX_METADATA_KEY_CHARS = 256
MAX_METADATA_VALUE_CHARS = 2048
TRUNCATION_MARK = "…"
DROPPED_KEY = "otlp.dropped_attributes"
TRUNCATED_KEY = "otlp.truncated_attributes"

# First present wins, in this order, for each observation column.
TYPE_KEY = "langfuse.observation.type"
OPENINFERENCE_KIND = "openinference.span.kind"
GENAI_OPERATION = "gen_ai.operation.name"
MODEL_KEYS = (
    "langfuse.observation.model.name",
    "gen_ai.response.model",
    "gen_ai.request.model",
    "llm.model_name",
)
PROVIDER_KEYS = ("gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system")
USAGE_DETAILS = "langfuse.observation.usage_details"
COST_DETAILS = "langfuse.observation.cost_details"
INPUT_TOKEN_KEYS = (
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.prompt_tokens",
    "llm.token_count.prompt",
)
OUTPUT_TOKEN_KEYS = (
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.completion_tokens",
    "llm.token_count.completion",
)
COST_KEYS = ("gen_ai.usage.cost", "llm.cost.total")
COMPLETION_START = "langfuse.observation.completion_start_time"
TIME_TO_FIRST_CHUNK = "gen_ai.response.time_to_first_chunk"
LEVEL_KEY = "langfuse.observation.level"
OBSERVATION_METADATA = "langfuse.observation.metadata"

# Trace-level attributes: the trace row's fields when on the root span.
TRACE_NAME_KEY = "langfuse.trace.name"
USER_KEYS = ("user.id", "langfuse.user.id")
SESSION_KEYS = ("session.id", "langfuse.session.id")
TAGS_KEY = "langfuse.trace.tags"
ENVIRONMENT_KEY = "langfuse.environment"
TRACE_METADATA = "langfuse.trace.metadata"
TRACE_KEYS = frozenset(
    (TRACE_NAME_KEY, *USER_KEYS, *SESSION_KEYS, TAGS_KEY, ENVIRONMENT_KEY, TRACE_METADATA)
)
RESOURCE_ENVIRONMENT_KEYS = (
    ENVIRONMENT_KEY,  # the Langfuse SDK (v4+) sets it on the resource
    "deployment.environment.name",
    "deployment.environment",
)
SERVICE_NAME = "service.name"

# Prompt / completion / document payloads: large, and not analytics. Never stored.
PAYLOAD_KEYS = frozenset(
    (
        "gen_ai.input.messages",
        "gen_ai.output.messages",
        "gen_ai.system_instructions",
        "gen_ai.tool.definitions",
        "gen_ai.tool.call.arguments",
        "gen_ai.tool.call.result",
        "gen_ai.prompt",
        "gen_ai.completion",
        "langfuse.observation.input",
        "langfuse.observation.output",
        "input.value",
        "output.value",
        "llm.prompts",
        "llm.prompt_template.template",
        "llm.prompt_template.variables",
        "llm.tools",
    )
)
PAYLOAD_PREFIXES = (
    "gen_ai.prompt.",
    "gen_ai.completion.",
    "llm.input_messages.",
    "llm.output_messages.",
    "llm.prompts.",
    "llm.tools.",
    "retrieval.documents.",
    "reranker.input_documents.",
    "reranker.output_documents.",
    "embedding.embeddings.",
    "message.content",
)

OPENINFERENCE_TYPES = {
    "LLM": "generation",
    "TOOL": "tool",
    "AGENT": "agent",
    "CHAIN": "chain",
    "RETRIEVER": "retriever",
    "EMBEDDING": "embedding",
    "EVALUATOR": "evaluator",
    "GUARDRAIL": "guardrail",
}
GENAI_OPERATION_TYPES = {
    "chat": "generation",
    "text_completion": "generation",
    "generate_content": "generation",
    "embeddings": "embedding",
    "execute_tool": "tool",
    "invoke_agent": "agent",
    "create_agent": "agent",
}

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NO_PARENT = ("", "0000000000000000")
_RESOURCE = "resource:"
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16

# How an attribute key is treated in metadata (see `_classify`).
_KEEP, _PAYLOAD, _TRACE, _OBS_META, _TRACE_META = range(5)


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why one span was not written: the span field at fault and the message."""

    span: Span
    field: str
    message: str

    def describe(self) -> str:
        where = (
            self.field
            if self.field.startswith("resourceSpans[")
            else (f"{self.span.path}.{self.field}")
        )
        return (
            f"{where}: {self.message} "
            f"(spanId {self.span.span_id or '-'}, traceId {self.span.trace_id or '-'})"
        )


@dataclass(frozen=True, slots=True)
class MappedTrace:
    """A trace row and the root span it comes from."""

    record: dict[str, Any]
    root: Span
    sources: dict[str, tuple[Span, str]]  # trace field -> (span, attribute it came from)

    def source(self, field: str) -> str:
        """Where a trace field was read from, as a path into the request (for messages)."""
        found = self.sources.get(field)
        if found is None:
            return f"{self.root.path}.name" if field == "name" else f"{self.root.path}.attributes"
        span, key = found
        if key.startswith(_RESOURCE):
            resource = span.path.split(".", 1)[0]
            return f"{resource}.resource.attributes[{key.removeprefix(_RESOURCE)!r}]"
        return f"{span.path}.attributes[{key!r}]"


def check_span(span: Span) -> Rejection | None:
    """Ids and start time a span must have before it can be mapped at all."""
    if len(span.trace_id) != 32 or span.trace_id == _ZERO_TRACE:
        return Rejection(span, "traceId", "must be 16 bytes and not all zero")
    if len(span.span_id) != 16 or span.span_id == _ZERO_SPAN:
        return Rejection(span, "spanId", "must be 8 bytes and not all zero")
    if span.parent_span_id and len(span.parent_span_id) != 16:
        return Rejection(span, "parentSpanId", "must be 8 bytes or empty")
    if span.start_ns <= 0:
        return Rejection(span, "startTimeUnixNano", "must be set")
    return None


def nanos_to_datetime(nanos: int) -> datetime:
    """Unix nanoseconds → aware UTC datetime (microsecond precision; storage keeps ms)."""
    return _EPOCH + timedelta(microseconds=nanos // 1000)


# Column slots of the single attribute pass: key -> (slot, rank); the lowest rank present wins.
_TYPE, _MODEL, _PROVIDER, _INPUT, _OUTPUT, _COST, _FIRST_TOKEN = range(7)
_SOURCES: dict[str, tuple[int, int]] = {
    TYPE_KEY: (_TYPE, 0),
    **{key: (_MODEL, rank) for rank, key in enumerate(MODEL_KEYS)},
    **{key: (_PROVIDER, rank) for rank, key in enumerate(PROVIDER_KEYS)},
    **{key: (_INPUT, rank) for rank, key in enumerate(INPUT_TOKEN_KEYS)},
    **{key: (_OUTPUT, rank) for rank, key in enumerate(OUTPUT_TOKEN_KEYS)},
    **{key: (_COST, rank) for rank, key in enumerate(COST_KEYS)},
    COMPLETION_START: (_FIRST_TOKEN, 0),
    TIME_TO_FIRST_CHUNK: (_FIRST_TOKEN, 1),
}


def map_observation(span: Span, *, root_attributes: Attributes | None) -> dict[str, Any]:
    """The `ObservationIn` record of one span (validated by the caller).

    `root_attributes`: the attributes of the root span whose trace row this request writes
    (None when it writes none for this trace); trace-level attributes equal to the root's
    went to the trace row and are not repeated in metadata.

    One pass over the attributes picks each column's source by rank and files everything
    else into metadata: this runs once per span on the ingest hot path.
    """
    attrs = span.attributes
    metadata: dict[str, str] = {}
    service = span.resource.attributes.get(SERVICE_NAME)
    if service is not None:
        metadata[SERVICE_NAME] = _metadata_text(service)
    if span.scope_name:
        metadata["otel.scope.name"] = span.scope_name
    if span.status_message:
        metadata["otel.status_message"] = span.status_message
    chosen: dict[int, tuple[int, str, Value]] = {}
    for key, value in attrs.items():
        if value is None:
            continue
        source = _SOURCES.get(key)
        if (
            source is not None
            and value != ""
            and (source[0] != _FIRST_TOKEN or _usable_first_token(key, value))
        ):
            slot, rank = source
            current = chosen.get(slot)
            if current is None or rank < current[0]:
                chosen[slot] = (rank, key, value)
                if current is None:
                    continue
                key, value = current[1], current[2]  # the displaced candidate is kept
        kind = _KINDS.get(key)
        if kind is None:
            kind = _classify(key)
        if kind == _KEEP:
            metadata[key] = value if type(value) is str else _metadata_text(value)
        elif kind == _OBS_META:
            metadata[key[_OBS_META_CUT:] or "metadata"] = _metadata_text(_unwrap(value))
        elif kind != _PAYLOAD and (root_attributes is None or root_attributes.get(key) != value):
            # A trace-level value the trace row does not carry: kept here, never lost.
            metadata[key] = value if type(value) is str else _metadata_text(value)
    if metadata and (
        len(metadata) > MAX_METADATA_KEYS
        or max(map(len, metadata)) > MAX_METADATA_KEY_CHARS
        or max(map(len, metadata.values())) > MAX_METADATA_VALUE_CHARS
    ):
        metadata = _bounded(metadata)

    start = _EPOCH + timedelta(microseconds=span.start_ns // 1000)
    explicit = chosen.get(_TYPE)
    record: dict[str, Any] = {
        "id": span.span_id,
        "trace_id": span.trace_id,
        "parent_id": "" if span.parent_span_id in _NO_PARENT else span.parent_span_id,
        "type": explicit[2] if explicit is not None else _implied_type(attrs),
        "name": span.name,
        "start_time": start,
        "end_time": (
            _EPOCH + timedelta(microseconds=span.end_ns // 1000) if span.end_ns > 0 else None
        ),
        "status": "error" if _is_error(span) else "ok",
        "metadata": metadata,
    }
    if chosen or USAGE_DETAILS in attrs or COST_DETAILS in attrs:
        _columns_from(chosen, attrs, start, record)
    return record


def _columns_from(
    chosen: dict[int, tuple[int, str, Value]],
    attrs: Attributes,
    start: datetime,
    record: dict[str, Any],
) -> None:
    """Model, provider, tokens, cost and first token from the chosen attributes."""
    picked = {slot: value for slot, (_, _, value) in chosen.items()}
    if _MODEL in picked:
        record["model"] = _text(picked[_MODEL])
    if _PROVIDER in picked:
        record["provider"] = _text(picked[_PROVIDER])
    input_tokens = picked.get(_INPUT)
    output_tokens = picked.get(_OUTPUT)
    if USAGE_DETAILS in attrs:  # Langfuse usage details win over the attributes
        usage = _json_object(attrs[USAGE_DETAILS]) or {}
        if usage.get("input") is not None:
            input_tokens = usage["input"]
        if usage.get("output") is not None:
            output_tokens = usage["output"]
    if input_tokens is not None:
        record["input_tokens"] = _count(input_tokens)
    if output_tokens is not None:
        record["output_tokens"] = _count(output_tokens)
    cost = picked.get(_COST)
    if COST_DETAILS in attrs:
        total = _details_total(_json_object(attrs[COST_DETAILS]))
        cost = cost if total is None else total
    if cost is not None:
        record["cost"] = cost
    first_token = chosen.get(_FIRST_TOKEN)
    if first_token is not None:
        record["completion_start_time"] = _first_token(first_token[1], first_token[2], start)


def map_traces(spans: Iterable[Span]) -> list[MappedTrace]:
    """One trace row per trace whose root span is among `spans` (earliest root wins)."""
    spans = list(spans)
    roots: dict[str, Span] = {}
    for span in spans:
        if span.parent_span_id in _NO_PARENT:
            current = roots.get(span.trace_id)
            if current is None or span.start_ns < current.start_ns:
                roots[span.trace_id] = span
    if not roots:
        return []
    members: dict[str, list[Span]] = {trace_id: [] for trace_id in roots}
    for span in spans:
        group = members.get(span.trace_id)
        if group is not None:
            group.append(span)
    return [_trace_row(root, members[trace_id]) for trace_id, root in roots.items()]


def observation_source(span: Span, field: str) -> str:
    """The span field an observation field was read from (for error messages)."""
    direct = {
        "id": "spanId",
        "trace_id": "traceId",
        "parent_id": "parentSpanId",
        "name": "name",
        "start_time": "startTimeUnixNano",
        "end_time": "endTimeUnixNano",
        "status": "status",
    }
    if field in direct:
        return direct[field]
    candidates: dict[str, tuple[str, ...]] = {
        "type": (TYPE_KEY, OPENINFERENCE_KIND, GENAI_OPERATION),
        "model": MODEL_KEYS,
        "provider": PROVIDER_KEYS,
        "input_tokens": (USAGE_DETAILS, *INPUT_TOKEN_KEYS),
        "output_tokens": (USAGE_DETAILS, *OUTPUT_TOKEN_KEYS),
        "cost": (COST_DETAILS, *COST_KEYS),
        "completion_start_time": (COMPLETION_START, TIME_TO_FIRST_CHUNK),
    }
    for key in candidates.get(field, ()):
        if key in span.attributes:
            return f"attributes[{key!r}]"
    return "attributes"


# Observation fields --------------------------------------------------------------------------


def _implied_type(attrs: Attributes) -> str:
    """The type when no explicit `langfuse.observation.type` is given."""
    kind = attrs.get(OPENINFERENCE_KIND)
    if isinstance(kind, str):
        return OPENINFERENCE_TYPES.get(kind.upper(), "span")
    operation = attrs.get(GENAI_OPERATION)
    if isinstance(operation, str):
        return GENAI_OPERATION_TYPES.get(operation.lower(), "span")
    return "span"


def _usable_first_token(key: str, value: Value) -> bool:
    """A completion start is text; a time to first chunk must be a non-negative number."""
    if key == COMPLETION_START:
        return isinstance(value, str)
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


def _first_token(key: str, value: Value, start: datetime) -> Any:
    if key == COMPLETION_START:
        # The Langfuse SDK JSON-encodes it: "\"2026-11-22T10:00:00.450000+00:00\"".
        return _unwrap(value)
    if isinstance(value, int | float):
        try:
            return start + timedelta(seconds=value)
        except OverflowError:
            pass
    return value  # validation rejects it, naming the attribute


def _is_error(span: Span) -> bool:
    if span.status_code == STATUS_ERROR:
        return True
    level = span.attributes.get(LEVEL_KEY)
    return isinstance(level, str) and level.upper() == "ERROR"


def _text(value: Value) -> Any:
    """Scalars become text; anything else goes to validation as-is (and fails there)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return _metadata_text(value)
    return value


def _count(value: Any) -> Any:
    """A token count: integers, integral floats and digit strings; else validation rejects."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return value


def _json_object(value: Value) -> dict[str, Any] | None:
    """A JSON object carried as a string attribute (Langfuse's usage/cost details)."""
    if isinstance(value, dict):
        return value
    if not isinstance(value, str):
        return None
    try:
        decoded = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    return decoded if isinstance(decoded, dict) else None


def _details_total(details: dict[str, Any] | None) -> Any:
    """Cost details: their `total`, else the sum of their numeric values."""
    if not details:
        return None
    if "total" in details:
        return details["total"]
    numbers = [
        v for v in details.values() if isinstance(v, int | float) and not isinstance(v, bool)
    ]
    return sum(numbers) if numbers else None


# Metadata ------------------------------------------------------------------------------------


_KINDS: dict[str, int] = {}  # memo of _classify, bounded
_OBS_META_CUT = len(OBSERVATION_METADATA) + 1


def _classify(key: str) -> int:
    kind = _kind_of(key)
    if len(_KINDS) < 8192:
        _KINDS[key] = kind
    return kind


def _kind_of(key: str) -> int:
    if key in PAYLOAD_KEYS or key.startswith(PAYLOAD_PREFIXES):
        return _PAYLOAD
    if key == OBSERVATION_METADATA or key.startswith(OBSERVATION_METADATA + "."):
        return _OBS_META
    if key == TRACE_METADATA or key.startswith(TRACE_METADATA + "."):
        return _TRACE_META
    if key in TRACE_KEYS:
        return _TRACE
    return _KEEP


def _bounded(metadata: dict[str, str]) -> dict[str, str]:
    """The first MAX_METADATA_KEYS keys that fit, values cut to size, and what that cost."""
    kept: dict[str, str] = {}
    dropped = truncated = 0
    for key, text in metadata.items():
        if len(kept) >= MAX_METADATA_KEYS or len(key) > MAX_METADATA_KEY_CHARS:
            dropped += 1
            continue
        if len(text) > MAX_METADATA_VALUE_CHARS:
            text = text[: MAX_METADATA_VALUE_CHARS - len(TRUNCATION_MARK)] + TRUNCATION_MARK
            truncated += 1
        kept[key] = text
    if dropped:
        kept[DROPPED_KEY] = str(dropped)
    if truncated:
        kept[TRUNCATED_KEY] = str(truncated)
    return kept


def _metadata_text(value: Value) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return orjson.dumps(value, default=_json_default).decode()


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    raise TypeError


def _unwrap(value: Value) -> Value:
    """Langfuse JSON-encodes metadata values: '"x"' → 'x'; other JSON stays as its text."""
    if isinstance(value, str) and value.startswith('"'):
        try:
            decoded = orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
        if isinstance(decoded, str):
            return decoded
    return value


# Trace rows ----------------------------------------------------------------------------------


def _trace_row(root: Span, spans: list[Span]) -> MappedTrace:
    """The trace row: root span first, then the trace's other spans of the request."""
    ordered = [root, *(s for s in spans if s is not root)]
    sources: dict[str, tuple[Span, str]] = {}

    def pick(field: str, keys: tuple[str, ...]) -> Value:
        for span in ordered:
            for key in keys:
                value = span.attributes.get(key)
                if value is not None and value != "":
                    sources[field] = (span, key)
                    return value
        return None

    record: dict[str, Any] = {
        "id": root.trace_id,
        "timestamp": nanos_to_datetime(root.start_ns),
    }
    name = pick("name", (TRACE_NAME_KEY,))
    record["name"] = _text(name) if name is not None else root.name
    for field, keys in (("user_id", USER_KEYS), ("session_id", SESSION_KEYS)):
        value = pick(field, keys)
        if value is not None:
            record[field] = _text(value)
    environment = pick("environment", (ENVIRONMENT_KEY,))
    if environment is None:
        for key in RESOURCE_ENVIRONMENT_KEYS:
            environment = root.resource.attributes.get(key)
            if environment is not None and environment != "":
                sources["environment"] = (root, _RESOURCE + key)
                break
    if environment is not None and environment != "":
        record["environment"] = _text(environment)
    tags = _tags(ordered)
    if tags:
        record["tags"] = tags
        sources["tags"] = (root, TAGS_KEY)
    record["metadata"] = _trace_metadata(root)
    return MappedTrace(record, root, sources)


def _tags(spans: list[Span]) -> list[Any]:
    tags: dict[Any, None] = {}
    for span in spans:
        value = span.attributes.get(TAGS_KEY)
        if value is None:
            continue
        if isinstance(value, str):
            decoded: Any = value
            if value.startswith("["):
                try:
                    decoded = orjson.loads(value)
                except orjson.JSONDecodeError:
                    decoded = value
            value = decoded if isinstance(decoded, list) else [value]
        if isinstance(value, list):
            for tag in value:
                tags[_text(tag) if isinstance(tag, str | int | float) else tag] = None
    return list(tags)


def _trace_metadata(root: Span) -> dict[str, str]:
    """The root's resource attributes and its `langfuse.trace.metadata.*` (unquoted).

    Only the root's: on other spans these attributes stay in their observation metadata.
    """
    metadata: dict[str, str] = {}
    for key, value in root.resource.attributes.items():
        if key not in RESOURCE_ENVIRONMENT_KEYS and value is not None:
            metadata[key] = _metadata_text(value)
    for key, value in root.attributes.items():
        if value is not None and key.startswith(TRACE_METADATA) and _classify(key) == _TRACE_META:
            metadata[key[len(TRACE_METADATA) + 1 :] or "metadata"] = _metadata_text(_unwrap(value))
    return _bounded(metadata)
