"""Conclusion detection: find traces that went quiet, summarize them, record the conclusions.

A pass reads only the recent slice of `trace_activity` (ingested_at after this shard's
cursor, minus an overlap), so its cost follows the write rate, never the size of history.
A trace concludes when `now - last_activity >= TA_IDLE_SECONDS`; activity after a
conclusion reopens it and it concludes again with the next revision. At most
TA_CHECK_BATCH_LIMIT traces conclude per pass; the cursor only moves past what was
handled, so a backlog drains over the next passes and nothing is skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from service.clickhouse import ClickHouse
from service.clock import Clock, VersionStamp
from service.conclusions import store
from service.conclusions.health import PassHealth, tracked_pass
from service.conclusions.models import Candidate, Conclusion, Status
from service.durations.materialize import materialize_concluded
from service.durations.plan import Subject
from service.metrics import Metrics
from service.settings import Settings
from service.times import EPOCH
from service.traces.rows import TraceKey
from service.traces.store import load_trace_rows
from service.traces.summary import TraceSummary, summarize

log = logging.getLogger(__name__)

# Each pass re-reads activity this far behind the cursor. A row is stamped with
# ingested_at before its insert commits, and replicas' clocks differ a little: the overlap
# catches rows that became visible after the cursor had passed their stamp. Re-read traces
# that already concluded at that activity are dropped by the query's anti-join.
MIN_OVERLAP_SECONDS = 60.0


def overlap(settings: Settings) -> timedelta:
    """How far behind the cursor a pass starts reading."""
    return timedelta(seconds=max(MIN_OVERLAP_SECONDS, 2 * settings.check_interval_seconds))


def window_start(cursor: datetime | None, margin: timedelta) -> datetime:
    """Where a pass starts reading activity: the cursor minus the overlap (all of it at first)."""
    return EPOCH if cursor is None else cursor - margin


def next_cursor(
    previous: datetime | None,
    candidates: Sequence[Candidate],
    idle_before: datetime,
    limit: int,
) -> datetime:
    """How far this pass handled everything, never moving backwards.

    Below the limit, every trace quiet since `idle_before` was seen: the cursor moves there.
    At the limit, only up to the last candidate's activity; traces sharing that instant are
    re-read next pass and the anti-join keeps the ones already concluded out.
    """
    handled = idle_before if len(candidates) < limit else candidates[-1].last_activity
    return handled if previous is None else max(previous, handled)


def plan_conclusions(
    candidates: Sequence[Candidate],
    summaries: dict[TraceKey, TraceSummary],
    *,
    now: datetime,
    deliver: bool,
) -> list[Conclusion]:
    """One conclusion per candidate that still has live rows (a deleted trace never concludes)."""
    planned = []
    for candidate in candidates:
        summary = summaries.get((candidate.project_id, candidate.trace_id))
        if summary is None:
            continue
        planned.append(
            Conclusion(
                project_id=candidate.project_id,
                trace_id=candidate.trace_id,
                revision=candidate.last_revision + 1,
                concluded_at=now,
                last_activity_at=candidate.last_activity,
                summary=summary.to_json(),
                status=Status.PENDING if deliver else Status.RECORDED,
                next_attempt_at=now if deliver else None,
            )
        )
    return planned


def run_detection_pass(
    ch: ClickHouse,
    settings: Settings,
    *,
    clock: Clock,
    stamp: VersionStamp,
    metrics: Metrics | None = None,
    health: PassHealth | None = None,
) -> list[Conclusion]:
    """One detection pass for this replica's shard; returns the conclusions it recorded."""
    with tracked_pass("detect", metrics, health):
        return _detect(ch, settings, clock=clock, stamp=stamp, metrics=metrics)


def _detect(
    ch: ClickHouse,
    settings: Settings,
    *,
    clock: Clock,
    stamp: VersionStamp,
    metrics: Metrics | None,
) -> list[Conclusion]:
    now = clock()
    idle_before = now - timedelta(seconds=settings.idle_seconds)
    shard = {"shard_count": settings.shard_count, "shard_index": settings.shard_index}
    cursor = store.read_cursor(ch, **shard)
    candidates = store.find_candidates(
        ch,
        since=window_start(cursor, overlap(settings)),
        idle_before=idle_before,
        limit=settings.check_batch_limit,
        **shard,
    )
    # Each candidate's live rows are read once, for its summary and its named durations.
    rows = load_trace_rows(ch, [(c.project_id, c.trace_id) for c in candidates])
    summaries = {key: summarize(found) for key, found in rows.items() if found.exists}
    conclusions = plan_conclusions(
        candidates, summaries, now=now, deliver=settings.analyze_url is not None
    )
    store.record_conclusions(ch, conclusions, stamp)
    # Conclusions are durable from here on: work derived from them (e.g. named durations)
    # belongs right below, before the cursor moves past them.
    subjects = [Subject(rows[(c.project_id, c.trace_id)], c.revision) for c in conclusions]
    materialize_concluded(ch, subjects, stamp.next)
    store.write_cursor(
        ch,
        cursor=next_cursor(cursor, candidates, idle_before, settings.check_batch_limit),
        stamp=stamp,
        **shard,
    )
    _observe(metrics, conclusions, now, settings.idle_seconds)
    log.log(
        logging.INFO if candidates else logging.DEBUG,
        "detection pass",
        extra={
            "shard": f"{settings.shard_index}/{settings.shard_count}",
            "candidates": len(candidates),
            "concluded": len(conclusions),
            "skipped_deleted": len(candidates) - len(conclusions),
        },
    )
    return conclusions


def _observe(
    metrics: Metrics | None,
    conclusions: Sequence[Conclusion],
    now: datetime,
    idle_seconds: int,
) -> None:
    if metrics is None:
        return
    metrics.traces_concluded.inc(len(conclusions))
    for c in conclusions:
        # Lag: how long after becoming eligible (last activity + idle) the trace concluded.
        eligible_at = c.last_activity_at + timedelta(seconds=idle_seconds)
        metrics.detection_lag.observe(max(0.0, (now - eligible_at).total_seconds()))
