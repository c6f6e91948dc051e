"""Pure delivery decisions: classify an answer, schedule the next attempt, move the state.

No I/O here: delivery.py only feeds these functions what happened to an attempt.

Retries are bounded by time, not only by count. After the n-th failed attempt the next one
waits a full-jitter delay, uniform in [0, min(MAX_DELAY, BASE_DELAY * 2^(n-1))]: the
first retries come within seconds, later ones at most MAX_DELAY apart. Retries continue
until TA_ANALYZE_RETRY_WINDOW_SECONDS have passed since the first attempt (the last retry
is moved to the window's end, so one comes at the end), or until TA_ANALYZE_MAX_ATTEMPTS
when that is set. `schedule_table` prints the resulting schedule (README, "Retries").
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from enum import StrEnum

from service.conclusions.models import Conclusion, Status

BASE_DELAY_SECONDS = 1.0
MAX_DELAY_SECONDS = 600.0
DEFAULT_WINDOW_SECONDS = 86_400.0
# A receiver may ask for a pause with Retry-After. We honour it, but never beyond an hour
# or past the retry window, so a bogus far-future date cannot park a delivery.
MAX_RETRY_AFTER_SECONDS = 3600.0
# attempts is stored as UInt16.
MAX_ATTEMPTS_STORED = 65_535

Random = Callable[[], float]


class Outcome(StrEnum):
    """What one attempt means for the delivery."""

    DELIVERED = "delivered"
    RETRY = "retry"
    DEAD = "dead"


@dataclass(frozen=True)
class RetryPolicy:
    """How long a failing delivery keeps being retried.

    `window_seconds`: from the first attempt to the last. `max_attempts`: an extra upper
    bound on attempts (None: the window alone decides).
    """

    window_seconds: float = DEFAULT_WINDOW_SECONDS
    max_attempts: int | None = None


RETRYABLE_STATUSES = frozenset({408, 429})


def classify_status(status_code: int) -> Outcome:
    """2xx delivered; 408, 429 and 5xx retried; anything else (other 4xx, 1xx, 3xx) dead.

    Redirects are not followed: a 3xx means TA_ANALYZE_URL points at the wrong place, which
    retrying cannot fix.
    """
    if 200 <= status_code < 300:
        return Outcome.DELIVERED
    if status_code in RETRYABLE_STATUSES or 500 <= status_code < 600:
        return Outcome.RETRY
    return Outcome.DEAD


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or an HTTP-date), or None.

    Anything unreadable is None: a receiver's odd header never fails the attempt's record.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max(0.0, (when - now).total_seconds())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def delay_ceiling(attempts: int) -> float:
    """The largest delay after the `attempts`-th failed attempt (attempts >= 1)."""
    exponent = min(max(0, attempts - 1), 64)
    return min(MAX_DELAY_SECONDS, BASE_DELAY_SECONDS * 2.0**exponent)


def backoff_seconds(attempts: int, rng: Random = random.random) -> float:
    """Full-jitter delay after the `attempts`-th failed attempt (attempts >= 1)."""
    return rng() * delay_ceiling(attempts)


def window_end(first_attempt_at: datetime, policy: RetryPolicy) -> datetime:
    """When a delivery that first tried at `first_attempt_at` stops being retried."""
    return first_attempt_at + timedelta(seconds=policy.window_seconds)


def next_attempt_at(
    now: datetime,
    attempts: int,
    retry_after_seconds: float | None = None,
    rng: Random = random.random,
    *,
    deadline: datetime | None = None,
) -> datetime:
    """When to try again: the jittered backoff, never sooner than Retry-After asks, and
    never later than `deadline` (the end of the retry window)."""
    delay = backoff_seconds(attempts, rng)
    if retry_after_seconds is not None:
        delay = max(delay, min(retry_after_seconds, MAX_RETRY_AFTER_SECONDS))
    when = now + timedelta(seconds=delay)
    return when if deadline is None else min(when, deadline)


def give_up_reason(
    attempts: int, first_attempt_at: datetime, now: datetime, policy: RetryPolicy
) -> str | None:
    """Why a delivery that just failed its `attempts`-th attempt is dead, or None to retry."""
    if policy.max_attempts is not None and attempts >= policy.max_attempts:
        return f"gave up after {attempts} attempts"
    if now >= window_end(first_attempt_at, policy):
        return f"gave up after {attempts} attempts over {describe_seconds(policy.window_seconds)}"
    return None


def after_attempt(
    conclusion: Conclusion,
    outcome: Outcome,
    *,
    now: datetime,
    policy: RetryPolicy,
    error: str = "",
    retry_after_seconds: float | None = None,
    rng: Random = random.random,
) -> Conclusion:
    """The conclusion's state after one attempt with `outcome`."""
    attempts = min(conclusion.attempts + 1, MAX_ATTEMPTS_STORED)
    first = conclusion.first_attempt_at or now
    if outcome is Outcome.DELIVERED:
        return replace(
            conclusion,
            status=Status.DELIVERED,
            attempts=attempts,
            first_attempt_at=first,
            next_attempt_at=None,
            last_error="",
            delivered_at=now,
        )
    if outcome is Outcome.RETRY:
        reason = give_up_reason(attempts, first, now, policy)
        if reason is None:
            return replace(
                conclusion,
                status=Status.PENDING,
                attempts=attempts,
                first_attempt_at=first,
                next_attempt_at=next_attempt_at(
                    now, attempts, retry_after_seconds, rng, deadline=window_end(first, policy)
                ),
                last_error=error,
            )
        error = f"{error} ({reason})"
    return replace(
        conclusion,
        status=Status.DEAD,
        attempts=attempts,
        first_attempt_at=first,
        next_attempt_at=None,
        last_error=error,
    )


def redriven(conclusion: Conclusion, now: datetime) -> Conclusion:
    """A dead delivery put back in the queue with a fresh attempt budget and window."""
    return replace(
        conclusion,
        status=Status.PENDING,
        attempts=0,
        first_attempt_at=None,
        next_attempt_at=now,
    )


@dataclass(frozen=True)
class ScheduleRow:
    """One line of the retry schedule: the wait after the n-th failed attempt."""

    attempt: int
    max_delay: float
    cumulative_expected: float  # expected time from the first attempt to attempt n + 1
    cumulative_max: float


def schedule_table(policy: RetryPolicy, rows: int = 12) -> list[ScheduleRow]:
    """The retry schedule's first `rows` lines (the README's table is printed from this)."""
    table = []
    expected = longest = 0.0
    for attempt in range(1, rows + 1):
        ceiling = delay_ceiling(attempt)
        expected += ceiling / 2
        longest += ceiling
        table.append(
            ScheduleRow(
                attempt,
                ceiling,
                min(expected, policy.window_seconds),
                min(longest, policy.window_seconds),
            )
        )
    return table


def describe_seconds(seconds: float) -> str:
    """`86400` → `24h`, `90` → `90s`, `5400` → `90m`: for messages and the README."""
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{int(seconds // 3600)}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    return f"{seconds:g}s"
