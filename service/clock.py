"""Injected time: everything time-based takes a `Clock` so tests move time instead of sleeping."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    """The wall clock, timezone-aware UTC."""
    return datetime.now(UTC)


class ManualClock:
    """A clock that only moves when told to; used by tests and benchmarks."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> datetime:
        with self._lock:
            self._now += timedelta(seconds=seconds)
            return self._now

    def set(self, when: datetime) -> None:
        with self._lock:
            self._now = when


class VersionStamp:
    """Hands out strictly increasing `ingested_at` values from a clock.

    ReplacingMergeTree keeps the row with the highest version; two writes of the same id in
    the same microsecond would tie and leave the winner to part order. Stamping through one
    monotonic counter per process makes "newest write wins" hold for every write we make.
    """

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._last = datetime.min.replace(tzinfo=UTC)
        self._lock = threading.Lock()

    def next(self) -> datetime:
        with self._lock:
            now = self._clock()
            if now <= self._last:
                now = self._last + timedelta(microseconds=1)
            self._last = now
            return now
