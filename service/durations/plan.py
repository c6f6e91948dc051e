"""What a materialization writes, decided without I/O.

Given concluded traces (their live rows and conclusion revision), the live definitions of
their projects and what is stored for them now, `plan_writes` returns the rows for
`trace_durations` (served per trace) and `trace_durations_by_hour` (the stats' layout):
- a live trace gets one result per definition of its project, computed from its rows;
- a trace with nothing live (deleted) gets a tombstone for every result stored for it;
- when a trace's start moved to another hour, the by-hour row at the old hour gets a
  tombstone, or stats over both hours would count the trace twice.
Re-planning the same inputs gives the same values, so a replayed chunk is harmless.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from service.durations.anchors import DurationResult, compute_duration
from service.durations.catalog import StoredDefinition
from service.times import floor_hour
from service.traces.rows import TraceRows

# (project_id, trace_id, definition) -> the trace time its stored result was filed under.
StoredTimes = Mapping[tuple[str, str, str], datetime]

RESULT_COLUMNS = (
    "project_id",
    "trace_id",
    "definition",
    "definition_version",
    "revision",
    "trace_time",
    "duration_ms",
    "start_time",
    "end_time",
    "reason",
    "skewed",
    "computed_at",
    "is_deleted",
)
BY_HOUR_COLUMNS = (
    "project_id",
    "definition",
    "hour",
    "trace_id",
    "definition_version",
    "trace_time",
    "duration_ms",
    "skewed",
    "missing",
    "computed_at",
    "is_deleted",
)


@dataclass(frozen=True)
class Subject:
    """One concluded trace to (re)compute: its live rows and its latest revision."""

    rows: TraceRows
    revision: int


@dataclass
class Writes:
    """Rows for the two result tables, in their column order."""

    results: list[list[Any]] = field(default_factory=list)
    by_hour: list[list[Any]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.results)


def plan_writes(
    subjects: Sequence[Subject],
    definitions: Mapping[str, Sequence[StoredDefinition]],
    stored: StoredTimes,
    now: datetime,
) -> Writes:
    """Every row to insert for these traces (see the module docstring)."""
    writes = Writes()
    live = {s.rows.key: s for s in subjects if s.rows.exists}
    gone = {s.rows.key for s in subjects if not s.rows.exists}
    for (project_id, trace_id, name), old_time in sorted(stored.items()):
        if (project_id, trace_id) in gone:
            writes.results.append(_result_tombstone(project_id, trace_id, name, old_time, now))
            writes.by_hour.append(_by_hour_tombstone(project_id, trace_id, name, old_time, now))
    for key, subject in live.items():
        project_id, trace_id = key
        trace_time = subject.rows.start_time
        assert trace_time is not None  # a live trace has a record or an observation
        for definition in definitions.get(project_id, ()):
            result = compute_duration(definition.spec, subject.rows.observations)
            writes.results.append(_result(subject, definition, trace_time, result, now))
            previous = stored.get((project_id, trace_id, definition.name))
            if previous is not None and floor_hour(previous) != floor_hour(trace_time):
                writes.by_hour.append(
                    _by_hour_tombstone(project_id, trace_id, definition.name, previous, now)
                )
            writes.by_hour.append(_by_hour(subject, definition, trace_time, result, now))
    return writes


def _result(
    subject: Subject,
    definition: StoredDefinition,
    trace_time: datetime,
    result: DurationResult,
    now: datetime,
) -> list[Any]:
    project_id, trace_id = subject.rows.key
    return [
        project_id,
        trace_id,
        definition.name,
        definition.version,
        subject.revision,
        trace_time,
        result.duration_ms,
        result.start_time,
        result.end_time,
        result.reason or "",
        int(result.skewed),
        now,
        0,
    ]


def _by_hour(
    subject: Subject,
    definition: StoredDefinition,
    trace_time: datetime,
    result: DurationResult,
    now: datetime,
) -> list[Any]:
    project_id, trace_id = subject.rows.key
    return [
        project_id,
        definition.name,
        floor_hour(trace_time),
        trace_id,
        definition.version,
        trace_time,
        result.duration_ms,
        int(result.skewed),
        int(result.missing),
        now,
        0,
    ]


def _result_tombstone(
    project_id: str, trace_id: str, name: str, old_time: datetime, now: datetime
) -> list[Any]:
    return [project_id, trace_id, name, 0, 0, old_time, None, None, None, "", 0, now, 1]


def _by_hour_tombstone(
    project_id: str, trace_id: str, name: str, old_time: datetime, now: datetime
) -> list[Any]:
    return [project_id, name, floor_hour(old_time), trace_id, 0, old_time, None, 0, 0, now, 1]
