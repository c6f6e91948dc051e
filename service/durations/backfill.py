"""The `durations.backfill` job: recompute named durations of already-concluded traces.

It pages through the registry of concluded traces in primary-key order (the cursor is the
last (project, trace) done), only over traces registered at or before the job's snapshot,
and re-materializes each page. Recomputing replaces rows, so a replayed page is harmless.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from service.clickhouse import ClickHouse
from service.clock import Clock
from service.durations.store import backfill_page, backfill_total, materialize_durations
from service.jobs.model import Job
from service.jobs.runner import Chunk

KIND = "durations.backfill"


def backfill_params(definition: str | None, batch_size: int) -> dict[str, Any]:
    """Params of a durations backfill (`definition` None = every definition)."""
    return {"definition": definition, "batch_size": batch_size}


@dataclass(frozen=True)
class DurationsBackfill:
    """Recompute durations page by page (`batch_size` traces per chunk)."""

    name: str = KIND

    def plan(self, ch: ClickHouse, job: Job) -> int:
        assert job.snapshot_at is not None
        return backfill_total(ch, job.project_id, job.snapshot_at)

    def run_chunk(self, ch: ClickHouse, job: Job, clock: Clock) -> Chunk:
        assert job.snapshot_at is not None
        after = (str(job.cursor.get("project", "")), str(job.cursor.get("trace", "")))
        limit = int(job.params.get("batch_size", 500))
        keys = backfill_page(ch, job.project_id, after, job.snapshot_at, limit)
        if not keys:
            return Chunk(rows=0, cursor=job.cursor, finished=True)
        materialize_durations(
            ch, keys, clock, definition=job.params.get("definition"), register=False, page=True
        )
        last = keys[-1]
        return Chunk(
            rows=len(keys),
            cursor={"project": last[0], "trace": last[1]},
            finished=len(keys) < limit,
        )
