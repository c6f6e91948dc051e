"""What `POST /v1/ingest` accepts: a whole batch, validated before anything is written."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from service.errors import FieldError, InvalidBatch, first_validation_error

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


def _metadata_strings(value: dict[str, Any]) -> dict[str, str]:
    """Metadata is stored as Map(String, String); non-string values are kept as JSON."""
    out: dict[str, str] = {}
    for key, item in value.items():
        if isinstance(item, str):
            out[key] = item
            continue
        try:
            out[key] = orjson.dumps(item).decode()
        except TypeError as exc:  # e.g. an integer beyond 64 bits: a 400, never a 500
            raise FieldError(key, str(exc)) from None
    return out


# Times without an offset are taken as UTC. The writer converts them when it builds the
# insert columns rather than here: a Python validator per timestamp costs a fifth of the
# whole validation on the ingest hot path.
UtcDatetime = datetime
Identifier = Annotated[str, Field(min_length=1, max_length=512)]
Metadata = Annotated[dict[str, Any], AfterValidator(_metadata_strings)]


class TraceIn(BaseModel):
    """One trace row; sending the same id again replaces it (newest wins)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Identifier
    project_id: Identifier | None = None
    name: str = Field("", max_length=1024)
    timestamp: UtcDatetime
    user_id: str = Field("", max_length=512)
    session_id: str = Field("", max_length=512)
    environment: str = Field("default", min_length=1, max_length=128)
    tags: list[Annotated[str, Field(max_length=256)]] = Field(default_factory=list)
    metadata: Metadata = Field(default_factory=dict)


class ObservationIn(BaseModel):
    """One observation (span, generation, tool call, ...) of a trace."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Identifier
    trace_id: Identifier
    project_id: Identifier | None = None
    parent_id: str = Field("", max_length=512)
    type: ObservationType
    name: str = Field("", max_length=1024)
    start_time: UtcDatetime
    end_time: UtcDatetime | None = None
    completion_start_time: UtcDatetime | None = None
    model: str = Field("", max_length=256)
    provider: str = Field("", max_length=256)
    input_tokens: int = Field(0, ge=0, le=2**53)
    output_tokens: int = Field(0, ge=0, le=2**53)
    cost: float = Field(0.0, ge=0, allow_inf_nan=False)
    status: Literal["ok", "error"] = "ok"
    metadata: Metadata = Field(default_factory=dict)


class IngestBatch(BaseModel):
    """A batch of traces and observations, written all together or not at all."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    traces: list[TraceIn] = Field(default_factory=list)
    observations: list[ObservationIn] = Field(default_factory=list)


def parse_batch(body: bytes) -> IngestBatch:
    """Validate a JSON body as one batch; raises `InvalidBatch` naming the first bad field."""
    try:
        # Strict: a JSON value must already have its type (`"cost": false`, `"input_tokens":
        # "5"` or a numeric `timestamp` are a 400, as the OpenAPI document says).
        return IngestBatch.model_validate_json(body, strict=True)
    except ValidationError as exc:
        raise InvalidBatch(*first_validation_error(exc)) from None
