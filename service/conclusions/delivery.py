"""Delivery: POST due conclusions to TA_ANALYZE_URL, concurrently, and record the outcomes.

A pass takes this shard's due outbox rows, sends them with TA_ANALYZE_CONCURRENCY requests
in flight through the app's `Sender` (a thread pool sharing one keep-alive httpx.Client
that lives as long as the app; the sync client because httpx's async pool costs more CPU
per request, and the job already runs in a worker thread), turns each answer into the next
state with the pure functions in `retry`, and writes all the new states in two inserts.
Delivery is at least once: a state is only final once written, and anything not confirmed
by then stays pending and is sent again.

On shutdown (`stopping` set) no new request starts; requests already in flight finish
(bounded by TA_ANALYZE_TIMEOUT_SECONDS) and their outcomes are written.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

import httpx
from standardwebhooks import Webhook

from service.clickhouse import ClickHouse
from service.clock import Clock, VersionStamp, system_clock
from service.conclusions import store, webhook
from service.conclusions.models import Conclusion, Status
from service.conclusions.retry import (
    Outcome,
    Random,
    after_attempt,
    classify_status,
    parse_retry_after,
    redriven,
)
from service.metrics import Metrics
from service.settings import Settings

log = logging.getLogger(__name__)

MAX_ERROR_CHARS = 300
# The delivery job polls the outbox this often (never less often than detection runs):
# a new conclusion waits at most this long for its first attempt, and a retry fires within
# this long of its due time. An idle poll is one small query on the outbox.
DELIVERY_POLL_SECONDS = 1.0


def delivery_interval(settings: Settings) -> float:
    """Seconds between delivery passes."""
    return min(DELIVERY_POLL_SECONDS, settings.check_interval_seconds)


@dataclass(frozen=True)
class Attempt:
    """What happened to one request (None outcome: not sent, because we are stopping)."""

    items: tuple[Conclusion, ...]
    outcome: Outcome | None
    error: str = ""
    retry_after: str | None = None
    seconds: float = 0.0


@dataclass
class DeliveryReport:
    """Counts of one delivery pass, by what happened to each conclusion."""

    delivered: int = 0
    retrying: int = 0  # failed, scheduled again
    dead: int = 0  # died in this pass
    not_sent: int = 0  # due, but left pending because the service is stopping
    requests: int = 0  # POSTs made (fewer than conclusions in batch mode)
    pending: int = 0  # open deliveries after the pass, all shards (the outbox)
    dead_total: int = 0  # dead deliveries awaiting a redrive, all shards

    def add(self, states: Sequence[Conclusion]) -> None:
        for state in states:
            if state.status is Status.DELIVERED:
                self.delivered += 1
            elif state.status is Status.PENDING:
                self.retrying += 1
            else:
                self.dead += 1


def chunk(items: Sequence[Conclusion], size: int) -> list[tuple[Conclusion, ...]]:
    """Split into requests of `size` conclusions (1: one conclusion per POST)."""
    return [tuple(items[i : i + size]) for i in range(0, len(items), size)]


class Sender:
    """The HTTP side of delivery, built once per app and kept for its lifetime.

    One `httpx.Client` whose keep-alive pool (TA_ANALYZE_CONCURRENCY connections) outlives
    every pass, a thread pool of the same size, and the Standard Webhooks signer built once
    from the secret. `transport` replaces the network (tests). Signatures are stamped with
    the wall clock, never an injected one: receivers reject timestamps minutes off.
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
        secret = settings.webhook_secret
        self.signer = Webhook(secret.get_secret_value()) if secret is not None else None
        workers = settings.analyze_concurrency
        self.client = httpx.Client(
            timeout=settings.analyze_timeout_seconds,
            limits=httpx.Limits(max_connections=workers, max_keepalive_connections=workers),
            transport=transport,
            follow_redirects=False,
        )
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ta-deliver")

    def send_all(
        self, requests: Sequence[tuple[Conclusion, ...]], stopping: threading.Event
    ) -> list[Attempt]:
        """Send every request, TA_ANALYZE_CONCURRENCY at a time; none starts once stopping."""

        def send(items: tuple[Conclusion, ...]) -> Attempt:
            if stopping.is_set():
                return Attempt(items, None)
            content = webhook.body(items, batch_mode=self.batch_mode)
            headers = webhook.headers(items, content, signer=self.signer, signed_at=system_clock())
            return _post(self.client, self.url, items, content, headers)

        return list(self.pool.map(send, requests))

    def close(self) -> None:
        """Wait for requests in flight, then close the connections."""
        self.pool.shutdown(wait=True)
        self.client.close()

    def __enter__(self) -> Sender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _post(
    client: httpx.Client,
    url: str,
    items: tuple[Conclusion, ...],
    content: bytes,
    headers: dict[str, str],
) -> Attempt:
    started = time.perf_counter()
    try:
        response = client.post(url, content=content, headers=headers)
    except httpx.TransportError as exc:
        # Timeouts, refused or reset connections, protocol errors: the receiver may be back
        # soon, so these are retried.
        error = f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]
        return Attempt(items, Outcome.RETRY, error, seconds=time.perf_counter() - started)
    outcome = classify_status(response.status_code)
    error = "" if outcome is Outcome.DELIVERED else _describe(response)
    return Attempt(
        items,
        outcome,
        error,
        retry_after=response.headers.get("retry-after"),
        seconds=time.perf_counter() - started,
    )


def _describe(response: httpx.Response) -> str:
    text = response.text.strip().replace("\n", " ")
    return f"HTTP {response.status_code}: {text}"[:MAX_ERROR_CHARS]


def next_states(
    attempts: Sequence[Attempt], *, now: datetime, max_attempts: int, rng: Random
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
                    max_attempts=max_attempts,
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
    rng: Random = random.random,
    max_rounds: int = 100,
) -> DeliveryReport:
    """Deliver this shard's due conclusions, round after round while rounds come back full.

    Without a sender (no TA_ANALYZE_URL) nothing is sent: conclusions were recorded as
    `recorded`.
    """
    started = time.perf_counter()
    report = DeliveryReport()
    if sender is not None:
        limit = settings.check_batch_limit
        for _ in range(max_rounds):
            due = store.due_deliveries(
                ch,
                now=clock(),
                shard_count=settings.shard_count,
                shard_index=settings.shard_index,
                limit=limit,
            )
            if not due or stopping.is_set():
                break
            attempts = sender.send_all(chunk(due, settings.analyze_batch_size), stopping)
            states = next_states(
                attempts, now=clock(), max_attempts=settings.analyze_max_attempts, rng=rng
            )
            store.write_delivery_states(ch, states, stamp)
            report.add(states)
            report.requests += sum(1 for a in attempts if a.outcome is not None)
            report.not_sent += len(due) - len(states)
            _observe_attempts(metrics, attempts, states)
            _log_failures(states)
            # Another round only for a full, healthy round: when the receiver is failing,
            # its retries wait for their backoff instead of a tight loop in this pass.
            if len(due) < limit or any(s.status is not Status.DELIVERED for s in states):
                break
    counts = store.outbox_counts(ch)
    report.pending, report.dead_total = counts[Status.PENDING], counts[Status.DEAD]
    if metrics is not None:
        metrics.conclusion_passes.labels("deliver").inc()
        metrics.conclusion_pass_duration.labels("deliver").observe(time.perf_counter() - started)
        metrics.deliveries_pending.set(report.pending)
        metrics.deliveries_dead.set(report.dead_total)
    return report


def _observe_attempts(
    metrics: Metrics | None, attempts: Sequence[Attempt], states: Sequence[Conclusion]
) -> None:
    if metrics is None:
        return
    for attempt in attempts:
        if attempt.outcome is not None:
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
    store.write_delivery_states(ch, [redriven(c, now) for c in dead], stamp)
    log.info(
        "redrive",
        extra={"project_id": project_id, "trace_id": trace_id, "requeued": len(dead)},
    )
    return len(dead)
