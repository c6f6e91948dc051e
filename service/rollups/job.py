"""The scheduled rollup job: one pass, with its metrics (duration, dirty backlog, lag)."""

from __future__ import annotations

import logging
import threading

from clickhouse_connect.driver.exceptions import ClickHouseError

from service.clickhouse import ClickHouse
from service.clock import Clock
from service.metrics import Metrics
from service.rollups.ledger import LedgerWriter
from service.rollups.passes import RollupPassResult, pending_buckets, run_rollup_pass

log = logging.getLogger(__name__)


def run_scheduled_pass(
    ch: ClickHouse,
    clock: Clock,
    metrics: Metrics,
    stopping: threading.Event,
    shard_index: int,
    writer: LedgerWriter,
) -> RollupPassResult | None:
    """Run one pass on shard 0 unless the app is stopping; a failure keeps its traces dirty.

    The ledger has one writer (service/rollups/ledger.py): every other shard only reads.
    """
    if stopping.is_set() or shard_index != 0:
        return None
    try:
        result = run_rollup_pass(ch, clock, writer=writer)
    except Exception:
        metrics.rollup_pass_failures.inc()
        _record_backlog(ch, metrics)
        raise
    metrics.rollup_pass_duration.observe(result.seconds)
    metrics.rollup_lag.set(max(0.0, (clock() - result.watermark).total_seconds()))
    _record_backlog(ch, metrics)
    return result


def _record_backlog(ch: ClickHouse, metrics: Metrics) -> None:
    try:
        metrics.rollup_dirty_buckets.set(pending_buckets(ch))
    except (ClickHouseError, OSError):
        log.warning("could not count pending rollup buckets", exc_info=True)
