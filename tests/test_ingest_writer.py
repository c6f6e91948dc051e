"""Group commit: requests that arrive together are written with one insert per table.

Groups are formed deterministically, never by timing: the writer lingers for a minute
(`ingest_linger_ms`; `make_app` copies settings without their production bound of 1 s)
unless the queue holds `ingest_max_group_rows`, so a test sets the group size to the rows
it sends and the group is written the moment the last request arrives. A query observer
on the engine counts the inserts.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from service.api import app_context
from service.clickhouse import ClickHouse
from service.clock import ManualClock, VersionStamp
from service.errors import Overloaded
from service.ingest.decode import parse_batch
from service.ingest.rows import IngestRows
from service.ingest.writer import IngestWriter
from service.metrics import Metrics
from tests.conftest import observation, trace

GATED = 60_000.0  # linger (ms) long enough that only a full group is written


def rows_of(body: dict[str, Any], project: str = "default") -> IngestRows:
    return parse_batch(orjson.dumps(body)).resolve(lambda _p, _f: project)


def request_body(n: int) -> dict[str, Any]:
    """One trace and two observations (3 rows)."""
    return {
        "traces": [trace(f"t{n}")],
        "observations": [observation(f"o{n}-a", f"t{n}"), observation(f"o{n}-b", f"t{n}")],
    }


@pytest.fixture
def inserts(clickhouse: ClickHouse) -> list[str]:
    """Names of the inserts the engine ran, in order."""
    names: list[str] = []
    clickhouse.add_observer(lambda name, _s: names.append(name) if "insert" in name else None)
    return names


@pytest.fixture
def gated_client(make_app: Callable[..., Starlette]) -> Callable[..., TestClient]:
    """A client whose app writes a group only once it holds `group_rows` rows."""

    def build(group_rows: int, **overrides: Any) -> TestClient:
        app = make_app(ingest_linger_ms=GATED, ingest_max_group_rows=group_rows, **overrides)
        return TestClient(app)

    return build


def post_all(client: TestClient, bodies: list[Any]) -> list[httpx.Response]:
    with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
        return list(pool.map(lambda b: client.post("/v1/ingest", json=b), bodies))


def live_count(ch: ClickHouse, table: str) -> int:
    return int(ch.query_rows("t", sql=f"SELECT count() FROM {table} FINAL")[0][0])


def test_concurrent_requests_are_written_by_one_insert_per_table(
    gated_client: Callable[..., TestClient], clickhouse: ClickHouse, inserts: list[str]
) -> None:
    with gated_client(group_rows=8 * 3) as client:
        responses = post_all(client, [request_body(n) for n in range(8)])
        ctx = app_context(client.app)  # type: ignore[arg-type]
        registry = ctx.metrics.registry
        assert registry.get_sample_value("ta_ingest_group_requests_count") == 1
        assert registry.get_sample_value("ta_ingest_group_requests_sum") == 8
        assert registry.get_sample_value("ta_ingest_group_rows_sum") == 24
        assert registry.get_sample_value("ta_ingest_flush_duration_seconds_count") == 1
        assert registry.get_sample_value("ta_ingest_queue_rows") == 0
    assert [r.status_code for r in responses] == [202] * 8
    assert all(r.json() == {"accepted": {"traces": 1, "observations": 2}} for r in responses)
    assert inserts == ["insert:traces", "insert:observations"]
    assert live_count(clickhouse, "traces") == 8
    assert live_count(clickhouse, "observations") == 16


def test_a_bad_request_in_a_group_is_rejected_alone(
    gated_client: Callable[..., TestClient], clickhouse: ClickHouse, inserts: list[str]
) -> None:
    bad = {"observations": [observation("bad", "t-bad", type="bogus")]}
    with gated_client(group_rows=4 * 3) as client:
        bodies = [request_body(0), bad, request_body(1), request_body(2), request_body(3)]
        responses = post_all(client, bodies)
    statuses = [r.status_code for r in responses]
    assert statuses == [202, 400, 202, 202, 202]
    assert responses[1].json()["error"]["message"].startswith("observations[0].type")
    assert inserts == ["insert:traces", "insert:observations"]
    assert live_count(clickhouse, "observations") == 8
    rows = clickhouse.query_rows("t", sql="SELECT count() FROM observations WHERE id = 'bad'")
    assert rows[0][0] == 0


def test_no_request_is_answered_before_its_insert_returned(
    gated_client: Callable[..., TestClient], clickhouse: ClickHouse
) -> None:
    written = threading.Event()
    clickhouse.add_observer(
        lambda name, _s: written.set() if name == "insert:observations" else None
    )
    answered_before_insert: list[bool] = []

    def post(body: dict[str, Any]) -> int:
        response = client.post("/v1/ingest", json=body)
        answered_before_insert.append(not written.is_set())
        return response.status_code

    with gated_client(group_rows=6 * 3) as client, ThreadPoolExecutor(6) as pool:
        statuses = list(pool.map(post, [request_body(n) for n in range(6)]))
    assert statuses == [202] * 6
    assert answered_before_insert == [False] * 6


def test_a_failed_insert_fails_every_request_of_the_group_and_a_retry_is_exact(
    gated_client: Callable[..., TestClient], clickhouse: ClickHouse
) -> None:
    bodies = [request_body(n) for n in range(5)]
    # A real engine failure: the observations table is gone when the group is written,
    # after the traces insert of the same group succeeded.
    clickhouse.command("t", sql="RENAME TABLE observations TO observations_away")
    with gated_client(group_rows=5 * 3) as client:
        failed = post_all(client, bodies)
        assert all(r.status_code == 503 for r in failed), [r.status_code for r in failed]
        assert {r.json()["error"]["code"] for r in failed} == {"write_failed"}
        assert all(r.headers["retry-after"] == "1" for r in failed)
        ctx = app_context(client.app)  # type: ignore[arg-type]
        assert ctx.metrics.registry.get_sample_value("ta_ingest_flush_failures_total") == 1
        clickhouse.command("t", sql="RENAME TABLE observations_away TO observations")
        retried = post_all(client, bodies)
    assert [r.status_code for r in retried] == [202] * 5
    # The failed attempt left its traces; the retry replaced them (upsert by id).
    assert int(clickhouse.query_rows("t", sql="SELECT count() FROM traces")[0][0]) == 10
    assert live_count(clickhouse, "traces") == 5
    assert live_count(clickhouse, "observations") == 10


def test_a_full_queue_answers_503_with_retry_after(
    gated_client: Callable[..., TestClient], clickhouse: ClickHouse
) -> None:
    two_rows = {"observations": [observation("a"), observation("b")]}
    one_row = {"observations": [observation("c")]}
    with gated_client(group_rows=3, ingest_max_queue_rows=3) as client:
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(client.post, "/v1/ingest", json=two_rows)
            ctx = app_context(client.app)  # type: ignore[arg-type]
            for _ in range(6000):  # until the first request waits in the queue
                if ctx.ingest.queued_rows == 2:
                    break
                threading.Event().wait(0.005)
            rejected = client.post("/v1/ingest", json=two_rows)
            completing = client.post("/v1/ingest", json=one_row)  # fills the group: written
            assert first.result().status_code == 202
        overloaded = ctx.metrics.registry.get_sample_value(
            "ta_ingest_rejected_batches_total", {"code": "overloaded"}
        )
    assert rejected.status_code == 503
    assert rejected.json()["error"]["code"] == "overloaded"
    assert "TA_INGEST_MAX_QUEUE_ROWS" in rejected.json()["error"]["message"]
    assert int(rejected.headers["retry-after"]) >= 1
    assert completing.status_code == 202
    assert overloaded == 1
    assert live_count(clickhouse, "observations") == 3


@pytest.fixture
def writer(clickhouse: ClickHouse) -> Iterator[IngestWriter]:
    w = IngestWriter(
        clickhouse,
        VersionStamp(ManualClock()),
        Metrics(),
        linger_seconds=GATED / 1000,
        max_group_rows=10_000,
    )
    w.start()
    try:
        yield w
    finally:
        w.close()


def test_the_later_request_wins_when_a_group_holds_the_same_id_twice(
    writer: IngestWriter, clickhouse: ClickHouse, inserts: list[str]
) -> None:
    first = writer.submit(rows_of({"observations": [observation("o1", output_tokens=1)]}))
    second = writer.submit(rows_of({"observations": [observation("o1", output_tokens=2)]}))
    writer.close()  # drains: both requests in one group
    assert first.result().observations == 1
    assert second.result().observations == 1
    assert inserts == ["insert:observations"]
    # Each request has its own version, in arrival order; the insert itself already keeps
    # only the newest (ReplacingMergeTree collapses within a block on insert).
    newest = clickhouse.query_rows(
        "t", sql="SELECT output_tokens FROM observations ORDER BY ingested_at DESC LIMIT 1"
    )
    assert newest == [(2,)]
    final = clickhouse.query_rows("t", sql="SELECT output_tokens FROM observations FINAL")
    assert final == [(2,)]


def test_a_full_queue_is_refused_before_anything_is_parsed(clickhouse: ClickHouse) -> None:
    writer = IngestWriter(
        clickhouse,
        VersionStamp(ManualClock()),
        Metrics(),
        linger_seconds=GATED / 1000,
        max_queue_rows=3,
        max_group_rows=10,
    )
    writer.start()
    pending = writer.submit(rows_of(request_body(0)))
    with pytest.raises(Overloaded, match="TA_INGEST_MAX_QUEUE_ROWS=3"):
        writer.ensure_room()
    writer.close()
    assert pending.result().observations == 2
    writer.ensure_room()  # a stopped writer says so at submit, with its own message


def test_close_writes_what_is_queued_and_then_refuses(
    writer: IngestWriter, clickhouse: ClickHouse
) -> None:
    pending = [writer.submit(rows_of(request_body(n))) for n in range(3)]
    assert not any(f.done() for f in pending)
    writer.close()
    assert [f.result().traces for f in pending] == [1, 1, 1]
    assert live_count(clickhouse, "observations") == 6
    with pytest.raises(Overloaded):
        writer.submit(rows_of(request_body(9)))


def test_a_group_never_exceeds_the_row_limit_but_keeps_requests_whole(
    clickhouse: ClickHouse, inserts: list[str]
) -> None:
    writer = IngestWriter(
        clickhouse,
        VersionStamp(ManualClock()),
        Metrics(),
        linger_seconds=GATED / 1000,
        max_group_rows=4,
    )
    writer.start()
    futures = [
        writer.submit(rows_of({"observations": [observation(f"o{n}-{i}") for i in range(3)]}))
        for n in range(3)
    ]
    writer.close()
    assert [f.result().observations for f in futures] == [3, 3, 3]
    assert inserts == ["insert:observations"] * 3
