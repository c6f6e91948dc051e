"""Exact usage and latency rollups: a per-trace contribution ledger, its passes, and the reads.

Public surface: `run_rollup_pass` (one scheduled pass), `LedgerWriter` (the one-writer lock
passes and backfills share), `rebuild_range` (the backfill primitive), `read_watermark`,
`pending_buckets`, and the read functions used by the API.
"""

from __future__ import annotations

from service.rollups.ledger import LedgerWriter, rebuild_range
from service.rollups.passes import (
    RollupPassResult,
    pending_buckets,
    read_watermark,
    run_rollup_pass,
)

__all__ = [
    "LedgerWriter",
    "RollupPassResult",
    "pending_buckets",
    "read_watermark",
    "rebuild_range",
    "run_rollup_pass",
]
