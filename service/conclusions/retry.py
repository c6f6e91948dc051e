"""Pure delivery decisions: classify an answer, schedule the next attempt, move the state.

No I/O here: delivery.py only feeds these functions what the receiver said.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from enum import StrEnum

from service.conclusions.models import Conclusion, Status

# Full-jitter exponential backoff (delay ~ U(0, min(cap, base * 2^(n-1)))): retries of many
# deliveries that failed together spread out instead of hammering a recovering receiver.
BASE_DELAY_SECONDS = 2.0
MAX_DELAY_SECONDS = 600.0
# A receiver may ask for a pause with Retry-After; we honour it, but never beyond an hour,
# so a bogus far-future date cannot park a delivery forever.
MAX_RETRY_AFTER_SECONDS = 3600.0

Random = Callable[[], float]


class Outcome(StrEnum):
    """What one attempt means for the delivery."""

    DELIVERED = "delivered"
    RETRY = "retry"
    DEAD = "dead"


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
    """Seconds to wait from a `Retry-After` header (delta-seconds or an HTTP-date), or None."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def backoff_seconds(attempts: int, rng: Random = random.random) -> float:
    """Full-jitter delay after the `attempts`-th failed attempt (attempts >= 1)."""
    ceiling = min(MAX_DELAY_SECONDS, BASE_DELAY_SECONDS * 2.0 ** max(0, attempts - 1))
    return rng() * ceiling


def next_attempt_at(
    now: datetime,
    attempts: int,
    retry_after_seconds: float | None = None,
    rng: Random = random.random,
) -> datetime:
    """When to try again: the jittered backoff, but never sooner than Retry-After asks."""
    delay = backoff_seconds(attempts, rng)
    if retry_after_seconds is not None:
        delay = max(delay, min(retry_after_seconds, MAX_RETRY_AFTER_SECONDS))
    return now + timedelta(seconds=delay)


def after_attempt(
    conclusion: Conclusion,
    outcome: Outcome,
    *,
    now: datetime,
    max_attempts: int,
    error: str = "",
    retry_after_seconds: float | None = None,
    rng: Random = random.random,
) -> Conclusion:
    """The conclusion's state after one attempt with `outcome`."""
    attempts = conclusion.attempts + 1
    if outcome is Outcome.DELIVERED:
        return replace(
            conclusion,
            status=Status.DELIVERED,
            attempts=attempts,
            next_attempt_at=None,
            last_error="",
            delivered_at=now,
        )
    if outcome is Outcome.RETRY and attempts < max_attempts:
        return replace(
            conclusion,
            status=Status.PENDING,
            attempts=attempts,
            next_attempt_at=next_attempt_at(now, attempts, retry_after_seconds, rng),
            last_error=error,
        )
    reason = error if outcome is Outcome.DEAD else f"{error} (gave up after {attempts} attempts)"
    return replace(
        conclusion, status=Status.DEAD, attempts=attempts, next_attempt_at=None, last_error=reason
    )


def redriven(conclusion: Conclusion, now: datetime) -> Conclusion:
    """A dead delivery put back in the queue with a fresh attempt budget."""
    return replace(conclusion, status=Status.PENDING, attempts=0, next_attempt_at=now)
