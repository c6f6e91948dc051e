"""Reading materialized durations: one trace's results, and per-bucket stats of a definition.

Only reads; nothing here computes a duration (a trace's results are whatever the last
materialization stored).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from service.clickhouse import ClickHouse
from service.durations.catalog import StoredDefinition, list_definitions
from service.ranges import TimeRange
from service.times import format_time

PENDING = "pending: not yet materialized for this definition version (see GET /v1/jobs)"


@dataclass(frozen=True)
class TraceDuration:
    """One named duration of one trace as served (`revision` None: not materialized yet)."""

    name: str
    duration_ms: float | None
    start_time: datetime | None
    end_time: datetime | None
    reason: str | None
    revision: int | None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "duration_ms": self.duration_ms,
            "start_time": format_time(self.start_time),
            "end_time": format_time(self.end_time),
            "reason": self.reason,
            "revision": self.revision,
        }


@dataclass(frozen=True)
class DurationStats:
    """A definition's stats over one bucket of trace start times."""

    bucket: datetime
    count: int
    skewed: int
    missing: int
    avg_ms: float | None
    p50_ms: float | None
    p90_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None

    def to_json(self) -> dict[str, Any]:
        return {
            "bucket": format_time(self.bucket),
            "count": self.count,
            "skewed": self.skewed,
            "missing": self.missing,
            "avg_ms": self.avg_ms,
            "p50_ms": self.p50_ms,
            "p90_ms": self.p90_ms,
            "p95_ms": self.p95_ms,
            "p99_ms": self.p99_ms,
            "max_ms": self.max_ms,
        }


def read_trace_durations(
    ch: ClickHouse, project_id: str, trace_id: str
) -> list[TraceDuration] | None:
    """The stored durations of a trace for its project's live definitions; None if unknown.

    A definition with no stored row at its current version (a backfill has not reached this
    trace yet) is listed with a null duration and a reason saying so.
    """
    params = {"project_id": project_id, "trace_id": trace_id}
    if not ch.query_rows("durations/registered_trace", params):
        return None
    stored = {r["definition"]: r for r in ch.query_dicts("durations/read_trace", params)}
    return [
        _served(current, stored.get(current.name)) for current in list_definitions(ch, project_id)
    ]


def _served(current: StoredDefinition, row: dict[str, Any] | None) -> TraceDuration:
    if row is None or int(row["definition_version"]) != current.version:
        return TraceDuration(current.name, None, None, None, PENDING, None)
    return TraceDuration(
        name=current.name,
        duration_ms=row["duration_ms"],
        start_time=row["start_time"],
        end_time=row["end_time"],
        reason=row["reason"] or None,
        revision=int(row["revision"]),
    )


def definition_stats(
    ch: ClickHouse, current: StoredDefinition, bounds: TimeRange
) -> list[DurationStats]:
    """Per-bucket count, skew, missing and percentiles of one definition over the range."""
    params = {
        "project_id": current.project_id,
        "definition": current.name,
        "from": bounds.lo,
        "to": bounds.hi,
        "granularity": bounds.granularity,
        "version": current.version,
    }
    out = []
    for row in ch.query_dicts("durations/stats", params):
        measured = int(row["measured"])
        p50, p90, p95, p99 = row["percentiles"] if measured else (None, None, None, None)
        out.append(
            DurationStats(
                bucket=row["bucket"],
                count=measured,
                skewed=int(row["skewed_traces"]),
                missing=int(row["missing_traces"]),
                avg_ms=row["avg_ms"],
                p50_ms=p50,
                p90_ms=p90,
                p95_ms=p95,
                p99_ms=p99,
                max_ms=row["max_ms"],
            )
        )
    return out
