"""Which job kinds exist: the registry the runner looks a persisted job's `kind` up in."""

from __future__ import annotations

from service.durations.backfill import DurationsBackfill
from service.jobs.rollups_backfill import RollupsBackfill
from service.jobs.runner import JobKind


def default_kinds() -> dict[str, JobKind]:
    """Every job kind this build can run, by name."""
    kinds: list[JobKind] = [DurationsBackfill(), RollupsBackfill()]
    return {kind.name: kind for kind in kinds}
