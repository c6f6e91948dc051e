"""Pure decisions of conclusions: classification, backoff, Retry-After, states, cursors, wire."""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks import Webhook

from service.conclusions import webhook
from service.conclusions.detector import next_cursor, plan_conclusions, window_start
from service.conclusions.feed import decode_cursor, encode_cursor
from service.conclusions.models import Candidate, Conclusion, Status
from service.conclusions.retry import (
    MAX_DELAY_SECONDS,
    MAX_RETRY_AFTER_SECONDS,
    Outcome,
    after_attempt,
    backoff_seconds,
    classify_status,
    next_attempt_at,
    parse_retry_after,
    redriven,
)
from service.errors import InvalidParameter
from service.traces.rows import TraceRow, TraceRows
from service.traces.summary import summarize

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()


def always(value: float) -> Callable[[], float]:
    return lambda: value


def pending(attempts: int = 0) -> Conclusion:
    return Conclusion(
        project_id="p1",
        trace_id="t1",
        revision=1,
        concluded_at=NOW,
        last_activity_at=NOW - timedelta(seconds=60),
        summary={"observations": 1},
        status=Status.PENDING,
        attempts=attempts,
        next_attempt_at=NOW,
    )


@pytest.mark.parametrize(
    ("status_code", "outcome"),
    [
        (200, Outcome.DELIVERED),
        (202, Outcome.DELIVERED),
        (204, Outcome.DELIVERED),
        (408, Outcome.RETRY),
        (429, Outcome.RETRY),
        (500, Outcome.RETRY),
        (503, Outcome.RETRY),
        (599, Outcome.RETRY),
        (400, Outcome.DEAD),
        (401, Outcome.DEAD),
        (404, Outcome.DEAD),
        (410, Outcome.DEAD),
        (422, Outcome.DEAD),
        (301, Outcome.DEAD),
        (307, Outcome.DEAD),
    ],
)
def test_answers_are_classified(status_code: int, outcome: Outcome) -> None:
    assert classify_status(status_code) is outcome


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        (" 5 ", 5.0),
        ("Sun, 22 Nov 2026 10:02:00 GMT", 120.0),
        ("Sun, 22 Nov 2026 09:00:00 GMT", 0.0),  # a date in the past means "now"
        ("soon", None),
        ("-3", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_takes_seconds_or_an_http_date(
    header: str | None, seconds: float | None
) -> None:
    assert parse_retry_after(header, NOW) == seconds


def test_backoff_doubles_up_to_the_cap_with_full_jitter() -> None:
    ceilings = [backoff_seconds(n, always(1.0)) for n in range(1, 14)]
    assert ceilings[:4] == [2.0, 4.0, 8.0, 16.0]
    assert ceilings[-1] == MAX_DELAY_SECONDS
    assert backoff_seconds(5, always(0.0)) == 0.0


@given(attempts=st.integers(min_value=1, max_value=60), draw=st.floats(min_value=0, max_value=1))
def test_backoff_stays_within_zero_and_the_cap(attempts: int, draw: float) -> None:
    assert 0.0 <= backoff_seconds(attempts, lambda: draw) <= MAX_DELAY_SECONDS


def test_next_attempt_never_comes_sooner_than_retry_after_asks() -> None:
    rng = always(0.5)
    assert next_attempt_at(NOW, 1, None, rng) == NOW + timedelta(seconds=1)
    assert next_attempt_at(NOW, 1, 90, rng) == NOW + timedelta(seconds=90)
    late = next_attempt_at(NOW, 12, 1, rng)
    assert late == NOW + timedelta(seconds=MAX_DELAY_SECONDS / 2), "backoff wins when longer"
    capped = next_attempt_at(NOW, 1, 10 * 86400, rng)
    assert capped == NOW + timedelta(seconds=MAX_RETRY_AFTER_SECONDS)


def test_attempt_outcomes_move_the_state() -> None:
    done = after_attempt(pending(), Outcome.DELIVERED, now=NOW, max_attempts=3)
    assert (done.status, done.attempts, done.delivered_at) == (Status.DELIVERED, 1, NOW)

    retry = after_attempt(
        pending(),
        Outcome.RETRY,
        now=NOW,
        max_attempts=3,
        error="HTTP 503",
        rng=always(1.0),
    )
    assert (retry.status, retry.attempts, retry.last_error) == (Status.PENDING, 1, "HTTP 503")
    assert retry.next_attempt_at == NOW + timedelta(seconds=2)

    exhausted = after_attempt(pending(2), Outcome.RETRY, now=NOW, max_attempts=3, error="HTTP 503")
    assert (exhausted.status, exhausted.attempts) == (Status.DEAD, 3)
    assert exhausted.last_error == "HTTP 503 (gave up after 3 attempts)"

    rejected = after_attempt(pending(), Outcome.DEAD, now=NOW, max_attempts=3, error="HTTP 400")
    assert (rejected.status, rejected.last_error) == (Status.DEAD, "HTTP 400")

    back = redriven(rejected, NOW)
    assert (back.status, back.attempts, back.next_attempt_at) == (Status.PENDING, 0, NOW)


def candidate(trace_id: str, seconds: float, revision: int = 0) -> Candidate:
    return Candidate("p1", trace_id, NOW + timedelta(seconds=seconds), revision)


def test_cursor_moves_to_idle_before_below_the_limit_and_to_the_last_row_at_it() -> None:
    idle_before = NOW + timedelta(seconds=100)
    rows = [candidate("a", 1), candidate("b", 2)]
    assert next_cursor(None, rows, idle_before, limit=3) == idle_before
    assert next_cursor(None, rows, idle_before, limit=2) == rows[-1].last_activity
    later = NOW + timedelta(seconds=500)
    assert next_cursor(later, rows, idle_before, limit=2) == later, "never moves backwards"


def test_window_starts_an_overlap_behind_the_cursor() -> None:
    assert window_start(NOW, timedelta(seconds=60)) == NOW - timedelta(seconds=60)
    assert window_start(None, timedelta(seconds=60)).year == 1970


def test_plan_skips_traces_without_live_rows_and_bumps_the_revision() -> None:
    rows = [candidate("live", 1, revision=2), candidate("deleted", 2)]
    live = TraceRows(("p1", "live"), TraceRow("chat", NOW), ())
    summaries = {("p1", "live"): summarize(live)}
    planned = plan_conclusions(rows, summaries, now=NOW, deliver=True)
    assert [(c.trace_id, c.revision, c.status) for c in planned] == [("live", 3, Status.PENDING)]
    recorded = plan_conclusions(rows, summaries, now=NOW, deliver=False)
    assert recorded[0].status is Status.RECORDED
    assert recorded[0].next_attempt_at is None


def test_feed_cursor_round_trips_and_rejects_forgeries() -> None:
    token = encode_cursor(pending())
    assert decode_cursor(token) == (NOW, "t1", 1)
    for bad in ("", "!!!", base64.urlsafe_b64encode(b"[1,2]").decode(), "bm90IGpzb24"):
        with pytest.raises(InvalidParameter):
            decode_cursor(bad)


def test_webhook_body_and_signature() -> None:
    item = pending()
    content = webhook.body([item], batch_mode=False)
    headers = webhook.headers([item], content, signer=Webhook(SECRET), signed_at=datetime.now(UTC))
    assert headers["idempotency-key"] == "p1:t1:1"
    assert headers["webhook-id"] == "p1:t1:1"
    payload = Webhook(SECRET).verify(content, headers)
    assert payload == orjson.loads(content)
    assert payload["trace_id"] == "t1"
    assert payload["last_activity_at"] == "2026-11-22T09:59:00.000Z"
    unsigned = webhook.headers([item], content, signer=None, signed_at=NOW)
    assert "webhook-signature" not in unsigned


def test_batch_key_does_not_depend_on_order() -> None:
    a = pending()
    b = replace(a, trace_id="t2")
    assert webhook.batch_idempotency_key([a, b]) == webhook.batch_idempotency_key([b, a])
    assert webhook.batch_idempotency_key([a, b]).startswith("batch:")
    array = orjson.loads(webhook.body([a, b], batch_mode=True))
    assert [i["idempotency_key"] for i in array] == ["p1:t1:1", "p1:t2:1"]
