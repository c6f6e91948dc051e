"""One OTLP trace export → one validated `IngestBatch` and the spans it had to reject.

decode (protobuf or JSON) → check ids and times → map (service.otlp.mapping) → validate every
record with the same pydantic models `/v1/ingest` uses. A span whose records fail is left
out whole (its observation and, for a root, its trace row); the rest are written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from service.ingest.models import IngestBatch, ObservationIn, TraceIn
from service.otlp.decode import Attributes, Span, decode_json, decode_protobuf
from service.otlp.mapping import (
    MappedTrace,
    Rejection,
    check_span,
    map_observation,
    map_traces,
    observation_source,
)

Encoding = Literal["protobuf", "json"]
Model = TypeVar("Model", bound=BaseModel)

_OBSERVATIONS = TypeAdapter(list[ObservationIn])
_TRACES = TypeAdapter(list[TraceIn])


@dataclass(frozen=True)
class Prepared:
    """What one export writes, and what it rejects (first rejection in request order)."""

    batch: IngestBatch
    spans: int
    rejected: int
    first_rejection: Rejection | None

    @property
    def error_message(self) -> str:
        if self.first_rejection is None:
            return ""
        return f"{self.first_rejection.describe()}; {self.rejected} of {self.spans} spans rejected"


def decode(body: bytes, encoding: Encoding) -> list[Span]:
    """The spans of a body; raises `UndecodableBody`."""
    return decode_protobuf(body) if encoding == "protobuf" else decode_json(body)


def prepare(spans: list[Span]) -> Prepared:
    """Map and validate every span; never raises for bad span content."""
    rejections: list[Rejection] = []
    candidates: list[Span] = []
    for span in spans:
        problem = check_span(span)
        if problem is None:
            candidates.append(span)
        else:
            rejections.append(problem)

    traces = map_traces(candidates)
    trace_models, bad_traces = _validate(_TRACES, [t.record for t in traces])
    rejected_roots: set[int] = set()
    for index, error in bad_traces.items():
        mapped = traces[index]
        rejected_roots.add(id(mapped.root))
        rejections.append(Rejection(mapped.root, _trace_source(mapped, error), error["msg"]))
    kept_traces = {
        id(mapped.root): model
        for mapped, model in zip(
            (t for i, t in enumerate(traces) if i not in bad_traces), trace_models, strict=True
        )
    }

    observed = [s for s in candidates if id(s) not in rejected_roots]
    written_roots = {
        t.root.trace_id: t.root.attributes for t in traces if id(t.root) in kept_traces
    }
    observations, bad_observations = _observations(observed, written_roots)
    dropped = [observed[i] for i in bad_observations if id(observed[i]) in kept_traces]
    if dropped:
        # A rejected root writes no trace row either; the trace's other spans then keep
        # their trace-level attributes in metadata, so map them again without the root.
        for root in dropped:
            kept_traces.pop(id(root))
            written_roots.pop(root.trace_id)
        observations, bad_observations = _observations(observed, written_roots)
    for index, error in bad_observations.items():
        span = observed[index]
        field = str(error["loc"][1]) if len(error["loc"]) > 1 else ""
        rejections.append(Rejection(span, observation_source(span, field), error["msg"]))

    first = None
    if rejections:
        order = {id(s): i for i, s in enumerate(spans)}
        first = min(rejections, key=lambda r: order[id(r.span)])
    return Prepared(
        batch=IngestBatch(traces=list(kept_traces.values()), observations=observations),
        spans=len(spans),
        rejected=len(rejections),
        first_rejection=first,
    )


def _observations(
    spans: list[Span], written_roots: dict[str, Attributes]
) -> tuple[list[ObservationIn], dict[int, ErrorDetails]]:
    records = [map_observation(s, root_attributes=written_roots.get(s.trace_id)) for s in spans]
    return _validate(_OBSERVATIONS, records)


def _validate(
    adapter: TypeAdapter[list[Model]], records: list[dict[str, Any]]
) -> tuple[list[Model], dict[int, ErrorDetails]]:
    """Validate all records; on failure, the valid ones and the first error of each bad one."""
    try:
        return adapter.validate_python(records), {}
    except ValidationError as exc:
        bad: dict[int, ErrorDetails] = {}
        for error in exc.errors(include_url=False):
            index = error["loc"][0]
            if isinstance(index, int):
                bad.setdefault(index, error)
        good = [r for i, r in enumerate(records) if i not in bad]
        return adapter.validate_python(good), bad


def _trace_source(mapped: MappedTrace, error: ErrorDetails) -> str:
    field = str(error["loc"][1]) if len(error["loc"]) > 1 else ""
    return mapped.source(field)
