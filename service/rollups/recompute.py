"""The rollup job: find dirty buckets, recompute them from ground truth, publish, remember.

Why this is exact under replays, upserts, deletes, late rows and overlapping passes:

* Dirty detection reads `trace_activity` (fed by materialized views on both raw tables for
  every insert, upsert and soft delete) after the cursor. Those are dirty *traces*.
* An upsert can move an observation to another hour, and after a merge the old version is
  gone, so `rollup_trace_hours` remembers which hours each trace last contributed to. A pass
  first widens that memory to old + current hours (a failed pass leaves a superset), then
  recomputes every one of those buckets, then narrows the memory to the hours it read.
* `rollup_hour_traces` is the inverse of that memory, bucket → traces, so a recompute reads
  a bucket's rows by primary key (project, trace) instead of scanning history for one hour.
  The pass writes it right after widening the memory and before recomputing anything: live
  rows for the hours each dirty trace has now, tombstones for remembered hours it left, all
  under the version taken before that read. A trace that moves into an hour after the read
  was ingested after the pass started, so the next pass sees it dirty and indexes it; when
  two passes race, the later-stamped read wins, and a change it missed was ingested after
  both passes started, so it is dirty again next time. Extra live rows only cost a lookup:
  every recompute still filters rows by hour.
* A bucket is recomputed whole from live raw rows (FINAL hides replaced and deleted rows)
  and written under a fresh version taken *before* the read; only then is the version
  published: logged in `rollup_bucket_versions` (for the daily merge) and marked by a
  `published` row of that version in the rollup table itself. Readers keep, per bucket,
  only rows of the highest published version, in the same range scan that reads the rows:
  a pass that read older data cannot win, keys that disappeared simply are not in the new
  version (no tombstones), and a half-written recompute is invisible.
* The cursor advances only after everything succeeded, to (pass start - safety lag) so rows
  whose insert was still landing when the pass read are read again next time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from service.clickhouse import ClickHouse
from service.clock import Clock
from service.rollups.buckets import VERSIONS, Bucket, chunk_buckets
from service.times import format_time

log = logging.getLogger(__name__)

CURSOR_NAME = "rollups"
SAFETY_LAG = timedelta(seconds=10)
CHUNK_SIZE = 500


@dataclass(frozen=True)
class RollupPassResult:
    """What one pass did, for the CLI, the log and the metrics."""

    started_at: datetime
    previous_watermark: datetime | None
    watermark: datetime
    dirty_traces: int
    buckets: tuple[Bucket, ...] = field(repr=False)
    seconds: float

    def describe(self) -> str:
        """One line for an operator."""
        since = format_time(self.previous_watermark) if self.previous_watermark else "the beginning"
        return (
            f"rollup pass: {self.dirty_traces} dirty trace(s) since {since}, "
            f"{len(self.buckets)} bucket(s) recomputed in {self.seconds:.3f}s; "
            f"watermark {format_time(self.watermark)}"
        )


def next_watermark(previous: datetime | None, started_at: datetime, lag: timedelta) -> datetime:
    """Where a successful pass leaves the cursor: its start minus the lag, never backwards.

    Rows stamped just before the pass started may still have been landing while it read;
    stopping `lag` short makes the next pass read them again (recomputes are idempotent).
    """
    candidate = started_at - lag
    return candidate if previous is None or candidate > previous else previous


def read_watermark(ch: ClickHouse) -> datetime | None:
    """How far the rollups have caught up (None before the first pass)."""
    rows = ch.query_rows("rollups/read_cursor", {"name": CURSOR_NAME})
    cursor, passes = rows[0]
    return cursor if passes else None


def pending_buckets(ch: ClickHouse) -> int:
    """(project, hour) buckets touched since the watermark, waiting for the next pass."""
    watermark = read_watermark(ch) or datetime(1970, 1, 1, tzinfo=UTC)
    return int(ch.query_rows("rollups/pending_buckets", {"cursor": watermark})[0][0])


def run_rollup_pass(
    ch: ClickHouse,
    clock: Clock,
    *,
    safety_lag: timedelta = SAFETY_LAG,
    chunk_size: int = CHUNK_SIZE,
) -> RollupPassResult:
    """One pass: recompute every bucket touched since the watermark, then advance it.

    Safe to run twice, concurrently or after a crash: any failure raises before the cursor
    moves, so the same traces are dirty again next time.
    """
    began = time.perf_counter()
    started_at = clock()
    previous = read_watermark(ch)
    pass_id = VERSIONS.next()
    if previous is None:
        # No cursor yet: trace_activity keeps 30 days, so the first pass takes every trace.
        ch.command("rollups/collect_all_traces", {"pass": pass_id})
    else:
        ch.command("rollups/collect_dirty_traces", {"pass": pass_id, "cursor": previous})
    wide = VERSIONS.next()
    ch.command("rollups/remember_dirty_traces", {"pass": pass_id, "version": wide})
    # Before any recompute reads it: the index must list every trace live in a bucket.
    ch.command("rollups/index_dirty_traces", {"pass": pass_id, "version": wide})
    rows = ch.query_rows("rollups/dirty_buckets", {"pass": pass_id, "version": wide})
    buckets: list[Bucket] = [(str(project), hour) for project, hour in rows]
    dirty_traces = _count_dirty(ch, pass_id)
    recompute_buckets(ch, buckets, remember=False, chunk_size=chunk_size)
    ch.command(
        "rollups/shrink_trace_memory",
        {"pass": pass_id, "version": wide, "new_version": VERSIONS.next()},
    )
    watermark = next_watermark(previous, started_at, safety_lag)
    ch.command("rollups/write_cursor", {"name": CURSOR_NAME, "cursor": watermark})
    result = RollupPassResult(
        started_at=started_at,
        previous_watermark=previous,
        watermark=watermark,
        dirty_traces=dirty_traces,
        buckets=tuple(buckets),
        seconds=time.perf_counter() - began,
    )
    log.info(
        "rollup pass done",
        extra={
            "dirty_traces": dirty_traces,
            "buckets": len(buckets),
            "seconds": round(result.seconds, 3),
            "watermark": format_time(watermark),
        },
    )
    return result


def recompute_buckets(
    ch: ClickHouse,
    buckets: Sequence[Bucket],
    *,
    remember: bool = True,
    chunk_size: int = CHUNK_SIZE,
) -> int:
    """Recompute these (project, hour) buckets from live raw rows; returns how many.

    The primitive behind both the pass and a chunked backfill. A bucket's rows are read by
    primary key for the traces the bucket → trace index lists (every trace a pass or
    `index_traces_between` has seen there); rows that landed since are the next pass's.
    With `remember`, those traces' memory and index entries are first refreshed to their
    current hours, so a later upsert that moves one of them out of a bucket still marks
    the bucket dirty.
    """
    done = 0
    for chunk in chunk_buckets(buckets, chunk_size):
        params = chunk.params()
        version = VERSIONS.next()
        stamped = {**params, "version": version}
        if remember:
            ch.command("rollups/remember_indexed_traces", stamped)
            ch.command("rollups/index_remembered_traces", {"version": version})
        ch.command("rollups/recompute_usage", stamped)
        ch.command("rollups/recompute_observation_latency", stamped)
        ch.command("rollups/recompute_trace_latency", stamped)
        ch.command("rollups/commit_buckets", {"buckets": params["buckets"], "version": version})
        _publish(ch, {"buckets": params["buckets"], "version": version, "daily": False})
        days = chunk.day_params()
        day_version = _recompute_days(ch, days)
        # Only after both publications: rows older than a published version are never read
        # again. One lightweight delete per table for hours and days (each is a mutation).
        stale = {**stamped, **days, "day_version": day_version}
        ch.command("rollups/delete_stale_usage", stale)
        ch.command("rollups/delete_stale_latency", stale)
        done += len(chunk.buckets)
    return done


def index_traces_between(ch: ClickHouse, lo: datetime, hi: datetime) -> None:
    """Index every trace with live rows starting in [lo, hi): a backfill's one scan.

    A chunked backfill calls this once before its first chunk, so each chunk's recompute
    is primary-key lookups of the indexed traces instead of a scan of all history. The
    traces' memory is widened too (old and current hours), under the same version.
    """
    version = VERSIONS.next()
    ch.command("rollups/remember_range_traces", {"lo": lo, "hi": hi, "version": version})
    ch.command("rollups/index_remembered_traces", {"version": version})


def _recompute_days(ch: ClickHouse, params: dict[str, object]) -> int:
    """Rebuild and publish the daily rows of the days these hours belong to; returns the version.

    Same versioning as the hours: the version is taken before reading published hourly rows,
    so a concurrent pass that read older ones cannot win; a failure here raises before the
    cursor moves, so the next pass recomputes the same hours and their days again.
    """
    version = VERSIONS.next()
    stamped = {**params, "version": version}
    ch.command("rollups/recompute_usage_daily", stamped)
    ch.command("rollups/recompute_latency_daily", stamped)
    _publish(ch, {"buckets": params["days"], "version": version, "daily": True})
    return version


def _publish(ch: ClickHouse, params: dict[str, object]) -> None:
    """Make a written version the one readers see: a marker per bucket in each rollup table.

    The markers live in the rollup tables themselves so a read needs no second table; the
    rows they replace are deleted afterwards (by the caller), so no reader finds a gap.
    """
    ch.command("rollups/publish_usage", params)
    ch.command("rollups/publish_latency", params)


def _count_dirty(ch: ClickHouse, pass_id: int) -> int:
    return int(ch.query_rows("rollups/count_dirty_traces", {"pass": pass_id})[0][0])
