"""Trace-level writes other than ingest: soft deletion."""

from __future__ import annotations

from service.clickhouse import ClickHouse
from service.clock import VersionStamp


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
