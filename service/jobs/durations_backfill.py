"""The `durations.backfill` job: recompute named durations of already-concluded traces.

It pages through the registry of concluded traces (`duration_traces`) in primary-key order
— the cursor is the last (project, trace) done — only over traces registered at or before
the job's snapshot, and recomputes each page: one key-range read of the page's
observations and stored results, one planning step, two inserts. Recomputing replaces
rows, so a replayed page is harmless.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from itertools import groupby
from typing import Any

from service.clickhouse import ClickHouse
from service.clock import Clock
from service.durations.catalog import definitions_by_project
from service.durations.materialize import ConclusionKey, recompute, stored_trace_times_in_range
from service.durations.plan import Subject
from service.jobs.model import Job
from service.jobs.runner import Chunk
from service.traces.rows import TraceKey
from service.traces.store import load_page_rows

KIND = "durations.backfill"


def backfill_params(definition: str | None, batch_size: int) -> dict[str, Any]:
    """Params of a durations backfill (`definition` None = every definition)."""
    return {"definition": definition, "batch_size": batch_size}


def backfill_total(ch: ClickHouse, project_id: str, snapshot: datetime) -> int:
    """Concluded traces a durations backfill will visit (`project_id` '' = every project)."""
    rows = ch.query_rows(
        "durations/backfill_count", {"project_id": project_id, "snapshot": snapshot}
    )
    return int(rows[0][0])


def backfill_page(
    ch: ClickHouse, project_id: str, after: TraceKey, snapshot: datetime, limit: int
) -> list[ConclusionKey]:
    """The next `limit` concluded traces after `after`, in key order."""
    rows = ch.query_rows(
        "durations/backfill_keys",
        {
            "project_id": project_id,
            "after_project": after[0],
            "after_trace": after[1],
            "snapshot": snapshot,
            "limit": limit,
        },
    )
    return [(p, t, int(r)) for p, t, r in rows]


def recompute_page(
    ch: ClickHouse, keys: list[ConclusionKey], definition: str | None, now: datetime
) -> int:
    """Recompute one page of concluded traces for one definition (None: all); rows written."""
    written = 0
    projects = sorted({p for p, _, _ in keys})
    definitions = definitions_by_project(ch, projects)
    if definition is not None:
        definitions = {
            p: [d for d in found if d.name == definition] for p, found in definitions.items()
        }
    for project_id, group in groupby(keys, key=lambda key: key[0]):
        page = list(group)
        trace_ids = [t for _, t, _ in page]
        rows = load_page_rows(ch, project_id, trace_ids)
        stored = stored_trace_times_in_range(ch, project_id, trace_ids[0], trace_ids[-1])
        wanted = {(project_id, t) for t in trace_ids}
        stored = {key: value for key, value in stored.items() if key[:2] in wanted}
        subjects = [Subject(rows[(p, t)], revision) for p, t, revision in page]
        written += recompute(ch, subjects, definitions, now, stored=stored)
    return written


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
        recompute_page(ch, keys, job.params.get("definition"), clock())
        last = keys[-1]
        return Chunk(
            rows=len(keys),
            cursor={"project": last[0], "trace": last[1]},
            finished=len(keys) < limit,
        )
