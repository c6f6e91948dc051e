"""Latency percentiles from log-bucket histograms: DDSketch's mapping, merged by addition.

A duration of x ms (x >= 1) is counted in bucket i = ceil(log_g(x)) with g = (1+a)/(1-a) and
relative accuracy a = 0.01; bucket i stands for the value 2·g^i/(g+1), which is within a
(relative) of every x in (g^(i-1), g^i]. 0 ms has its own bucket. ClickHouse assigns the
buckets (queries/rollups/measured.sql, which must match `bucket_index`) and keeps them
sparse; a read lays each histogram out dense, position 1 = the 0 ms bucket, position i + 2
= bucket i (queries/rollups/dense_histogram.sql, mirrored by `position_index`), and adds
them element-wise. That is exact whatever the range, so a reported percentile is within 1%
of the true value at its rank, and so is `max_ms`, the value of the bucket holding the
last rank.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

RELATIVE_ACCURACY = 0.01
GAMMA = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)
ZERO_BUCKET = -32768


def bucket_index(ms: float) -> int:
    """The histogram bucket of one non-negative duration (mirrors the SQL)."""
    if ms < 1:
        return ZERO_BUCKET
    return math.ceil(math.log(ms) / math.log(GAMMA))


def position_index(position: int) -> int:
    """The bucket counted at 1-based `position` of a dense histogram."""
    if position < 1:
        raise ValueError("dense histogram positions start at 1")
    return ZERO_BUCKET if position == 1 else position - 2


def bucket_value(index: int) -> float:
    """The value a bucket reports: within RELATIVE_ACCURACY of everything it holds."""
    if index == ZERO_BUCKET:
        return 0.0
    return 2 * GAMMA**index / (GAMMA + 1)


def quantiles(histogram: Mapping[int, int], levels: Sequence[float]) -> list[float | None]:
    """The value at rank q·(n-1) for each level q (None for an empty histogram)."""
    total = sum(histogram.values())
    if total == 0:
        return [None] * len(levels)
    ordered = sorted(histogram.items())
    out: list[float | None] = []
    for level in levels:
        rank = level * (total - 1)
        seen = 0
        for index, count in ordered:
            seen += count
            if seen > rank:
                out.append(bucket_value(index))
                break
    return out
