"""Pure decisions of conclusions: classification, backoff, Retry-After, states, cursors, wire."""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks import Webhook

from service.conclusions import webhook
from service.conclusions.detector import next_cursor, plan_conclusions, window_start
from service.conclusions.feed import decode_cursor, encode_cursor
from service.conclusions.models import Candidate, Conclusion, Status, key_part
from service.conclusions.retry import (
    MAX_DELAY_SECONDS,
    MAX_RETRY_AFTER_SECONDS,
    Outcome,
    RetryPolicy,
    after_attempt,
    backoff_seconds,
    classify_status,
    next_attempt_at,
    parse_retry_after,
    redriven,
    schedule_table,
)
from service.errors import InvalidParameter
from service.traces.rows import TraceRow, TraceRows
from service.traces.summary import summarize

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
THREE = RetryPolicy(window_seconds=86_400, max_attempts=3)


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
        ("Sun, 22 Nov 99999 10:02:00 GMT", None),  # out of range: unreadable, not an error
    ],
)
def test_retry_after_takes_seconds_or_an_http_date(
    header: str | None, seconds: float | None
) -> None:
    assert parse_retry_after(header, NOW) == seconds


def test_backoff_doubles_from_one_second_up_to_the_cap_with_full_jitter() -> None:
    ceilings = [backoff_seconds(n, always(1.0)) for n in range(1, 14)]
    assert ceilings[:4] == [1.0, 2.0, 4.0, 8.0]
    assert ceilings[-1] == MAX_DELAY_SECONDS
    assert backoff_seconds(5, always(0.0)) == 0.0
    assert backoff_seconds(10_000, always(1.0)) == MAX_DELAY_SECONDS


@given(attempts=st.integers(min_value=1, max_value=60), draw=st.floats(min_value=0, max_value=1))
def test_backoff_stays_within_zero_and_the_cap(attempts: int, draw: float) -> None:
    assert 0.0 <= backoff_seconds(attempts, lambda: draw) <= MAX_DELAY_SECONDS


def test_next_attempt_never_comes_sooner_than_retry_after_asks() -> None:
    rng = always(0.5)
    assert next_attempt_at(NOW, 1, None, rng) == NOW + timedelta(seconds=0.5)
    assert next_attempt_at(NOW, 1, 90, rng) == NOW + timedelta(seconds=90)
    late = next_attempt_at(NOW, 12, 1, rng)
    assert late == NOW + timedelta(seconds=MAX_DELAY_SECONDS / 2), "backoff wins when longer"
    capped = next_attempt_at(NOW, 1, 10 * 86400, rng)
    assert capped == NOW + timedelta(seconds=MAX_RETRY_AFTER_SECONDS)


def test_attempt_outcomes_move_the_state() -> None:
    done = after_attempt(pending(), Outcome.DELIVERED, now=NOW, policy=THREE)
    assert (done.status, done.attempts, done.delivered_at) == (Status.DELIVERED, 1, NOW)

    retry = after_attempt(
        pending(), Outcome.RETRY, now=NOW, policy=THREE, error="HTTP 503", rng=always(1.0)
    )
    assert (retry.status, retry.attempts, retry.last_error) == (Status.PENDING, 1, "HTTP 503")
    assert retry.next_attempt_at == NOW + timedelta(seconds=1)
    assert retry.first_attempt_at == NOW

    exhausted = after_attempt(pending(2), Outcome.RETRY, now=NOW, policy=THREE, error="HTTP 503")
    assert (exhausted.status, exhausted.attempts) == (Status.DEAD, 3)
    assert exhausted.last_error == "HTTP 503 (gave up after 3 attempts)"

    rejected = after_attempt(pending(), Outcome.DEAD, now=NOW, policy=THREE, error="HTTP 400")
    assert (rejected.status, rejected.last_error) == (Status.DEAD, "HTTP 400")

    back = redriven(rejected, NOW)
    assert (back.status, back.attempts, back.next_attempt_at) == (Status.PENDING, 0, NOW)
    assert back.first_attempt_at is None, "a redrive starts a fresh retry window"


def test_retries_go_on_until_the_window_has_passed_since_the_first_attempt() -> None:
    policy = RetryPolicy(window_seconds=3600)
    state, now = pending(), NOW
    while True:
        state = after_attempt(state, Outcome.RETRY, now=now, policy=policy, error="HTTP 503")
        if state.status is Status.DEAD:
            break
        assert state.first_attempt_at == NOW
        assert state.next_attempt_at is not None
        assert state.next_attempt_at <= NOW + timedelta(seconds=3600), "never past the window"
        now = state.next_attempt_at
    assert now == NOW + timedelta(seconds=3600), "the last attempt comes at the window's end"
    assert state.attempts > 8, "an hour of outage is retried well past the old eight attempts"
    assert state.last_error == f"HTTP 503 (gave up after {state.attempts} attempts over 1h)"


def test_max_attempts_still_bounds_a_window() -> None:
    policy = RetryPolicy(window_seconds=86_400, max_attempts=2)
    first = after_attempt(pending(), Outcome.RETRY, now=NOW, policy=policy)
    assert first.status is Status.PENDING
    later = NOW + timedelta(seconds=5)
    second = after_attempt(first, Outcome.RETRY, now=later, policy=policy, error="x")
    assert (second.status, second.last_error) == (Status.DEAD, "x (gave up after 2 attempts)")


def test_retry_after_never_reaches_past_the_window() -> None:
    policy = RetryPolicy(window_seconds=600)
    state = after_attempt(
        pending(), Outcome.RETRY, now=NOW, policy=policy, retry_after_seconds=3000
    )
    assert state.next_attempt_at == NOW + timedelta(seconds=600)


@given(
    draws=st.lists(st.floats(min_value=0, max_value=1), min_size=1, max_size=400),
    window=st.integers(min_value=1, max_value=7 * 86_400),
)
def test_every_retry_lies_inside_the_window(draws: list[float], window: int) -> None:
    policy = RetryPolicy(window_seconds=window)
    state, now = pending(), NOW
    for draw in draws:
        state = after_attempt(state, Outcome.RETRY, now=now, policy=policy, rng=lambda d=draw: d)
        if state.status is Status.DEAD:
            assert now >= NOW + timedelta(seconds=window)
            return
        assert state.next_attempt_at is not None
        assert now <= state.next_attempt_at <= NOW + timedelta(seconds=window)
        now = state.next_attempt_at


@pytest.mark.parametrize(
    ("text", "encoded"),
    [
        ("t1", "t1"),
        ("trace-0f3a_B.~!@#/", "trace-0f3a_B.~!@#/"),
        ("café", "caf%C3%A9"),
        ("a:b", "a%3Ab"),
        ("50%", "50%25"),
        ("two words", "two%20words"),
        ("line\nbreak\x00", "line%0Abreak%00"),
        ("日本", "%E6%97%A5%E6%9C%AC"),
        ("\ud800", "%ED%A0%80"),  # a lone surrogate still gets a key
    ],
)
def test_key_parts_are_percent_encoded_outside_visible_ascii(text: str, encoded: str) -> None:
    assert key_part(text) == encoded


@given(a=st.text(), b=st.text())
def test_key_parts_are_header_safe_and_distinct(a: str, b: str) -> None:
    for part in (key_part(a), key_part(b)):
        assert all(0x21 <= ord(ch) < 0x7F for ch in part)
        assert ":" not in part
    assert (key_part(a) == key_part(b)) == (a == b)


def test_the_idempotency_key_encodes_each_part_and_the_body_keeps_the_real_ids() -> None:
    item = replace(pending(), project_id="p:1", trace_id="café")
    assert item.idempotency_key == "p%3A1:caf%C3%A9:1"
    content = webhook.body([webhook.item_json(item, batch_mode=False)], batch_mode=False)
    headers = webhook.headers([item], content, signer=Webhook(SECRET), signed_at=NOW)
    assert headers["idempotency-key"] == headers["webhook-id"] == "p%3A1:caf%C3%A9:1"
    assert all(value.isascii() for value in headers.values())
    assert orjson.loads(content)["trace_id"] == "café"


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
    content = webhook.body([webhook.item_json(item, batch_mode=False)], batch_mode=False)
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
    parts = [webhook.item_json(i, batch_mode=True) for i in (a, b)]
    array = orjson.loads(webhook.body(parts, batch_mode=True))
    assert [i["idempotency_key"] for i in array] == ["p1:t1:1", "p1:t2:1"]


DASH = "\u2013"  # the README's ranges use an en dash


def test_the_readme_schedule_table_is_the_codes() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    for row in schedule_table(RetryPolicy(), rows=10):
        line = (
            f"| {row.attempt} | 0{DASH}{row.max_delay:g} s | {row.cumulative_expected:g} s "
            f"| {row.cumulative_max:g} s |"
        )
        assert line in readme
    assert f"| 11, 12, \u2026 | 0{DASH}{MAX_DELAY_SECONDS:g} s |" in readme
