"""Duration definitions: what `POST /v1/duration-definitions` accepts, validated whole.

A definition names the time between two anchors. An anchor is the trace's start or end, or
one observation picked by type and/or name (`first` or `last` by start time) read at its
`start`, `end` or `first_token` (completion_start_time). A definition that could never
produce a value is refused here with a 400 naming the field, rather than stored and left to
produce NULL for every trace.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from service.errors import FieldError, InvalidDefinition, first_validation_error
from service.ingest.models import ObservationType

# Only generations carry completion_start_time (the first streamed token); a first_token
# edge on any other type could never match.
FIRST_TOKEN_TYPES = frozenset({"generation"})

Slug = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]


class TraceAnchor(BaseModel):
    """The trace's first start (`trace_start`) or last end (`trace_end`) over live rows."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    anchor: Literal["trace_start", "trace_end"]


class ObservationAnchor(BaseModel):
    """One observation matched by type and/or name, picked first or last by start time."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    anchor: Literal["observation"]
    type: ObservationType | None = None
    name: Annotated[str, Field(min_length=1, max_length=1024)] | None = None
    pick: Literal["first", "last"]
    edge: Literal["start", "end", "first_token"]

    @model_validator(mode="after")
    def _can_match(self) -> ObservationAnchor:
        if self.type is None and self.name is None:
            raise FieldError("type", "an observation anchor needs a type and/or a name")
        if (
            self.edge == "first_token"
            and self.type is not None
            and self.type not in FIRST_TOKEN_TYPES
        ):
            raise FieldError(
                "edge",
                f"first_token never exists on type {self.type!r}: only generations have "
                "a completion_start_time",
            )
        return self

    def selector(self) -> tuple[str | None, str | None, str]:
        """Which observation this anchor picks, regardless of the edge read."""
        return (self.type, self.name, self.pick)

    def describe(self) -> str:
        """`observation of type generation named 'llm'`, for reasons."""
        parts = ["observation"]
        if self.type is not None:
            parts.append(f"of type {self.type}")
        if self.name is not None:
            parts.append(f"named {self.name!r}")
        return " ".join(parts)


Anchor = Annotated[TraceAnchor | ObservationAnchor, Field(discriminator="anchor")]


class DurationSpec(BaseModel):
    """The two anchors of a definition (what `PUT` replaces)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: Anchor
    end: Anchor

    @model_validator(mode="after")
    def _not_degenerate(self) -> DurationSpec:
        if self.start == self.end:
            raise FieldError("end", "is identical to start; the duration would always be 0")
        if self.start == TraceAnchor(anchor="trace_end") and self.end == TraceAnchor(
            anchor="trace_start"
        ):
            raise FieldError("end", "trace_start is never after trace_end")
        if (
            isinstance(self.start, ObservationAnchor)
            and isinstance(self.end, ObservationAnchor)
            and self.start.selector() == self.end.selector()
            and _EDGE_ORDER[self.end.edge] < _EDGE_ORDER[self.start.edge]
        ):
            raise FieldError(
                "end.edge",
                f"{self.end.edge} of the same observation is never after its {self.start.edge}",
            )
        return self


_EDGE_ORDER = {"start": 0, "first_token": 1, "end": 2}


class DurationDefinitionIn(DurationSpec):
    """A named definition as `POST /v1/duration-definitions` takes it."""

    name: Slug


class DurationDefinitionUpdate(DurationSpec):
    """`PUT /v1/duration-definitions/{name}`: new anchors; `name`, if sent, must match."""

    name: Slug | None = None


M = TypeVar("M", bound=BaseModel)


def parse_definition(model: type[M], body: bytes | dict[str, Any]) -> M:
    """Validate a body as `model`; raises `InvalidDefinition` naming the first bad field."""
    try:
        if isinstance(body, bytes):
            return model.model_validate_json(body)
        return model.model_validate(body)
    except ValidationError as exc:
        raise InvalidDefinition(*first_validation_error(exc, skip=_ANCHOR_TAGS)) from None


# Discriminator tags pydantic puts in error paths; they are not fields of the body.
_ANCHOR_TAGS = frozenset({"observation", "trace_start", "trace_end"})


def spec_json(spec: DurationSpec) -> str:
    """The anchors as stored (JSON of `{"start", "end"}`, nulls omitted)."""
    data = spec.model_dump(include={"start", "end"}, exclude_none=True)
    return orjson.dumps(data).decode()


def spec_from_json(raw: str) -> DurationSpec:
    """A stored spec back as a model (it was validated when written)."""
    return DurationSpec.model_validate_json(raw)
