"""Trace-level reads and writes other than ingest: live rows by key, existence, soft deletion.

Every key list is cut with `key_chunks`, so a statement's bound parameters stay within
what a ClickHouse server accepts however many traces a caller asks for.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from service.clickhouse import ClickHouse, key_chunks
from service.clock import VersionStamp
from service.traces.rows import ObservationRow, TraceKey, TraceRow, TraceRows


def load_trace_rows(ch: ClickHouse, keys: Iterable[TraceKey]) -> dict[TraceKey, TraceRows]:
    """The live rows of each wanted trace (also those with nothing live), in key order."""
    wanted = sorted(set(keys))
    records: dict[TraceKey, TraceRow] = {}
    observations: dict[TraceKey, list[ObservationRow]] = defaultdict(list)
    for chunk in key_chunks(wanted):
        for row in ch.query_rows("traces/trace_rows", {"keys": chunk}):
            records[(row[0], row[1])] = _trace_row(row)
        for row in ch.query_rows("traces/observation_rows", {"keys": chunk}):
            observations[(row[0], row[1])].append(_observation_row(row))
    return {key: TraceRows(key, records.get(key), tuple(observations[key])) for key in wanted}


def load_page_rows(
    ch: ClickHouse, project_id: str, trace_ids: Sequence[str]
) -> dict[TraceKey, TraceRows]:
    """Like `load_trace_rows` for one project's sorted page of ids (a backfill chunk).

    The observations come from one primary-key range [first, last] instead of a key list;
    traces in that range that were not asked for are dropped.
    """
    if not trace_ids:
        return {}
    wanted = {(project_id, t) for t in trace_ids}
    span = {"project_id": project_id, "first": trace_ids[0], "last": trace_ids[-1]}
    observations: dict[TraceKey, list[ObservationRow]] = defaultdict(list)
    for row in ch.query_rows("traces/observation_rows_in_range", span):
        if (row[0], row[1]) in wanted:
            observations[(row[0], row[1])].append(_observation_row(row))
    records: dict[TraceKey, TraceRow] = {}
    for chunk in key_chunks(sorted(wanted)):
        for row in ch.query_rows("traces/trace_rows", {"keys": chunk}):
            records[(row[0], row[1])] = _trace_row(row)
    return {
        key: TraceRows(key, records.get(key), tuple(observations[key])) for key in sorted(wanted)
    }


def trace_exists(ch: ClickHouse, project_id: str, trace_id: str) -> bool:
    """True when the trace has a live trace row or live observation in this project."""
    rows = ch.query_rows("traces/exists", {"project_id": project_id, "trace_id": trace_id})
    return bool(rows and rows[0][0])


def soft_delete_trace(ch: ClickHouse, project_id: str, trace_id: str, stamp: VersionStamp) -> bool:
    """Write deleted versions of a trace and all its observations; False if nothing was live.

    The deletes are ordinary inserts, so the activity view sees them and rollups recompute
    the buckets the trace touched.
    """
    if not trace_exists(ch, project_id, trace_id):
        return False
    params = {"project_id": project_id, "trace_id": trace_id, "stamp": stamp.next()}
    ch.command("traces/soft_delete_observations", params)
    ch.command("traces/soft_delete_traces", params)
    return True


def _trace_row(row: tuple[Any, ...]) -> TraceRow:
    _, _, name, timestamp, user_id, session_id, environment, tags = row
    return TraceRow(name, timestamp, user_id, session_id, environment, tuple(tags))


def _observation_row(row: tuple[Any, ...]) -> ObservationRow:
    _, _, obs_id, type_, name, start, end, first_token, model, status, tin, tout, cost = row
    return ObservationRow(
        obs_id, type_, name, start, end, first_token, model, status, int(tin), int(tout), cost
    )
