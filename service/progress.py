"""Progress of long CLI commands: a bar on a terminal, a plain line every few seconds elsewhere.

On a terminal the bar is redrawn in place and log lines are written above it (through
`tqdm.write`), so a JSON log line never lands in the middle of the bar. Anywhere else (a
pipe, a file, a CI log) there are no `\\r` frames: one whole line every `PLAIN_EVERY_SECONDS`
and a last one at the end.

Rates are smoothed (`RateEstimate`, an exponentially weighted moving average of the rate
between updates) and no ETA is shown before a few updates have been seen, so the first
estimate is not the wild one that a slow first step would give.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any, Protocol

PLAIN_EVERY_SECONDS = 5.0
# Weight of the newest rate in the moving average, and updates needed before an ETA.
SMOOTHING = 0.3
MIN_UPDATES_FOR_ETA = 3


class Progress(Protocol):
    """Where a command reports how far it got."""

    def update(
        self,
        done: int,
        total: int | None = None,
        *,
        rate: float | None = None,
        eta: float | None = None,
        status: str | None = None,
    ) -> None: ...


def human_duration(seconds: float) -> str:
    """`45s`, `3m05s`, `2h07m`."""
    whole = max(round(seconds), 0)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def describe(
    done: int,
    total: int | None,
    unit: str,
    rate: float | None,
    eta: float | None,
    status: str | None,
) -> str:
    """`1200/5000 rows (24%), 310 rows/s, ETA 12s, running`."""
    parts = [f"{done}/{total} {unit}s ({100 * done // total}%)" if total else f"{done} {unit}s"]
    if rate is not None:
        parts.append(f"{rate:.0f} {unit}s/s")
    if eta is not None:
        parts.append(f"ETA {human_duration(eta)}")
    if status:
        parts.append(status)
    return ", ".join(parts)


class RateEstimate:
    """A smoothed rate from successive `(done, time)` observations, and the ETA from it."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.rate: float | None = None
        self._last: tuple[int, float] | None = None
        self._updates = 0

    def observe(self, done: int) -> float | None:
        now = self.clock()
        if self._last is not None:
            previous, then = self._last
            if now > then and done >= previous:
                current = (done - previous) / (now - then)
                self.rate = (
                    current
                    if self.rate is None
                    else SMOOTHING * current + (1 - SMOOTHING) * self.rate
                )
                self._updates += 1
        self._last = (done, now)
        return self.rate

    def eta(self, done: int, total: int | None) -> float | None:
        if total is None or self.rate is None or self.rate <= 0:
            return None
        if self._updates < MIN_UPDATES_FOR_ETA - 1:
            return None
        return max(total - done, 0) / self.rate


class LineProgress:
    """One whole line at the first update, then at most every `every` seconds, and at the end."""

    def __init__(
        self,
        label: str,
        unit: str,
        stream: IO[str],
        every: float = PLAIN_EVERY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label, self.unit, self.stream = label, unit, stream
        self.every, self.clock = every, clock
        self._last_written = float("-inf")
        self._pending: str | None = None

    def update(
        self,
        done: int,
        total: int | None = None,
        *,
        rate: float | None = None,
        eta: float | None = None,
        status: str | None = None,
    ) -> None:
        self._pending = describe(done, total, self.unit, rate, eta, status)
        now = self.clock()
        if now - self._last_written >= self.every:
            self._write()
            self._last_written = now

    def close(self) -> None:
        self._write()

    def _write(self) -> None:
        if self._pending is not None:
            self.stream.write(f"{self.label}: {self._pending}\n")
            self.stream.flush()
            self._pending = None


class BarProgress:
    """A tqdm bar showing our own rate and ETA (tqdm's first estimates are the wild ones)."""

    def __init__(self, label: str, unit: str, stream: IO[str]) -> None:
        from tqdm import tqdm

        self.unit = unit
        # A terminal that reports no width (some ptys) would get an empty bar.
        sized = _columns(stream) > 0
        self.bar = tqdm(
            desc=label,
            total=None,
            unit=unit,
            file=stream,
            dynamic_ncols=sized,
            ncols=None if sized else 100,
            nrows=None if sized else 20,
            bar_format="{desc}: {n_fmt} {unit}s{postfix}",
        )

    def update(
        self,
        done: int,
        total: int | None = None,
        *,
        rate: float | None = None,
        eta: float | None = None,
        status: str | None = None,
    ) -> None:
        bar = self.bar
        if total and bar.total != total:
            bar.total = total
            bar.bar_format = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt}{postfix}"
        bar.n = done
        extra = []
        if rate is not None:
            extra.append(f"{rate:.0f} {self.unit}s/s")
        if eta is not None:
            extra.append(f"ETA {human_duration(eta)}")
        if status:
            extra.append(status)
        bar.set_postfix_str(", ".join(extra), refresh=False)
        bar.refresh()

    def close(self) -> None:
        self.bar.close()


def _columns(stream: IO[str]) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError, AttributeError):
        return 0


class _AboveTheBar:
    """A stream for log handlers that writes each line above the bar, then redraws it."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        from tqdm import tqdm

        tqdm.write(text.rstrip("\n"), file=self.stream)
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


@contextmanager
def _logs_above_the_bar(stream: IO[str]) -> Iterator[None]:
    handlers = [
        h
        for h in logging.getLogger().handlers
        if isinstance(h, logging.StreamHandler) and h.stream in (sys.stderr, sys.stdout, stream)
    ]
    previous: list[tuple[logging.StreamHandler[Any], Any]] = []
    for handler in handlers:
        previous.append((handler, handler.setStream(_AboveTheBar(handler.stream))))
    try:
        yield
    finally:
        for handler, original in previous:
            handler.setStream(original)


@contextmanager
def progress(
    label: str,
    unit: str,
    *,
    stream: IO[str] | None = None,
    every: float = PLAIN_EVERY_SECONDS,
) -> Iterator[Progress]:
    """A bar when `stream` (stderr by default) is a terminal, plain lines otherwise."""
    out = stream if stream is not None else sys.stderr
    if out.isatty():
        bar = BarProgress(label, unit, out)
        try:
            with _logs_above_the_bar(out):
                yield bar
        finally:
            bar.close()
        return
    lines = LineProgress(label, unit, out, every)
    try:
        yield lines
    finally:
        lines.close()
