"""The delivery outbox: slots, compaction, and migration 0010's carry-over, on real chDB."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
import respx
from starlette.applications import Starlette
from starlette.testclient import TestClient

from service.clickhouse import ClickHouse, connect
from service.clock import ManualClock, VersionStamp
from service.conclusions import store
from service.conclusions.models import Conclusion, Status
from service.engine_roles import DELIVER
from service.migrations import apply, discover, render
from service.settings import Settings
from service.times import EPOCH
from tests.clickhouse_stub import Recorded, StubClickHouse
from tests.conftest import IDLE, deliver, detect
from tests.conftest import ingest_traces as ingest
from tests.test_engine_server import only, sent_settings

URL = "http://analyze.test/hook"
MINUTE = 60


@pytest.fixture
def receiver() -> Iterator[respx.Route]:
    with respx.mock(assert_all_called=False) as mock:
        yield mock.post(URL).respond(200)


def slots(ch: ClickHouse) -> list[datetime]:
    return [EPOCH + timedelta(seconds=int(s)) for (s,) in ch.query_rows("conclusions/outbox_slots")]


def outbox_traces(ch: ClickHouse) -> set[str]:
    rows = ch.query_rows("t", sql="SELECT DISTINCT trace_id FROM delivery_outbox")
    return {r[0] for r in rows}


def by_trace(request: httpx.Request) -> httpx.Response:
    if b'"t-dead"' in request.content:
        return httpx.Response(400, text="rejected")
    if b'"t-retry"' in request.content:
        return httpx.Response(503)
    return httpx.Response(200)


def test_closed_slots_are_dropped_and_open_deliveries_carried(
    make_app: Callable[..., Starlette],
    clock: ManualClock,
    clickhouse: ClickHouse,
    receiver: respx.Route,
) -> None:
    receiver.side_effect = by_trace
    app = make_app(idle_seconds=IDLE, analyze_url=URL)
    with TestClient(app) as client:
        ingest(client, "t-ok", "t-dead", "t-retry")
        clock.advance(IDLE)
        detect(app)
        report = deliver(app)
        assert (report.delivered, report.dead, report.retrying) == (1, 1, 1)
        assert outbox_traces(clickhouse) == {"t-ok", "t-dead", "t-retry"}

        receiver.side_effect = by_trace
        clock.advance(15 * MINUTE)  # every slot written so far is closed now
        report = deliver(app)  # t-retry is due again (and fails again); then compaction
        assert report.slots_dropped >= 1
        assert outbox_traces(clickhouse) == {"t-dead", "t-retry"}, "delivered history is gone"
        assert (report.pending, report.dead_total) == (1, 1)
        assert all(s >= store.slot_of(clock()) - timedelta(minutes=5) for s in slots(clickhouse))

        clock.advance(30 * MINUTE)
        deliver(app)  # compaction again: the dead delivery is carried once more
        assert client.post("/v1/conclusions/redrive").json() == {"requeued": 1}
        receiver.side_effect = None
        clock.advance(3600)
        report = deliver(app)
        assert (report.delivered, report.pending, report.dead_total) == (2, 0, 0)
        rows = client.get("/v1/conclusions").json()["data"]
    assert {r["trace_id"]: r["status"] for r in rows} == {
        "t-ok": "delivered",
        "t-dead": "delivered",
        "t-retry": "delivered",
    }


def test_the_outbox_holds_minutes_of_writes_however_long_the_service_runs(
    make_app: Callable[..., Starlette],
    clock: ManualClock,
    clickhouse: ClickHouse,
    receiver: respx.Route,
) -> None:
    app = make_app(idle_seconds=IDLE, analyze_url=URL)
    with TestClient(app) as client:
        for hour in range(6):  # six hours of traffic, a batch every twenty minutes
            for batch in range(3):
                ingest(client, *[f"h{hour}-b{batch}-{i}" for i in range(5)])
                clock.advance(IDLE)
                detect(app)
                assert deliver(app).delivered == 5
                clock.advance(20 * MINUTE - IDLE)
        deliver(app)
    oldest_allowed = clock() - timedelta(seconds=store.SLOT_SECONDS + store.SLOT_GRACE_SECONDS)
    assert all(
        s + timedelta(seconds=store.SLOT_SECONDS) > oldest_allowed for s in slots(clickhouse)
    )
    assert len(outbox_traces(clickhouse)) <= 5, "only the last batch may still be there"
    assert receiver.call_count == 90


def pending_at(trace_id: str, now: datetime, **fields: Any) -> Conclusion:
    return Conclusion(
        "p1", trace_id, 1, now, now, {"n": 1}, Status.PENDING, next_attempt_at=now, **fields
    )


def test_carrying_a_slot_twice_still_reads_each_delivery_once(clickhouse: ClickHouse) -> None:
    """A crash between carrying a slot and dropping it leaves two copies of the same state."""
    then = datetime.fromisoformat("2026-11-22T10:00:00+00:00")
    stamp = VersionStamp(lambda: then)
    store.record_conclusions(clickhouse, [pending_at("a", then), pending_at("b", then)], stamp)
    dead = replace(pending_at("c", then, attempts=1), status=Status.DEAD)
    store.write_delivery_states(clickhouse, [dead], stamp)
    later = then + timedelta(hours=1)
    slot = store.slot_of(then)
    for _ in range(2):
        clickhouse.command(
            "conclusions/carry_open_deliveries", {"slot": slot, "target": store.slot_of(later)}
        )
    due = store.due_deliveries(clickhouse, now=later, shard_count=1, shard_index=0, limit=10)
    assert [c.trace_id for c in due] == ["a", "b"]
    assert store.outbox_counts(clickhouse) == {Status.PENDING: 2, Status.DEAD: 1}
    assert [c.trace_id for c in store.dead_deliveries(clickhouse, "p1", None, 10)] == ["c"]

    assert store.compact_outbox(clickhouse, later).dropped == [slot]
    due = store.due_deliveries(clickhouse, now=later, shard_count=1, shard_index=0, limit=10)
    assert [c.trace_id for c in due] == ["a", "b"]
    assert store.outbox_counts(clickhouse) == {Status.PENDING: 2, Status.DEAD: 1}


def test_an_open_slot_is_never_dropped(clickhouse: ClickHouse) -> None:
    now = datetime.fromisoformat("2026-11-22T10:07:00+00:00")
    stamp = VersionStamp(lambda: now)
    store.record_conclusions(clickhouse, [pending_at("a", now)], stamp)
    for minutes in (0, 5, 7.9):
        result = store.compact_outbox(clickhouse, now + timedelta(minutes=minutes))
        assert result.dropped == []
    assert store.compact_outbox(clickhouse, now + timedelta(minutes=8)).dropped == [
        store.slot_of(now)
    ]
    assert [
        c.trace_id
        for c in store.due_deliveries(
            clickhouse, now=now + timedelta(minutes=8), shard_count=1, shard_index=0, limit=10
        )
    ] == ["a"]


# Migration 0010: the old outbox's open deliveries carry over, and it is fenced off.

OLD_ROW = """
INSERT INTO conclusion_outbox
SELECT 'p1', {trace_id:String}, 1, {at:DateTime64(6, 'UTC')}, {at:DateTime64(6, 'UTC')},
       '{"n": 1}', {status:String}, {attempts:UInt16}, {at:DateTime64(6, 'UTC')}, {error:String},
       {version:DateTime64(6, 'UTC')}, {deleted:UInt8}
"""


@pytest.fixture
def bare(settings: Settings) -> Iterator[ClickHouse]:
    ch = connect(settings)
    yield ch
    ch.close()


@pytest.mark.parametrize("at_version", ["0008", "0009"])
def test_migration_0010_carries_open_deliveries_over_and_retires_the_old_outbox(
    bare: ClickHouse, at_version: str
) -> None:
    """From a database at 0008 (0009 and 0010 in one `migrate`) or at 0009."""
    shipped = discover()
    before = [m for m in shipped if m.name[:4] <= at_version]
    assert before[-1].name.startswith(at_version)
    apply(bare, before)
    at = datetime.fromisoformat("2026-11-22T10:00:00+00:00")

    def old(trace_id: str, status: str, attempts: int, seconds: int, deleted: int = 0) -> None:
        bare.command(
            "t",
            {
                "trace_id": trace_id,
                "at": at,
                "status": status,
                "attempts": attempts,
                "error": "HTTP 503" if attempts else "",
                "version": at + timedelta(seconds=seconds),
                "deleted": deleted,
            },
            sql=OLD_ROW,
        )

    old("t-pending", "pending", 2, 1)
    old("t-dead", "dead", 8, 1)
    old("t-delivered", "pending", 0, 1)
    old("t-delivered", "delivered", 1, 2, deleted=1)
    old("t-moved", "pending", 0, 1)
    old("t-moved", "pending", 1, 2)

    assert [name[:4] for name in apply(bare, shipped)] == [
        m.name[:4] for m in shipped if m.name[:4] > at_version
    ]
    later = at + timedelta(hours=1)

    def check() -> None:
        due = store.due_deliveries(bare, now=later, shard_count=1, shard_index=0, limit=10)
        assert {c.trace_id: c.attempts for c in due} == {"t-pending": 2, "t-moved": 1}
        first = {c.trace_id: c.first_attempt_at for c in due}
        assert first == {"t-pending": at, "t-moved": at}
        (dead,) = store.dead_deliveries(bare, "p1", None, 10)
        assert (dead.trace_id, dead.attempts, dead.summary) == ("t-dead", 8, {"n": 1})

    check()
    tables = {r[0] for r in bare.query_rows("t", sql="SHOW TABLES")}
    assert "conclusion_outbox" not in tables
    assert "conclusion_outbox_retired" not in tables
    with pytest.raises(Exception, match="conclusion_outbox"):
        old("late", "pending", 0, 1)  # an old build's write after the migration: refused

    # A re-run (say the process died before recording the migration) changes nothing.
    (migration,) = [m for m in shipped if m.name.startswith("0010")]
    for statement in migration.statements():
        bare.command("t", sql=render(statement, None))
    check()
    store.compact_outbox(bare, later)
    check()


def settings_only(request: Recorded) -> dict[str, str]:
    return {k: v for k, v in sent_settings(request).items() if not k.startswith("param_")}


@pytest.mark.parametrize("cluster", [None, "prod"], ids=["single server", "cluster"])
def test_outbox_carry_and_drop_go_out_on_the_deliver_session_with_quorum(
    cluster: str | None,
) -> None:
    """On a server, a delivery pass's outbox statements use the `deliver` role: its session,
    quorum for every write into delivery_outbox on a cluster (the carry INSERT ... SELECT
    here; row inserts by table name, which tests/test_engine_server.py sees on the wire), and
    the partition drop as a command on the same session."""
    with StubClickHouse().running() as stub:
        ch = connect(
            Settings(clickhouse_url=stub.url, clickhouse_cluster=cluster, query_timeout_seconds=12)
        )
        try:
            engine = ch.role(DELIVER)
            # The stub answers every SELECT with one row holding 1: one closed slot.
            now = datetime(2026, 11, 22, 10, 0, tzinfo=EPOCH.tzinfo)
            assert store.compact_outbox(engine, now).dropped
            row_insert = engine.statement_settings.for_insert("delivery_outbox")
        finally:
            ch.close()
    quorum = {"insert_quorum": "auto"} if cluster else {}
    consistent = {"select_sequential_consistency": "1"} if cluster else {}
    bound = {"max_execution_time": "12.0"}
    assert row_insert == {"max_execution_time": 12.0, **quorum}
    carry = only(stub.statements("INSERT INTO delivery_outbox"))
    drop = only(stub.statements("ALTER TABLE delivery_outbox DROP PARTITION"))
    assert settings_only(carry) == {**bound, **consistent, **quorum}
    assert settings_only(drop) == {**bound, **consistent}
    assert drop.params["param_slot"] == "1970-01-01 00:00:01"
    [session] = {r.session_id for r in (carry, drop)}
    assert session is not None
    assert session.startswith("trace-analytics-deliver-")
