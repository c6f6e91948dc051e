"""The `rollups.backfill` job: recompute hourly rollup buckets over a time range, slice by slice.

Each chunk is a slice of `hours_per_chunk` hours. It lists the (project, hour) buckets that
held rows at the job's snapshot and hands them to the rollups' own `recompute_buckets`
(which replaces each bucket whole, so a replayed slice is harmless). The first chunk indexes
the range's traces (bucket → trace) in one scan, so every chunk reads its buckets' rows by
primary key. The range is `from`..
`to`, an open bound taken from the rows stored at the snapshot (ingested_at <= snapshot),
so new data cannot keep the job alive; the cursor is the next slice's start and moves on
even through empty hours.
Progress counts stored observation rows (every version, deleted ones included), which is
what the recompute reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from service.clickhouse import ClickHouse
from service.clock import Clock
from service.jobs.model import Job
from service.jobs.runner import Chunk
from service.rollups.buckets import Bucket
from service.rollups.recompute import index_traces_between, recompute_buckets
from service.times import ceil_hour, floor_hour, format_time, parse_time

KIND = "rollups.backfill"


def rollup_backfill_params(
    start: datetime | None, end: datetime | None, hours_per_chunk: int
) -> dict[str, Any]:
    """Params of a rollups backfill; a missing bound means "from the first row" / "to now"."""
    return {
        "from": format_time(None if start is None else floor_hour(start)),
        "to": format_time(None if end is None else ceil_hour(end)),
        "hours_per_chunk": hours_per_chunk,
    }


def _time(raw: object) -> datetime | None:
    return None if raw in (None, "") else parse_time(str(raw))


@dataclass(frozen=True)
class RollupsBackfill:
    """Recompute rollup buckets `hours_per_chunk` hours at a time."""

    name: str = KIND

    def _range(self, ch: ClickHouse, job: Job) -> tuple[datetime, datetime] | None:
        """[lo, hi) hours this job covers: the given bounds, else the data stored at the snapshot.

        Event times are not ingestion times (a row ingested before the snapshot may start
        later), so an open end is the last stored start, not the snapshot's hour.
        """
        assert job.snapshot_at is not None
        start = _time(job.params.get("from"))
        end = _time(job.params.get("to"))
        if start is None or end is None:
            first, last = ch.query_rows(
                "jobs/rollup_backfill_extent", {"snapshot": job.snapshot_at}
            )[0]
            if first is None or last is None:
                return None
            start = start or floor_hour(first)
            end = end or floor_hour(last) + timedelta(hours=1)
        return start, end

    def plan(self, ch: ClickHouse, job: Job) -> int:
        bounds = self._range(ch, job)
        if bounds is None or bounds[0] >= bounds[1]:
            return 0
        rows = ch.query_rows(
            "jobs/rollup_backfill_count",
            {"lo": bounds[0], "hi": bounds[1], "snapshot": job.snapshot_at},
        )
        return int(rows[0][0])

    def run_chunk(self, ch: ClickHouse, job: Job, clock: Clock) -> Chunk:
        # The range is resolved once, by the first chunk, and carried in the cursor: merges
        # that drop old row versions must not move the end of a job half-way through.
        if "end" in job.cursor:
            lo, end = _time(job.cursor["hour"]), _time(job.cursor["end"])
            assert lo is not None
            assert end is not None
        else:
            bounds = self._range(ch, job)
            if bounds is None:
                return Chunk(rows=0, cursor={"done": True}, finished=True)
            lo, end = bounds
            # One scan for the whole job: index the range's traces so every chunk's recompute
            # reads its buckets by primary key instead of scanning history per slice.
            index_traces_between(ch, lo, end)
        if lo >= end:
            return Chunk(
                rows=0, cursor={"hour": format_time(lo), "end": format_time(end)}, finished=True
            )
        hours = max(int(job.params.get("hours_per_chunk", 6)), 1)
        hi = min(lo + timedelta(hours=hours), end)
        rows = ch.query_rows(
            "jobs/rollup_backfill_buckets", {"lo": lo, "hi": hi, "snapshot": job.snapshot_at}
        )
        buckets: list[Bucket] = [(str(project), hour) for project, hour, _ in rows]
        if buckets:
            # The job's first chunk already widened these traces' memory and index.
            recompute_buckets(ch, buckets, remember=False)
        return Chunk(
            rows=sum(int(count) for _, _, count in rows),
            cursor={"hour": format_time(hi), "end": format_time(end)},
            finished=hi >= end,
        )
