"""A trace's summary computed from its live raw rows (used by the API and the webhook)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from service.clickhouse import ClickHouse
from service.times import rfc3339

TraceKey = tuple[str, str]


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
            "start_time": rfc3339(self.start_time),
            "end_time": rfc3339(self.end_time),
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


def build_summary(
    key: TraceKey, trace: dict[str, Any] | None, aggregate: dict[str, Any] | None
) -> TraceSummary:
    """Combine a trace row and its observation aggregate (either may be missing)."""
    trace = trace or {}
    agg = aggregate or {}
    start = agg.get("first_start")
    end = agg.get("last_end")
    return TraceSummary(
        project_id=key[0],
        trace_id=key[1],
        name=trace.get("name", ""),
        environment=trace.get("environment", ""),
        user_id=trace.get("user_id", ""),
        session_id=trace.get("session_id", ""),
        timestamp=trace.get("timestamp"),
        start_time=start if start is not None else trace.get("timestamp"),
        end_time=end,
        duration_ms=duration_ms(start, end),
        observations=int(agg.get("observations", 0)),
        orphans=int(agg.get("orphans", 0)),
        skewed=int(agg.get("skewed", 0)),
        errors=int(agg.get("errors", 0)),
        input_tokens=int(agg.get("input_tokens", 0)),
        output_tokens=int(agg.get("output_tokens", 0)),
        cost=float(agg.get("cost", 0.0)),
        models=tuple(agg.get("models", ())),
    )


def fetch_summaries(ch: ClickHouse, keys: Iterable[TraceKey]) -> dict[TraceKey, TraceSummary]:
    """Summaries of the given traces that have any live row; absent keys are left out."""
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    params = {"keys": wanted}
    traces = {
        (r["project_id"], r["id"]): r for r in ch.query_dicts("traces/summary_traces", params)
    }
    aggregates = {
        (r["project_id"], r["trace_id"]): r
        for r in ch.query_dicts("traces/summary_observations", params)
    }
    return {
        key: build_summary(key, traces.get(key), aggregates.get(key))
        for key in wanted
        if key in traces or key in aggregates
    }
