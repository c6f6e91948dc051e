"""How the conclusion passes have been doing lately, for /readyz and the metrics.

Two different failures, reported differently:
- the *pipeline* fails when a pass raises (ClickHouse refuses a statement, a bug): nothing
  moves until someone fixes it. `consecutive_failures` counts such passes in a row;
  FAILING_AFTER of them make the pass "failing".
- the *receiver* fails when passes run fine but no attempt succeeds (an outage at
  TA_ANALYZE_URL): deliveries wait in the outbox and retry on their own.

Neither takes the API out of rotation (see `service.api.health.readyz`): they are shown
in /readyz and alerted on from the metrics.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

from service.clock import Clock
from service.metrics import Metrics

# One failed pass is a blip (a ClickHouse restart, a timeout); three in a row is a pattern.
FAILING_AFTER = 3
MAX_ERROR_CHARS = 300


@dataclass
class PassHealth:
    """Recent outcomes of one kind of pass (detect or deliver). Thread-safe."""

    name: str
    clock: Clock
    consecutive_failures: int = 0
    last_success_at: datetime | None = None
    last_failure_at: datetime | None = None
    last_error: str = ""
    # Delivery only: since when every attempt has failed (None: the last attempt succeeded).
    attempts_failing_since: datetime | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def succeeded(self) -> None:
        with self._lock:
            self.consecutive_failures = 0
            self.last_success_at = self.clock()

    def failed(self, error: BaseException) -> None:
        with self._lock:
            self.consecutive_failures += 1
            self.last_failure_at = self.clock()
            first_line = f"{type(error).__name__}: {error}".splitlines()[0]
            self.last_error = first_line[:MAX_ERROR_CHARS]

    def attempts_made(self, delivered: int, failed: int) -> None:
        """What the attempts of one pass did (nothing to record when it made none)."""
        with self._lock:
            if delivered:
                self.attempts_failing_since = None
            elif failed and self.attempts_failing_since is None:
                self.attempts_failing_since = self.clock()

    @property
    def failing(self) -> bool:
        return self.consecutive_failures >= FAILING_AFTER

    def snapshot(self) -> PassSnapshot:
        """The facts as of now, read together (the /readyz view is built from them)."""
        with self._lock:
            return PassSnapshot(
                failing=self.failing,
                consecutive_failures=self.consecutive_failures,
                last_success_at=self.last_success_at,
                last_failure_at=self.last_failure_at,
                last_error=self.last_error,
                attempts_failing_since=self.attempts_failing_since,
            )


@dataclass(frozen=True)
class PassSnapshot:
    """One consistent reading of a `PassHealth`."""

    failing: bool
    consecutive_failures: int
    last_success_at: datetime | None
    last_failure_at: datetime | None
    last_error: str
    attempts_failing_since: datetime | None


@dataclass
class PipelineHealth:
    """The conclusion passes of one app."""

    detect: PassHealth
    deliver: PassHealth

    @classmethod
    def start(cls, clock: Clock) -> PipelineHealth:
        return cls(PassHealth("detect", clock), PassHealth("deliver", clock))


@contextlib.contextmanager
def tracked_pass(name: str, metrics: Metrics | None, health: PassHealth | None) -> Iterator[None]:
    """Count, time and remember one pass: success or the exception it raised (re-raised)."""
    started = time.perf_counter()
    try:
        yield
    except Exception as exc:
        if health is not None:
            health.failed(exc)
        if metrics is not None:
            metrics.conclusion_pass_failures.labels(name).inc()
            metrics.conclusion_consecutive_failures.labels(name).inc()
        raise
    if health is not None:
        health.succeeded()
    if metrics is not None:
        metrics.conclusion_passes.labels(name).inc()
        metrics.conclusion_pass_duration.labels(name).observe(time.perf_counter() - started)
        metrics.conclusion_consecutive_failures.labels(name).set(0)
        metrics.conclusion_last_success.labels(name).set(time.time())
