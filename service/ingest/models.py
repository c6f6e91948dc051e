"""What `POST /v1/ingest` accepts: the authoritative pydantic models and their limits.

These models define the contract and every error message. The hot path decodes with the
msgspec structs of `service.ingest.decode`, which carry the same constraints; whenever
those reject a body (or might disagree with these models), the body is validated here, so
a caller always sees the message and field path these models produce.

Limits (documented in the README, "Ingest"):

* `input_tokens`, `output_tokens`: integers 0 .. 1,000,000,000 per observation. The largest
  model contexts are ~10^7 tokens, so this leaves 100x headroom. Trace summaries add them
  up in Python; the rollup ledger sums in Int128 (migration 0011), which no volume of them
  can wrap (it would take 10^29 maximal observations).
* `cost`: a finite number 0 .. 1,000,000,000 per observation. Float64 sums of such values
  cannot reach infinity (it would take 10^299 observations), so totals stay JSON numbers;
  the ledger's Int128 picodollars (<= 10^21 each) need 10^17 of them to wrap.
* times: inside the window of `service.times.storable` (1970-01-01 up to 2100-01-01 UTC),
  which every table and hour/day bucket can hold; so one duration is at most ~4.1 x 10^12
  ms, and the ledger's Int128 sums of them cannot wrap either.
* metadata: values that are not strings are stored as compact JSON text; non-finite
  numbers (`NaN`, `Infinity`, `1e400`) and integers beyond 64 bits are rejected.

JSON bodies are validated strictly (`validate_batch`): a value must already have its JSON
type (`"cost": false`, `"input_tokens": "5"` and numeric times are a 400). Python callers
(OTLP's mapping) validate dicts with the same models in the default mode.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any, Literal

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from service.errors import FieldError, InvalidBatch, first_validation_error
from service.times import storable

ObservationType = Literal[
    "span",
    "generation",
    "event",
    "tool",
    "agent",
    "chain",
    "retriever",
    "embedding",
    "evaluator",
    "guardrail",
]

MAX_TOKENS = 1_000_000_000
MAX_COST = 1_000_000_000
MAX_ID_LENGTH = 512
MAX_NAME_LENGTH = 1024
MAX_LABEL_LENGTH = 256  # model, provider, each tag
MAX_ENVIRONMENT_LENGTH = 128
# Metadata integers JSON text carries faithfully: int64 and uint64 (what orjson writes).
INT64_MIN = -(2**63)
UINT64_MAX = 2**64 - 1
BEYOND_64_BITS = "integer beyond 64 bits (send it as a string)"


def metadata_value(value: Any) -> str:
    """One metadata value as stored in Map(String, String): strings as they are, else JSON.

    ValueError for what JSON text cannot carry faithfully: non-finite numbers, and integers
    beyond 64 bits (most JSON readers round them; send such a number as a string).
    """
    if isinstance(value, str):
        return value
    if type(value) is int:
        if not INT64_MIN <= value <= UINT64_MAX:
            raise ValueError(BEYOND_64_BITS)
        return str(value)
    if type(value) is float and not math.isfinite(value):
        raise ValueError("must be a finite number")
    try:
        text = orjson.dumps(value).decode()
    except orjson.JSONEncodeError:  # a nested integer beyond 64 bits
        raise ValueError(BEYOND_64_BITS) from None
    if "null" in text and _has_non_finite(value):  # orjson writes NaN and inf as null
        raise ValueError("must not contain non-finite numbers")
    return text


def _has_non_finite(value: Any) -> bool:
    if type(value) is float:
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_has_non_finite(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_non_finite(v) for v in value)
    return False


def metadata_strings(value: dict[str, Any]) -> dict[str, str]:
    """Metadata as Map(String, String); a bad value raises `FieldError` naming its key."""
    strings: dict[str, str] = {}
    for key, item in value.items():
        try:
            strings[key] = metadata_value(item)
        except ValueError as exc:
            raise FieldError(key, str(exc)) from None
    return strings


# Times without an offset are taken as UTC; the writer converts them to DateTime64(3) ticks.
EventTime = Annotated[datetime, AfterValidator(storable)]
Identifier = Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH)]
Metadata = Annotated[dict[str, Any], AfterValidator(metadata_strings)]
Tokens = Annotated[int, Field(ge=0, le=MAX_TOKENS)]


class TraceIn(BaseModel):
    """One trace row; sending the same id again replaces it (newest wins)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Identifier
    project_id: Identifier | None = None
    name: str = Field("", max_length=MAX_NAME_LENGTH)
    timestamp: EventTime
    user_id: str = Field("", max_length=MAX_ID_LENGTH)
    session_id: str = Field("", max_length=MAX_ID_LENGTH)
    environment: str = Field("default", min_length=1, max_length=MAX_ENVIRONMENT_LENGTH)
    tags: list[Annotated[str, Field(max_length=MAX_LABEL_LENGTH)]] = Field(default_factory=list)
    metadata: Metadata = Field(default_factory=dict)


class ObservationIn(BaseModel):
    """One observation (span, generation, tool call, ...) of a trace."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Identifier
    trace_id: Identifier
    project_id: Identifier | None = None
    parent_id: str = Field("", max_length=MAX_ID_LENGTH)
    type: ObservationType
    name: str = Field("", max_length=MAX_NAME_LENGTH)
    start_time: EventTime
    end_time: EventTime | None = None
    completion_start_time: EventTime | None = None
    model: str = Field("", max_length=MAX_LABEL_LENGTH)
    provider: str = Field("", max_length=MAX_LABEL_LENGTH)
    input_tokens: Tokens = 0
    output_tokens: Tokens = 0
    cost: float = Field(0.0, ge=0, le=MAX_COST, allow_inf_nan=False)
    status: Literal["ok", "error"] = "ok"
    metadata: Metadata = Field(default_factory=dict)


class IngestBatch(BaseModel):
    """A batch of traces and observations, written all together or not at all."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    traces: list[TraceIn] = Field(default_factory=list)
    observations: list[ObservationIn] = Field(default_factory=list)


def validate_batch(body: bytes) -> IngestBatch:
    """Validate a JSON body with the models; raises `InvalidBatch` naming the first bad field."""
    try:
        # Strict: a JSON value must already have its type (`"cost": false`, `"input_tokens":
        # "5"` or a numeric `timestamp` are a 400, as the OpenAPI document says).
        return IngestBatch.model_validate_json(body, strict=True)
    except ValidationError as exc:
        raise InvalidBatch(*first_validation_error(exc)) from None
