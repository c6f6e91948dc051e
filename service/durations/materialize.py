"""Materialization: load what `plan.plan_writes` needs, and insert what it returns.

Three ways in, each a plain function:
- `materialize_concluded`: the detector's hook, right after conclusions are recorded; it
  registers the traces as concluded (so a later definition can backfill them) and writes
  their durations from the rows the detector already read for the summaries;
- `recompute`: a backfill chunk or any explicit recompute, for given definitions;
- `forget_trace`: after a soft delete, tombstones for every stored result of the trace.
Reads never compute: a trace's durations are whatever the last materialization stored.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime

from service.clickhouse import ClickHouse, key_chunks
from service.durations.catalog import StoredDefinition, definitions_by_project
from service.durations.plan import (
    BY_HOUR_COLUMNS,
    RESULT_COLUMNS,
    StoredTimes,
    Subject,
    plan_writes,
)
from service.traces.rows import TraceKey, TraceRows
from service.traces.store import load_trace_rows

log = logging.getLogger(__name__)

Now = Callable[[], datetime]
# (project_id, trace_id, conclusion revision)
ConclusionKey = tuple[str, str, int]
# Traces per insert group of the detector hook: a failure costs at most this many.
HOOK_BATCH = 1000


def materialize_concluded(ch: ClickHouse, subjects: Sequence[Subject], now: Now) -> int:
    """The detector's hook: register and materialize just-recorded conclusions; rows written.

    A failure is logged and swallowed: the conclusions are already durable and must still
    be delivered, and `trace-analytics backfill durations` recomputes registered traces.
    """
    written = 0
    for start in range(0, len(subjects), HOOK_BATCH):
        batch = subjects[start : start + HOOK_BATCH]
        try:
            register_concluded(ch, batch, now())
            projects = sorted({s.rows.key[0] for s in batch})
            written += recompute(ch, batch, definitions_by_project(ch, projects), now())
        except Exception:
            log.exception(
                "materializing durations failed; run `trace-analytics backfill durations`",
                extra={"traces": len(batch), "first": list(batch[0].rows.key)},
            )
    return written


def materialize_traces(ch: ClickHouse, keys: Iterable[ConclusionKey], now: Now) -> int:
    """Read the traces' live rows and materialize them as the detector would (raises)."""
    latest: dict[TraceKey, int] = {}
    for project_id, trace_id, revision in keys:
        latest[(project_id, trace_id)] = max(revision, latest.get((project_id, trace_id), 0))
    rows = load_trace_rows(ch, latest)
    subjects = [Subject(rows[key], revision) for key, revision in sorted(latest.items())]
    register_concluded(ch, subjects, now())
    projects = sorted({key[0] for key in latest})
    return recompute(ch, subjects, definitions_by_project(ch, projects), now())


def register_concluded(ch: ClickHouse, subjects: Sequence[Subject], now: datetime) -> None:
    """Record live concluded traces (revision, start time) for later definition backfills."""
    rows = [
        [s.rows.key[0], s.rows.key[1], s.revision, s.rows.start_time, now]
        for s in subjects
        if s.rows.exists
    ]
    if rows:
        ch.insert(
            "duration_traces",
            ("project_id", "trace_id", "revision", "trace_time", "registered_at"),
            rows,
            by_column=False,
        )


def recompute(
    ch: ClickHouse,
    subjects: Sequence[Subject],
    definitions: Mapping[str, Sequence[StoredDefinition]],
    now: datetime,
    *,
    stored: StoredTimes | None = None,
) -> int:
    """Write these traces' results for `definitions`; returns result rows written.

    `stored` is what is stored for them now (read by key when not given: a backfill page
    passes the one range read it already made).
    """
    if not subjects:
        return 0
    if stored is None:
        stored = stored_trace_times(ch, [s.rows.key for s in subjects])
    writes = plan_writes(subjects, definitions, stored, now)
    if writes.results:
        ch.insert("trace_durations", RESULT_COLUMNS, writes.results, by_column=False)
    if writes.by_hour:
        ch.insert("trace_durations_by_hour", BY_HOUR_COLUMNS, writes.by_hour, by_column=False)
    return len(writes)


def forget_trace(ch: ClickHouse, project_id: str, trace_id: str, now: datetime) -> int:
    """After a soft delete: tombstone every stored result of the trace (none: no-op)."""
    gone = Subject(TraceRows((project_id, trace_id), None, ()), revision=0)
    return recompute(ch, [gone], {}, now)


def stored_trace_times(ch: ClickHouse, keys: Sequence[TraceKey]) -> StoredTimes:
    """What is stored for these traces: (project, trace, definition) -> trace time."""
    found: dict[tuple[str, str, str], datetime] = {}
    for chunk in key_chunks(sorted(set(keys))):
        for p, t, d, trace_time in ch.query_rows("durations/stored_for_traces", {"keys": chunk}):
            found[(p, t, d)] = trace_time
    return found


def stored_trace_times_in_range(
    ch: ClickHouse, project_id: str, first: str, last: str
) -> StoredTimes:
    """Like `stored_trace_times` for one project's id range [first, last] (one range read)."""
    span = {"project_id": project_id, "first": first, "last": last}
    return {(p, t, d): tt for p, t, d, tt in ch.query_rows("durations/stored_in_range", span)}
