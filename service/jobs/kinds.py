"""Which job kinds exist: the registry the runner looks a persisted job's `kind` up in."""

from __future__ import annotations

from service.jobs.durations_backfill import DurationsBackfill
from service.jobs.rollups_backfill import RollupsBackfill
from service.jobs.runner import JobKind
from service.rollups.ledger import LedgerWriter


def default_kinds(ledger_writer: LedgerWriter | None = None) -> dict[str, JobKind]:
    """Every job kind this build can run, by name; rollup backfills hold `ledger_writer`."""
    kinds: list[JobKind] = [DurationsBackfill(), RollupsBackfill(ledger_writer)]
    return {kind.name: kind for kind in kinds}
