"""Two replicas (shard 0 and 1 of 2) on one ClickHouse split the work: no overlap, no gap."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import respx
from starlette.applications import Starlette
from starlette.testclient import TestClient

from service.clock import ManualClock
from tests.conftest import IDLE, deliver, detect
from tests.conftest import ingest_traces as ingest

URL = "http://analyze.test/hook"
TRACES = [f"trace-{i:03d}" for i in range(60)]


@pytest.fixture
def receiver() -> Iterator[respx.Route]:
    with respx.mock(assert_all_called=False) as mock:
        yield mock.post(URL).respond(200)


def replica(make_app: Callable[..., Starlette], index: int) -> Starlette:
    return make_app(idle_seconds=IDLE, analyze_url=URL, shard_index=index, shard_count=2)


def test_two_shards_split_traces_with_no_overlap_and_no_gap(
    make_app: Callable[..., Starlette], clock: ManualClock, receiver: respx.Route
) -> None:
    first, second = replica(make_app, 0), replica(make_app, 1)
    with TestClient(make_app()) as client:  # an API replica; its shutdown stops only itself
        ingest(client, *TRACES[:30])
        clock.advance(1)
        ingest(client, *TRACES[30:])
    clock.advance(IDLE + 1)

    concluded = [
        {c.trace_id for c in detect(first)},
        {c.trace_id for c in detect(second)},
    ]
    assert concluded[0], "shard 0 got work"
    assert concluded[1], "shard 1 got work"
    assert concluded[0].isdisjoint(concluded[1])
    assert concluded[0] | concluded[1] == set(TRACES)
    assert detect(first) == detect(second) == []

    delivered = [deliver(first), deliver(second)]
    assert [d.delivered for d in delivered] == [len(concluded[0]), len(concluded[1])]
    keys = [call.request.headers["idempotency-key"] for call in receiver.calls]
    assert len(keys) == len(set(keys)) == len(TRACES)


def test_a_shards_pending_work_waits_for_its_owner(
    make_app: Callable[..., Starlette], clock: ManualClock, receiver: respx.Route
) -> None:
    first, second = replica(make_app, 0), replica(make_app, 1)
    with TestClient(make_app()) as client:
        ingest(client, *TRACES[:20])
    clock.advance(IDLE + 1)
    mine = {c.trace_id for c in detect(second)}
    # Replica 1 dies before delivering; replica 0 never takes its deliveries.
    assert deliver(first).delivered == 0
    assert receiver.call_count == 0

    clock.advance(5)
    back = replica(make_app, 1)  # a replacement with the same ordinal
    assert deliver(back).delivered == len(mine)
