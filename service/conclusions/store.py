"""Conclusion state in ClickHouse: the cursor, the conclusion records, the delivery outbox.

The outbox (`delivery_outbox`, migration 0010) is written in 5-minute slots (partitions):
every row lands in the slot of its own version, and a delivery's state is its newest row
in any slot. `compact_outbox` carries the open deliveries out of closed slots and drops
those slots, so the outbox holds about two slots of writes plus the open deliveries, and
the delivery queries cost the same after a day or after a year.

Write order is what makes a crash lose nothing:
- recording a conclusion writes the outbox row first, then the conclusion row, then the
  cursor. A crash before the conclusion row leaves an outbox row that delivers (and writes
  the conclusion row itself); the detector, whose cursor did not move, records it again
  with the same revision.
- after an attempt, the conclusion row is written before the outbox row: a crash between
  them leaves the outbox pending, so the delivery is repeated (at least once), never lost.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson

from service.clickhouse import ClickHouse
from service.clock import VersionStamp
from service.conclusions.models import Candidate, Conclusion, Status, TraceState
from service.encoding import dumps
from service.times import EPOCH

log = logging.getLogger(__name__)

# The outbox row carries the conclusion's payload and delivery state (plus its slot and
# when the current run of attempts began); the record carries delivered_at.
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
OUTBOX_COLUMNS = ("slot", *_SHARED_COLUMNS, "first_attempt_at", "updated_at")

# Outbox slots: a row goes into the slot holding its version. A slot is closed once the
# grace below has passed after its end: no write stamped inside it can still be on its way,
# so its open deliveries can be carried forward and the slot dropped. The outbox therefore
# holds at most SLOT_SECONDS + SLOT_GRACE_SECONDS (ten minutes) of writes.
SLOT_SECONDS = 300
# Covers an insert still in flight when its slot ends and small clock differences between
# replicas; a write arriving later than this into a dropped slot recreates that slot and is
# carried forward by the next compaction (no loss), but a write into a slot being dropped
# at that moment would be lost, which is why the margin is minutes, not milliseconds.
SLOT_GRACE_SECONDS = 300


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


def slot_of(version: datetime) -> datetime:
    """The start of the outbox slot a row with this version goes into."""
    seconds = int((version - EPOCH).total_seconds())
    return EPOCH + timedelta(seconds=seconds - seconds % SLOT_SECONDS)


def is_closed(slot: datetime, now: datetime) -> bool:
    """True once no write stamped inside `slot` can still arrive (its end plus the grace)."""
    return slot + timedelta(seconds=SLOT_SECONDS + SLOT_GRACE_SECONDS) <= now


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
    """Persist attempt results in two inserts: the records, then the outbox.

    Callers bound `conclusions` (delivery writes at most `delivery.FLUSH_MAX_ITEMS` at once).
    """
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


@dataclass
class Compaction:
    """What one `compact_outbox` call did."""

    dropped: list[datetime] = field(default_factory=list)


def compact_outbox(ch: ClickHouse, now: datetime) -> Compaction:
    """Carry the open deliveries out of every closed slot, then drop those slots.

    Idempotent and safe to run from several replicas at once: a carried row keeps its
    version, so a second copy (a concurrent run, or a crash before the drop) is the same
    state and readers take it once; a state written meanwhile is newer and wins.
    """
    result = Compaction()
    target = slot_of(now)
    for (slot_seconds,) in ch.query_rows("conclusions/outbox_slots"):
        slot = EPOCH + timedelta(seconds=int(slot_seconds))
        if not is_closed(slot, now) or slot >= target:
            continue
        ch.command("conclusions/carry_open_deliveries", {"slot": slot, "target": target})
        ch.command("conclusions/drop_outbox_slot", {"slot": slot})
        result.dropped.append(slot)
    if result.dropped:
        log.debug(
            "outbox slots dropped",
            extra={"slots": len(result.dropped), "oldest": result.dropped[0].isoformat()},
        )
    return result


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
    """Each delivery's new state, in the slot of `version`.

    Open deliveries (pending, dead) carry their payload; a closed one (delivered) is a
    small marker row that supersedes the older rows and goes away with its slot.
    """
    slot = slot_of(version)
    rows = []
    for c in conclusions:
        is_open = c.status in (Status.PENDING, Status.DEAD)
        rows.append(
            [
                slot,
                c.project_id,
                c.trace_id,
                c.revision,
                c.concluded_at,
                c.last_activity_at,
                _dump(c.summary) if is_open else "",
                c.status.value,
                c.attempts,
                c.next_attempt_at or version,
                c.last_error,
                c.first_attempt_at,
                version,
            ]
        )
    ch.insert("delivery_outbox", OUTBOX_COLUMNS, rows, by_column=False)


def _dump(summary: dict[str, Any]) -> str:
    """A summary as stored JSON; never fails on a value orjson refuses, so storing a state
    never fails because of its summary (a later read and send judge it, one delivery at a
    time)."""
    return dumps(summary).decode()


def _load(text: str) -> tuple[dict[str, Any], str]:
    """A stored summary and, if it cannot be read as a JSON object, why (its defect).

    Read with orjson, which also encodes the webhook: what it cannot read (malformed text,
    a lone surrogate escape) cannot be sent faithfully, and its delivery goes dead with the
    reason, keeping the stored text under `unreadable_summary`.
    """
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        return {"unreadable_summary": text[:2000]}, f"stored summary is not valid JSON: {exc}"
    if not isinstance(value, dict):
        return {"unreadable_summary": text[:2000]}, "stored summary is not a JSON object"
    return value, ""


def _from_row(row: dict[str, Any]) -> Conclusion:
    summary, defect = _load(row["summary"])
    return Conclusion(
        project_id=row["project_id"],
        trace_id=row["trace_id"],
        revision=int(row["revision"]),
        concluded_at=row["concluded_at"],
        last_activity_at=row["last_activity_at"],
        summary=summary,
        status=Status(row["status"]),
        attempts=int(row["attempts"]),
        next_attempt_at=row["next_attempt_at"],
        last_error=row["last_error"],
        delivered_at=row.get("delivered_at"),
        first_attempt_at=row.get("first_attempt_at"),
        defect=defect,
    )
