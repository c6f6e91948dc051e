"""A trace's summary computed from its live raw rows (used by the API and the webhook)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from service.clickhouse import ClickHouse
from service.times import format_time
from service.traces.rows import TraceKey, TraceRows
from service.traces.store import load_trace_rows


@dataclass(frozen=True)
class TraceSummary:
    """Counts, tokens, cost and timing of one trace over its live observations."""

    project_id: str
    trace_id: str
    name: str
    environment: str
    user_id: str
    session_id: str
    timestamp: datetime | None
    start_time: datetime | None
    end_time: datetime | None
    duration_ms: float | None
    observations: int
    orphans: int
    skewed: int
    errors: int
    input_tokens: int
    output_tokens: int
    cost: float
    models: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        """The `summary` object of the webhook and of `GET /v1/traces/{id}`."""
        return {
            "name": self.name,
            "environment": self.environment,
            "user_id": self.user_id,
            "session_id": self.session_id,
            "start_time": format_time(self.start_time),
            "end_time": format_time(self.end_time),
            "duration_ms": self.duration_ms,
            "observations": self.observations,
            "orphans": self.orphans,
            "skewed": self.skewed,
            "errors": self.errors,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "total_tokens": self.input_tokens + self.output_tokens,
            "cost": self.cost,
            "models": list(self.models),
        }


def duration_ms(start: datetime | None, end: datetime | None) -> float | None:
    """`end - start` in ms; None for a missing end (orphan) or an end before the start (skew)."""
    if start is None or end is None or end < start:
        return None
    return (end - start).total_seconds() * 1000.0


def summarize(rows: TraceRows) -> TraceSummary:
    """The summary of one trace from its live rows (pure; the trace record may be missing).

    Costs are added with `math.fsum`, so the total is the correctly rounded sum whatever
    order the rows came in.
    """
    trace = rows.trace
    observations = rows.observations
    first_start = min((o.start_time for o in observations), default=None)
    last_end = max((o.end_time for o in observations if o.end_time is not None), default=None)
    return TraceSummary(
        project_id=rows.key[0],
        trace_id=rows.key[1],
        name=trace.name if trace else "",
        environment=trace.environment if trace else "",
        user_id=trace.user_id if trace else "",
        session_id=trace.session_id if trace else "",
        timestamp=trace.timestamp if trace else None,
        start_time=rows.start_time,
        end_time=last_end,
        duration_ms=duration_ms(first_start, last_end),
        observations=len(observations),
        orphans=sum(1 for o in observations if o.end_time is None),
        skewed=sum(1 for o in observations if o.end_time is not None and o.end_time < o.start_time),
        errors=sum(1 for o in observations if o.status == "error"),
        input_tokens=sum(o.input_tokens for o in observations),
        output_tokens=sum(o.output_tokens for o in observations),
        cost=math.fsum(o.cost for o in observations),
        models=tuple(sorted({o.model for o in observations if o.model})),
    )


def fetch_summaries(ch: ClickHouse, keys: Iterable[TraceKey]) -> dict[TraceKey, TraceSummary]:
    """Summaries of the given traces that have any live row; absent keys are left out."""
    return {key: summarize(rows) for key, rows in load_trace_rows(ch, keys).items() if rows.exists}
