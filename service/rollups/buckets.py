"""Bucket arithmetic for the rollups: hours, ranges, chunks and version stamps (pure)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from service.times import DAY, HOUR, ceil_day, floor_day, floor_hour

# A rollup bucket: (project_id, start of the UTC hour).
Bucket = tuple[str, datetime]


def whole_days(lo: datetime, hi: datetime) -> tuple[datetime, datetime]:
    """The run of complete UTC days inside [lo, hi), as [start, end); empty when none fit."""
    start, end = ceil_day(lo), floor_day(hi)
    return (start, end) if start < end else (lo, lo)


@dataclass(frozen=True)
class BucketChunk:
    """Buckets recomputed by one set of statements, with the bounds that let reads skip granules."""

    buckets: tuple[Bucket, ...]

    @property
    def projects(self) -> list[str]:
        return sorted({project for project, _ in self.buckets})

    @property
    def lo(self) -> datetime:
        return min(hour for _, hour in self.buckets)

    @property
    def hi(self) -> datetime:
        return max(hour for _, hour in self.buckets) + HOUR

    def params(self) -> dict[str, object]:
        """Server-side parameters shared by every recompute statement."""
        return {
            "buckets": list(self.buckets),
            "projects": self.projects,
            "lo": self.lo,
            "hi": self.hi,
        }

    @property
    def days(self) -> list[Bucket]:
        """The (project, day) pairs whose daily rows these hours feed."""
        return sorted({(project, floor_day(hour)) for project, hour in self.buckets})

    def day_params(self) -> dict[str, object]:
        """Server-side parameters of the daily recompute statements."""
        days = self.days
        return {
            "days": days,
            "projects": self.projects,
            "dlo": min(day for _, day in days),
            "dhi": max(day for _, day in days) + DAY,
        }


def normalize_buckets(buckets: Sequence[Bucket]) -> list[Bucket]:
    """Distinct buckets floored to the hour, ordered by hour then project."""
    seen = {(project, floor_hour(hour)) for project, hour in buckets}
    return sorted(seen, key=lambda b: (b[1], b[0]))


def chunk_buckets(buckets: Sequence[Bucket], size: int) -> Iterator[BucketChunk]:
    """Hour-ordered chunks of at most `size` buckets, so each chunk spans a tight time range."""
    if size < 1:
        raise ValueError("chunk size must be positive")
    ordered = normalize_buckets(buckets)
    for start in range(0, len(ordered), size):
        yield BucketChunk(tuple(ordered[start : start + size]))


class VersionCounter:
    """Strictly increasing UInt64 versions from the wall clock in nanoseconds.

    A version orders recomputes of the same bucket across overlapping passes and processes,
    so it must follow real time, not the injected (possibly frozen) business clock; taking
    it before reading ground truth means a pass that read older data always loses.
    """

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()

    def next(self) -> int:
        with self._lock:
            value = max(time.time_ns(), self._last + 1)
            self._last = value
            return value


VERSIONS = VersionCounter()
