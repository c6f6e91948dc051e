"""Conclusion state in ClickHouse: the cursor, the conclusion records, the delivery outbox.

Write order is what makes a crash lose nothing:
- recording a conclusion writes the outbox row first, then the conclusion row, then the
  cursor. A crash before the conclusion row leaves an outbox row that delivers (and writes
  the conclusion row itself); the detector, whose cursor did not move, records it again
  with the same revision.
- after an attempt, the conclusion row is written before the outbox row: a crash between
  them leaves the outbox pending, so the delivery is repeated (at least once), never lost.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson

from service.clickhouse import ClickHouse
from service.clock import VersionStamp
from service.conclusions.models import Candidate, Conclusion, Status, TraceState
from service.times import EPOCH

# The outbox row carries the conclusion's payload and delivery state, minus delivered_at
# (an outbox row is deleted once delivered) plus the tombstone flag.
_SHARED_COLUMNS = (
    "project_id",
    "trace_id",
    "revision",
    "concluded_at",
    "last_activity_at",
    "summary",
    "status",
    "attempts",
    "next_attempt_at",
    "last_error",
)
CONCLUSION_COLUMNS = (*_SHARED_COLUMNS, "delivered_at", "updated_at")
OUTBOX_COLUMNS = (*_SHARED_COLUMNS, "updated_at", "is_deleted")


def read_cursor(ch: ClickHouse, shard_count: int, shard_index: int) -> datetime | None:
    """The shard's detection cursor, or None before its first pass."""
    rows = ch.query_rows(
        "conclusions/read_cursor", {"shard_count": shard_count, "shard_index": shard_index}
    )
    return rows[0][0] if rows else None


def write_cursor(
    ch: ClickHouse, shard_count: int, shard_index: int, cursor: datetime, stamp: VersionStamp
) -> None:
    """Move the shard's cursor (a new version of its single row)."""
    ch.insert(
        "conclusion_cursors",
        ("shard_count", "shard_index", "cursor", "updated_at"),
        [[shard_count, shard_index, cursor, stamp.next()]],
        by_column=False,
    )


def find_candidates(
    ch: ClickHouse,
    *,
    since: datetime,
    idle_before: datetime,
    shard_count: int,
    shard_index: int,
    limit: int,
) -> list[Candidate]:
    """Quiet, unconcluded traces of one shard with activity after `since`, oldest first."""
    rows = ch.query_rows(
        "conclusions/find_concluded",
        {
            "since": since,
            "idle_before": idle_before,
            "shard_count": shard_count,
            "shard_index": shard_index,
            "limit": limit,
        },
    )
    return [Candidate(p, t, last, int(rev)) for p, t, last, rev in rows]


def record_conclusions(
    ch: ClickHouse, conclusions: Sequence[Conclusion], stamp: VersionStamp
) -> None:
    """Persist new conclusions: outbox rows (for those to deliver) first, then the records."""
    if not conclusions:
        return
    version = stamp.next()
    to_deliver = [c for c in conclusions if c.status is Status.PENDING]
    if to_deliver:
        _insert_outbox(ch, to_deliver, version)
    _insert_conclusions(ch, conclusions, version)


def write_delivery_states(
    ch: ClickHouse, conclusions: Sequence[Conclusion], stamp: VersionStamp
) -> None:
    """Persist attempt results in two inserts: the records, then the outbox."""
    if not conclusions:
        return
    version = stamp.next()
    _insert_conclusions(ch, conclusions, version)
    _insert_outbox(ch, conclusions, version)


def due_deliveries(
    ch: ClickHouse, *, now: datetime, shard_count: int, shard_index: int, limit: int
) -> list[Conclusion]:
    """Pending deliveries of one shard due at `now`, oldest due first."""
    rows = ch.query_dicts(
        "conclusions/due_deliveries",
        {"now": now, "shard_count": shard_count, "shard_index": shard_index, "limit": limit},
    )
    return [_from_row(r) for r in rows]


def dead_deliveries(
    ch: ClickHouse, project_id: str, trace_id: str | None, limit: int
) -> list[Conclusion]:
    """Dead deliveries of a project (or of one of its traces)."""
    rows = ch.query_dicts(
        "conclusions/dead_deliveries",
        {"project_id": project_id, "trace_id": trace_id or "", "limit": limit},
    )
    return [_from_row(r) for r in rows]


def outbox_counts(ch: ClickHouse) -> dict[Status, int]:
    """Open deliveries by status: pending and dead."""
    counts = {Status.PENDING: 0, Status.DEAD: 0}
    for status, n in ch.query_rows("conclusions/outbox_counts"):
        counts[Status(status)] = int(n)
    return counts


def feed_page(
    ch: ClickHouse,
    *,
    project_id: str,
    since: datetime | None,
    status: Status | None,
    after: tuple[datetime, str, int] | None,
    limit: int,
) -> list[Conclusion]:
    """Up to `limit` conclusions of a project in (concluded_at, trace_id, revision) order."""
    after_at, after_trace, after_revision = after or (EPOCH, "", 0)
    rows = ch.query_dicts(
        "conclusions/feed",
        {
            "project_id": project_id,
            "since": since or EPOCH,
            "status": status.value if status else "",
            "after_at": after_at,
            "after_trace": after_trace,
            "after_revision": after_revision,
            "limit": limit,
        },
    )
    return [_from_row(r) for r in rows]


def trace_state(ch: ClickHouse, project_id: str, trace_id: str) -> TraceState:
    """Open or concluded: concluded when the latest conclusion covers the last activity."""
    revision, concluded_activity, last_activity = ch.query_rows(
        "conclusions/trace_state", {"project_id": project_id, "trace_id": trace_id}
    )[0]
    concluded = int(revision) > 0 and concluded_activity >= last_activity
    return TraceState(status="concluded" if concluded else "open", revision=int(revision))


def _insert_conclusions(
    ch: ClickHouse, conclusions: Sequence[Conclusion], version: datetime
) -> None:
    ch.insert(
        "conclusions",
        CONCLUSION_COLUMNS,
        [
            [
                c.project_id,
                c.trace_id,
                c.revision,
                c.concluded_at,
                c.last_activity_at,
                _dump(c.summary),
                c.status.value,
                c.attempts,
                c.next_attempt_at if c.status is Status.PENDING else None,
                c.last_error,
                c.delivered_at,
                version,
            ]
            for c in conclusions
        ],
        by_column=False,
    )


def _insert_outbox(ch: ClickHouse, conclusions: Sequence[Conclusion], version: datetime) -> None:
    """Open deliveries as live rows; delivered (or never-to-deliver) ones as tombstones."""
    ch.insert(
        "conclusion_outbox",
        OUTBOX_COLUMNS,
        [
            [
                c.project_id,
                c.trace_id,
                c.revision,
                c.concluded_at,
                c.last_activity_at,
                _dump(c.summary),
                c.status.value,
                c.attempts,
                c.next_attempt_at or version,
                c.last_error,
                version,
                0 if c.status in (Status.PENDING, Status.DEAD) else 1,
            ]
            for c in conclusions
        ],
        by_column=False,
    )


def _dump(summary: dict[str, Any]) -> str:
    return orjson.dumps(summary).decode()


def _from_row(row: dict[str, Any]) -> Conclusion:
    return Conclusion(
        project_id=row["project_id"],
        trace_id=row["trace_id"],
        revision=int(row["revision"]),
        concluded_at=row["concluded_at"],
        last_activity_at=row["last_activity_at"],
        summary=orjson.loads(row["summary"]),
        status=Status(row["status"]),
        attempts=int(row["attempts"]),
        next_attempt_at=row["next_attempt_at"],
        last_error=row["last_error"],
        delivered_at=row.get("delivered_at"),
    )
