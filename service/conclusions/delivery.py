"""Delivery: POST due conclusions to TA_ANALYZE_URL, concurrently, and record the outcomes.

A pass takes this shard's due outbox rows and sends them with TA_ANALYZE_CONCURRENCY
requests in flight through the app's `Sender`. The Sender is a thread pool sharing one
keep-alive httpx.Client that lives as long as the app. It uses the sync client because
httpx's async pool costs more CPU per request, and the job already runs in a worker thread.
Each answer becomes the next state through the pure functions in `retry`. Outcomes are
written as they come in, at least every FLUSH_SECONDS and at most FLUSH_MAX_ITEMS at a
time, so a crash repeats only the last moment's outcomes. Delivery is at least once: a
state is final only once written, and anything not confirmed by then stays pending and is
sent again.

One item never stops the others. Anything that goes wrong while preparing or sending one
request (an id that cannot be encoded, a stored summary that is not JSON, an unexpected
exception) is recorded against that request's conclusions with the reason. A failure that
would happen again on every try (preparing the request) makes them dead at once. Anything
else is retried like a network error.

Each attempt has one deadline, TA_ANALYZE_TIMEOUT_SECONDS, for the whole exchange
(`transport.attempt_deadline`), not per socket read. On shutdown (`stopping` set) no new
request starts; requests already in flight end by their deadline and are recorded.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

import httpx
from standardwebhooks import Webhook

from service.clickhouse import ClickHouse
from service.clock import Clock, VersionStamp, system_clock
from service.conclusions import store, webhook
from service.conclusions.health import PassHealth, tracked_pass
from service.conclusions.models import Conclusion, Status
from service.conclusions.retry import (
    Outcome,
    Random,
    RetryPolicy,
    after_attempt,
    classify_status,
    parse_retry_after,
    redriven,
)
from service.conclusions.transport import (
    DeadlineTransport,
    attempt_deadline,
    environment_proxy,
)
from service.metrics import Metrics
from service.settings import Settings

log = logging.getLogger(__name__)

MAX_ERROR_CHARS = 300
# How much of a receiver's answer is read: enough for an error message, and a 2xx body
# this small is drained so its connection can be reused. A longer one closes it.
MAX_RESPONSE_BYTES = 64 * 1024
# The delivery job polls the outbox this often (never less often than detection runs):
# a new conclusion waits at most this long for its first attempt, and a retry fires within
# this long of its due time. An idle poll is one small query on the outbox.
DELIVERY_POLL_SECONDS = 1.0
# Outcomes are written at least this often while a round runs, and at most this many per
# write: at most two inserts (records, outbox) per FLUSH_SECONDS, plus one pair per
# FLUSH_MAX_ITEMS outcomes. A crash repeats at most what completed since the last write
# (under FLUSH_SECONDS' worth, at most FLUSH_MAX_ITEMS) and what was in flight.
FLUSH_SECONDS = 0.5
FLUSH_MAX_ITEMS = 1000


def delivery_interval(settings: Settings) -> float:
    """Seconds between delivery passes."""
    return min(DELIVERY_POLL_SECONDS, settings.check_interval_seconds)


def retry_policy(settings: Settings) -> RetryPolicy:
    """The retry window and attempt bound the settings ask for."""
    return RetryPolicy(
        window_seconds=settings.analyze_retry_window_seconds,
        max_attempts=settings.analyze_max_attempts,
    )


@dataclass(frozen=True)
class Attempt:
    """What happened to one request (None outcome: not sent, because we are stopping)."""

    items: tuple[Conclusion, ...]
    outcome: Outcome | None
    error: str = ""
    retry_after: str | None = None
    seconds: float = 0.0
    sent: bool = True  # False: failed before any byte went out (preparation)


@dataclass
class DeliveryReport:
    """Counts of one delivery pass, by what happened to each conclusion."""

    delivered: int = 0
    retrying: int = 0  # failed, scheduled again
    dead: int = 0  # died in this pass
    not_sent: int = 0  # due, but left pending because the service is stopping
    requests: int = 0  # POSTs made (fewer than conclusions in batch mode)
    writes: int = 0  # times outcomes were written (each: two inserts)
    pending: int = 0  # open deliveries after the pass, all shards (the outbox)
    dead_total: int = 0  # dead deliveries awaiting a redrive, all shards
    slots_dropped: int = 0  # closed outbox slots compacted away by this pass
    errors: list[str] = field(default_factory=list)  # distinct failure reasons, first few

    def add(self, states: Sequence[Conclusion]) -> None:
        for state in states:
            if state.status is Status.DELIVERED:
                self.delivered += 1
                continue
            if state.status is Status.PENDING:
                self.retrying += 1
            else:
                self.dead += 1
            if len(self.errors) < 5 and state.last_error not in self.errors:
                self.errors.append(state.last_error)


def chunk(items: Sequence[Conclusion], size: int) -> list[tuple[Conclusion, ...]]:
    """Split into requests of `size` conclusions (1: one conclusion per POST)."""
    return [tuple(items[i : i + size]) for i in range(0, len(items), size)]


def describe(exc: BaseException) -> str:
    """`Type: message` on one line, capped, for `last_error`."""
    text = f"{type(exc).__name__}: {exc}".replace("\n", " ")
    return text[:MAX_ERROR_CHARS]


class Sender:
    """The HTTP side of delivery, built once per app and kept for its lifetime.

    One `httpx.Client` whose keep-alive pool (TA_ANALYZE_CONCURRENCY connections) outlives
    every pass, over a `DeadlineTransport` that holds each attempt to
    TA_ANALYZE_TIMEOUT_SECONDS in total; a thread pool of the same size; and the Standard
    Webhooks signer built once from the secret. `transport` replaces the network (tests);
    it then enforces no deadline of its own. Signatures are stamped with the wall clock,
    never an injected one: receivers reject timestamps minutes off.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        assert settings.analyze_url is not None
        self.url = settings.analyze_url
        self.batch_mode = settings.analyze_batch_size > 1
        self.timeout = settings.analyze_timeout_seconds
        secret = settings.webhook_secret
        self.signer = Webhook(secret.get_secret_value()) if secret is not None else None
        workers = settings.analyze_concurrency
        limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)
        self.client = httpx.Client(
            timeout=self.timeout,
            limits=limits,
            transport=transport or DeadlineTransport(limits, environment_proxy(self.url)),
            follow_redirects=False,
        )
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ta-deliver")

    def submit(
        self, requests: Sequence[tuple[Conclusion, ...]], halted: Callable[[], bool]
    ) -> list[Future[list[Attempt]]]:
        """Queue every request; each starts only if `halted()` is still false by then.

        A future never raises: whatever goes wrong becomes an `Attempt` with its reason.
        """
        return [self.pool.submit(self._send, items, halted) for items in requests]

    def _send(self, items: tuple[Conclusion, ...], halted: Callable[[], bool]) -> list[Attempt]:
        if halted():
            return [Attempt(items, None, sent=False)]
        try:
            return self._attempt(items)
        except Exception as exc:  # a bug below: record it against these items, go on
            log.exception("delivery attempt failed unexpectedly")
            return [Attempt(items, Outcome.RETRY, f"unexpected error: {describe(exc)}")]

    def _attempt(self, items: tuple[Conclusion, ...]) -> list[Attempt]:
        failed: list[Attempt] = []
        parts: list[bytes] = []
        kept: list[Conclusion] = []
        for item in items:
            try:
                if item.defect:
                    raise ValueError(item.defect)
                parts.append(webhook.item_json(item, batch_mode=self.batch_mode))
                kept.append(item)
            except Exception as exc:
                error = f"could not encode the webhook body: {describe(exc)}"
                failed.append(Attempt((item,), Outcome.DEAD, error, sent=False))
        if not kept:
            return failed
        try:
            content = webhook.body(parts, batch_mode=self.batch_mode)
            headers = webhook.headers(kept, content, signer=self.signer, signed_at=system_clock())
            request = self.client.build_request("POST", self.url, content=content, headers=headers)
        except Exception as exc:
            if len(kept) > 1:  # find the one at fault: each item as a batch of its own
                return failed + [a for item in kept for a in self._attempt((item,))]
            error = f"could not build the request: {describe(exc)}"
            return [*failed, Attempt(tuple(kept), Outcome.DEAD, error, sent=False)]
        return [*failed, self._post(tuple(kept), request)]

    def _post(self, items: tuple[Conclusion, ...], request: httpx.Request) -> Attempt:
        started = time.perf_counter()
        try:
            with attempt_deadline(self.timeout):
                response = self.client.send(request, stream=True)
                try:
                    answer = _read_capped(response)
                finally:
                    response.close()
        except httpx.TimeoutException as exc:
            seconds = time.perf_counter() - started
            error = (
                f"timed out after {seconds:.1f}s (TA_ANALYZE_TIMEOUT_SECONDS="
                f"{self.timeout:g}): {describe(exc)}"
            )
            return Attempt(items, Outcome.RETRY, error[:MAX_ERROR_CHARS], seconds=seconds)
        except httpx.TransportError as exc:
            # Refused or reset connections, protocol errors: the receiver may be back soon.
            seconds = time.perf_counter() - started
            return Attempt(items, Outcome.RETRY, describe(exc), seconds=seconds)
        outcome = classify_status(response.status_code)
        error = "" if outcome is Outcome.DELIVERED else _describe(response.status_code, answer)
        return Attempt(
            items,
            outcome,
            error,
            retry_after=response.headers.get("retry-after"),
            seconds=time.perf_counter() - started,
        )

    def close(self) -> None:
        """Wait for requests in flight (each ends by its deadline), then close the pool."""
        self.pool.shutdown(wait=True)
        self.client.close()

    def __enter__(self) -> Sender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read_capped(response: httpx.Response) -> bytes:
    """Up to MAX_RESPONSE_BYTES of the body (all of a short one, so the connection stays)."""
    received = bytearray()
    for piece in response.iter_bytes():
        received += piece
        if len(received) >= MAX_RESPONSE_BYTES:
            break
    return bytes(received[:MAX_RESPONSE_BYTES])


def _describe(status_code: int, answer: bytes) -> str:
    text = answer.decode("utf-8", "replace").strip().replace("\n", " ")
    return f"HTTP {status_code}: {text}"[:MAX_ERROR_CHARS]


def next_states(
    attempts: Sequence[Attempt], *, now: datetime, policy: RetryPolicy, rng: Random
) -> list[Conclusion]:
    """The new state of every conclusion that was sent (unsent ones keep theirs)."""
    states = []
    for attempt in attempts:
        if attempt.outcome is None:
            continue
        retry_after = parse_retry_after(attempt.retry_after, now)
        for item in attempt.items:
            states.append(
                after_attempt(
                    item,
                    attempt.outcome,
                    now=now,
                    policy=policy,
                    error=attempt.error,
                    retry_after_seconds=retry_after,
                    rng=rng,
                )
            )
    return states


def run_delivery_pass(
    ch: ClickHouse,
    settings: Settings,
    sender: Sender | None,
    *,
    clock: Clock,
    stamp: VersionStamp,
    stopping: threading.Event,
    metrics: Metrics | None = None,
    health: PassHealth | None = None,
    rng: Random = random.random,
    max_rounds: int = 100,
) -> DeliveryReport:
    """Deliver this shard's due conclusions, round after round while rounds come back full,
    then compact the outbox.

    Without a sender (no TA_ANALYZE_URL) nothing is sent: conclusions were recorded as
    `recorded`. The outbox gauges are refreshed even when the pass fails.
    """
    report = DeliveryReport()
    with tracked_pass("deliver", metrics, health):
        try:
            if sender is not None:
                rounds = _Rounds(ch, settings, sender, report, clock, stamp, stopping, metrics, rng)
                rounds.run(max_rounds)
                if health is not None:
                    health.attempts_made(report.delivered, report.retrying + report.dead)
            report.slots_dropped = len(store.compact_outbox(ch, clock()).dropped)
        finally:
            _refresh_counts(ch, report, metrics)
    return report


@dataclass
class _Rounds:
    """The sending part of one delivery pass: rounds of due conclusions, outcomes written
    as they come in."""

    ch: ClickHouse
    settings: Settings
    sender: Sender
    report: DeliveryReport
    clock: Clock
    stamp: VersionStamp
    stopping: threading.Event
    metrics: Metrics | None
    rng: Random

    def run(self, max_rounds: int) -> None:
        limit = self.settings.check_batch_limit
        for _ in range(max_rounds):
            due = store.due_deliveries(
                self.ch,
                now=self.clock(),
                shard_count=self.settings.shard_count,
                shard_index=self.settings.shard_index,
                limit=limit,
            )
            if not due or self.stopping.is_set():
                return
            # Another round only for a full, healthy round: when the receiver is failing,
            # its retries wait for their backoff instead of a tight loop in this pass.
            if not self.round(due) or len(due) < limit:
                return

    def round(self, due: Sequence[Conclusion]) -> bool:
        """Send one round, writing outcomes as they come in; True if every one delivered.

        An outcome waits at most FLUSH_SECONDS before it is written, and a write takes at
        most FLUSH_MAX_ITEMS of them.
        """
        policy = retry_policy(self.settings)
        halted = threading.Event()  # set when writing fails: start nothing more
        requests = chunk(due, self.settings.analyze_batch_size)
        # Finished requests arrive on a queue: O(1) per completion, where waiting on the
        # set of futures would register with every pending one each time.
        finished: queue.SimpleQueue[Future[list[Attempt]]] = queue.SimpleQueue()
        futures = self.sender.submit(requests, lambda: self.stopping.is_set() or halted.is_set())
        for future in futures:
            future.add_done_callback(finished.put)
        remaining = len(futures)
        buffer: list[Conclusion] = []
        oldest = 0.0  # when the oldest buffered outcome came in
        all_delivered = True
        try:
            while remaining:
                if buffer:
                    wait_for = max(0.0, oldest + FLUSH_SECONDS - time.monotonic())
                    try:
                        future = finished.get(timeout=wait_for)
                    except queue.Empty:
                        self.write(buffer)
                        continue
                else:
                    future = finished.get()
                remaining -= 1
                attempts = future.result()
                states = _states(attempts, self.clock(), policy, self.rng)
                _observe_attempts(self.metrics, attempts, states)
                self.report.requests += sum(1 for a in attempts if a.sent)
                unsent = sum(len(a.items) for a in attempts if a.outcome is None)
                self.report.not_sent += unsent
                all_delivered &= not unsent and all(s.status is Status.DELIVERED for s in states)
                if states and not buffer:
                    oldest = time.monotonic()
                buffer.extend(states)
                if len(buffer) >= FLUSH_MAX_ITEMS:
                    self.write(buffer)
            self.write(buffer)
        except BaseException:
            halted.set()  # unstarted requests stay pending; in-flight ones end by deadline
            raise
        return all_delivered

    def write(self, buffer: list[Conclusion]) -> None:
        """Write the buffered outcomes (FLUSH_MAX_ITEMS per statement) and empty it."""
        for start in range(0, len(buffer), FLUSH_MAX_ITEMS):
            states = buffer[start : start + FLUSH_MAX_ITEMS]
            store.write_delivery_states(self.ch, states, self.stamp)
            self.report.writes += 1
            self.report.add(states)
            _log_failures(states)
        buffer.clear()


def _states(
    attempts: Sequence[Attempt], now: datetime, policy: RetryPolicy, rng: Random
) -> list[Conclusion]:
    """`next_states`, one attempt at a time, so one odd answer cannot lose the others'."""
    states: list[Conclusion] = []
    for attempt in attempts:
        try:
            states.extend(next_states([attempt], now=now, policy=policy, rng=rng))
        except Exception as exc:
            log.exception("could not interpret a delivery answer")
            fallback = Attempt(attempt.items, Outcome.RETRY, f"unexpected error: {describe(exc)}")
            states.extend(next_states([fallback], now=now, policy=policy, rng=rng))
    return states


def _refresh_counts(ch: ClickHouse, report: DeliveryReport, metrics: Metrics | None) -> None:
    try:
        counts = store.outbox_counts(ch)
    except Exception:
        # The pass is failing already (and says why); stale gauges are the lesser evil.
        log.debug("could not count the outbox", exc_info=True)
        return
    report.pending, report.dead_total = counts[Status.PENDING], counts[Status.DEAD]
    if metrics is not None:
        metrics.deliveries_pending.set(report.pending)
        metrics.deliveries_dead.set(report.dead_total)


def _observe_attempts(
    metrics: Metrics | None, attempts: Sequence[Attempt], states: Sequence[Conclusion]
) -> None:
    if metrics is None:
        return
    for attempt in attempts:
        if attempt.sent:
            metrics.delivery_latency.observe(attempt.seconds)
    for state in states:
        outcome = "retry" if state.status is Status.PENDING else state.status.value
        metrics.deliveries.labels(outcome).inc()


def _log_failures(states: Sequence[Conclusion]) -> None:
    for state in states:
        if state.status is Status.DELIVERED:
            continue
        log.warning(
            "delivery failed" if state.status is Status.PENDING else "delivery dead",
            extra={
                "project_id": state.project_id,
                "trace_id": state.trace_id,
                "revision": state.revision,
                "attempt": state.attempts,
                "error": state.last_error,
            },
        )


REDRIVE_LIMIT = 10_000


def redrive_dead(
    ch: ClickHouse,
    project_id: str,
    trace_id: str | None,
    *,
    clock: Clock,
    stamp: VersionStamp,
) -> int:
    """Put a project's dead deliveries (or one trace's) back in the queue; returns how many."""
    now = clock()
    dead = store.dead_deliveries(ch, project_id, trace_id, REDRIVE_LIMIT)
    requeued = [redriven(c, now) for c in dead]
    for start in range(0, len(requeued), FLUSH_MAX_ITEMS):
        store.write_delivery_states(ch, requeued[start : start + FLUSH_MAX_ITEMS], stamp)
    log.info(
        "redrive",
        extra={"project_id": project_id, "trace_id": trace_id, "requeued": len(dead)},
    )
    return len(dead)
