"""The ingest hot path: decode and validate a JSON batch with msgspec, answer like pydantic.

msgspec decodes straight into typed structs several times faster than pydantic validates,
and the structs below carry the constraints of `service.ingest.models`. The models stay
the authority: whenever the fast path rejects a body, or cannot be sure it agrees with
them, the body is validated by the models (strictly, as JSON bodies always are), which
either raise the error the caller sees (message and field path exactly as before) or, when
they accept what msgspec refused (a time spelled in a form only pydantic reads, ...),
produce the records. Both are strict: a JSON value must already have its type (`"5"` is
no integer, `false` no cost, a number no time).

Where the two could disagree on an accepted body, the fast path steps aside:
* fractional seconds past the sixth digit: msgspec rounds them, pydantic truncates;
  bodies holding such a time (or a `\\u` escape of a digit, `.`, `Z`, a sign or a quote,
  which would hide one from that check) go to the models;
* the time window and metadata rules are checked after decoding; a body breaking them
  goes to the models, whose validators name the field.
`tests/test_ingest_decode.py` checks with hypothesis that an accepted body yields the same
columns either way, and that a rejected one carries the models' message.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from service.errors import FieldError
from service.ingest.models import (
    MAX_COST,
    MAX_ENVIRONMENT_LENGTH,
    MAX_ID_LENGTH,
    MAX_LABEL_LENGTH,
    MAX_NAME_LENGTH,
    MAX_TOKENS,
    ObservationType,
    validate_batch,
)
from service.ingest.rows import Batch, batch_from_records

Identifier = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_LENGTH)]
IdText = Annotated[str, msgspec.Meta(max_length=MAX_ID_LENGTH)]
Name = Annotated[str, msgspec.Meta(max_length=MAX_NAME_LENGTH)]
Label = Annotated[str, msgspec.Meta(max_length=MAX_LABEL_LENGTH)]
Environment = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ENVIRONMENT_LENGTH)]
Tokens = Annotated[int, msgspec.Meta(ge=0, le=MAX_TOKENS)]
Cost = Annotated[float, msgspec.Meta(ge=0, le=MAX_COST)]


class TraceStruct(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True, gc=False):
    """`TraceIn` for msgspec (same fields, defaults and constraints)."""

    id: Identifier
    project_id: Identifier | None = None
    name: Name = ""
    timestamp: datetime
    user_id: IdText = ""
    session_id: IdText = ""
    environment: Environment = "default"
    tags: list[Label] = []
    metadata: dict[str, Any] = {}


class ObservationStruct(
    msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True, gc=False
):
    """`ObservationIn` for msgspec (same fields, defaults and constraints)."""

    id: Identifier
    trace_id: Identifier
    project_id: Identifier | None = None
    parent_id: IdText = ""
    type: ObservationType
    name: Name = ""
    start_time: datetime
    end_time: datetime | None = None
    completion_start_time: datetime | None = None
    model: Label = ""
    provider: Label = ""
    input_tokens: Tokens = 0
    output_tokens: Tokens = 0
    cost: Cost = 0.0
    status: Literal["ok", "error"] = "ok"
    metadata: dict[str, Any] = {}


class BatchStruct(msgspec.Struct, forbid_unknown_fields=True, frozen=True, gc=False):
    """`IngestBatch` for msgspec."""

    traces: list[TraceStruct] = []
    observations: list[ObservationStruct] = []


_DECODER = msgspec.json.Decoder(BatchStruct)
# A fraction of a second with 7+ digits ending a time string (before Z, an offset, the
# closing quote or an escape). Costs never match: a JSON number ends in , } ] e E or space.
_LONG_FRACTION = re.compile(rb'\.[0-9]{7,}[Zz+\-"\\]')
# A \u escape of a character that pattern looks for (" + - . 0-9 Z \\ z) would hide it.
_HIDING_ESCAPE = re.compile(rb"\\u00(?:2[2bBdDeE]|3[0-9]|5[aAcC]|7[aA])")


def parse_batch(body: bytes) -> Batch:
    """Validate a JSON ingest body; raises `InvalidBatch` with the models' message."""
    batch = fast_batch(body)
    if batch is not None:
        return batch
    return model_batch(body)


def fast_batch(body: bytes) -> Batch | None:
    """The batch when the msgspec path can vouch for it, else None (ask the models)."""
    if _LONG_FRACTION.search(body) is not None:
        return None
    if b"\\u" in body and _HIDING_ESCAPE.search(body) is not None:
        return None
    try:
        decoded = _DECODER.decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    try:
        batch = batch_from_records(decoded.traces, decoded.observations)
    except FieldError:
        return None
    return batch if batch.in_window() else None


def model_batch(body: bytes) -> Batch:
    """The batch as the pydantic models validate it (the authority on every error)."""
    validated = validate_batch(body)
    return batch_from_records(validated.traces, validated.observations)
