"""Exact usage and latency rollups: dirty detection, bucket recompute, and the read paths.

Public surface: `run_rollup_pass` (one scheduled pass), `recompute_buckets` (explicit
buckets, for backfills), `read_watermark`, and the read functions used by the API.
"""

from __future__ import annotations

from service.rollups.buckets import Bucket
from service.rollups.recompute import (
    RollupPassResult,
    pending_buckets,
    read_watermark,
    recompute_buckets,
    run_rollup_pass,
)

__all__ = [
    "Bucket",
    "RollupPassResult",
    "pending_buckets",
    "read_watermark",
    "recompute_buckets",
    "run_rollup_pass",
]
