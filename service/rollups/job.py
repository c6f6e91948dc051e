"""The scheduled rollup job: one pass, with its metrics (duration, dirty backlog, lag)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from clickhouse_connect.driver.exceptions import ClickHouseError

from service.rollups.ledger import LedgerWriter
from service.rollups.passes import RollupPassResult, pending_buckets, run_rollup_pass

if TYPE_CHECKING:
    from service.api.app import AppContext

log = logging.getLogger(__name__)


def run_scheduled_pass(ctx: AppContext, writer: LedgerWriter) -> RollupPassResult | None:
    """Run one pass on shard 0 unless the app is stopping; a failure keeps its traces dirty.

    The ledger has one writer (service/rollups/ledger.py): every other shard only reads.
    """
    if ctx.stopping.is_set() or ctx.settings.shard_index != 0:
        return None
    metrics = ctx.metrics
    try:
        result = run_rollup_pass(ctx.clickhouse, ctx.clock, writer=writer)
    except Exception:
        metrics.rollup_pass_failures.inc()
        _record_backlog(ctx)
        raise
    metrics.rollup_pass_duration.observe(result.seconds)
    metrics.rollup_lag.set(max(0.0, (ctx.clock() - result.watermark).total_seconds()))
    _record_backlog(ctx)
    return result


def _record_backlog(ctx: AppContext) -> None:
    try:
        ctx.metrics.rollup_dirty_buckets.set(pending_buckets(ctx.clickhouse))
    except (ClickHouseError, OSError):
        log.warning("could not count pending rollup buckets", exc_info=True)
