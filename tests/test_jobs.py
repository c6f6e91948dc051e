"""The jobs framework: chunking, snapshot bound, resume, failure, progress, API, readiness."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.testclient import TestClient

from service.api import app_context
from service.clickhouse import ClickHouse
from service.clock import Clock, ManualClock, VersionStamp
from service.durations.catalog import save_definition
from service.durations.definitions import DurationSpec, parse_definition
from service.durations.materialize import materialize_traces
from service.ingest.decode import parse_batch
from service.ingest.writer import write_rows
from service.jobs.durations_backfill import KIND, DurationsBackfill, backfill_params
from service.jobs.kinds import default_kinds
from service.jobs.model import Job, progress
from service.jobs.runner import Chunk, JobKind, RunOptions, run_job
from service.jobs.scheduled import run_pending_jobs
from service.jobs.store import create_job, get_job
from service.metrics import Metrics
from service.scheduler import default_jobs
from service.settings import Settings
from tests.conftest import observation

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
TOTAL = parse_definition(
    DurationSpec, {"start": {"anchor": "trace_start"}, "end": {"anchor": "trace_end"}}
)


class Crash(BaseException):
    """Stands in for the process dying: the runner must not catch it."""


@dataclass
class Wrapped:
    """A real job kind with hooks: crash after N chunks, run code after each chunk."""

    inner: JobKind
    crash_after: int | None = None
    after_chunk: Callable[[int], None] | None = None
    chunks: int = 0
    name: str = KIND
    cursors: list[dict[str, object]] = field(default_factory=list)

    def plan(self, ch: ClickHouse, job: Job) -> int:
        return self.inner.plan(ch, job)

    def run_chunk(self, ch: ClickHouse, job: Job, clock: Clock) -> Chunk:
        if self.crash_after is not None and self.chunks >= self.crash_after:
            raise Crash
        self.cursors.append(dict(job.cursor))
        chunk = self.inner.run_chunk(ch, job, clock)
        self.chunks += 1
        if self.after_chunk is not None:
            self.after_chunk(self.chunks)
        return chunk


def seed_traces(ch: ClickHouse, clock: ManualClock, count: int, *, first: int = 0) -> None:
    """`count` concluded traces t000.. whose total duration is (index + 1) * 100 ms."""
    observations = []
    for i in range(first, first + count):
        end = T0 + timedelta(milliseconds=(i + 1) * 100)
        observations.append(
            observation(
                f"o{i}",
                f"t{i:03d}",
                start_time=T0.isoformat(),
                end_time=end.isoformat(),
            )
        )
    rows = parse_batch(orjson.dumps({"observations": observations})).resolve(
        lambda _p, _f: "default"
    )
    write_rows(ch, rows, VersionStamp(clock))
    keys = [("default", f"t{i:03d}", 1) for i in range(first, first + count)]
    materialize_traces(ch, keys, clock)


def stored_totals(ch: ClickHouse) -> dict[str, float | None]:
    rows = ch.query_rows(
        "t",
        sql="SELECT trace_id, duration_ms FROM trace_durations FINAL "
        "WHERE definition = 'total' ORDER BY trace_id",
    )
    return {t: d for t, d in rows}


def expected_totals(count: int) -> dict[str, float | None]:
    return {f"t{i:03d}": float((i + 1) * 100) for i in range(count)}


def new_backfill(ch: ClickHouse, clock: ManualClock, batch_size: int) -> Job:
    return create_job(ch, KIND, "default", backfill_params("total", batch_size), clock())


@pytest.fixture
def seeded(clickhouse: ClickHouse, clock: ManualClock) -> ClickHouse:
    """Ten concluded traces registered before the definition exists."""
    seed_traces(clickhouse, clock, 10)
    clock.advance(1)
    save_definition(clickhouse, "default", "total", TOTAL, clock())
    clock.advance(1)
    return clickhouse


def test_backfill_runs_in_chunks_and_pauses_between_them(
    seeded: ClickHouse, clock: ManualClock
) -> None:
    kind = Wrapped(DurationsBackfill())
    slept: list[float] = []
    job = run_job(
        seeded,
        new_backfill(seeded, clock, batch_size=3),
        {KIND: kind},
        clock,
        RunOptions(pause_seconds=0.5, sleep=slept.append),
    )
    assert (job.status, job.rows_processed, job.rows_total, job.error) == ("done", 10, 10, "")
    assert kind.chunks == 4  # 3 + 3 + 3 + 1
    assert slept == [0.5, 0.5, 0.5]
    assert [c.get("trace") for c in kind.cursors] == [None, "t002", "t005", "t008"]
    assert stored_totals(seeded) == expected_totals(10)


def test_job_killed_mid_way_resumes_from_its_cursor_with_exact_results(
    seeded: ClickHouse, clock: ManualClock
) -> None:
    job = new_backfill(seeded, clock, batch_size=3)
    with pytest.raises(Crash):
        run_job(seeded, job, {KIND: Wrapped(DurationsBackfill(), crash_after=2)}, clock)

    interrupted = get_job(seeded, job.id)
    assert interrupted is not None
    assert (interrupted.status, interrupted.rows_processed) == ("running", 6)
    assert interrupted.cursor == {"project": "default", "trace": "t005"}

    # A "restarted process": a fresh kind, the job loaded from ClickHouse.
    clock.advance(30)
    resumed_kind = Wrapped(DurationsBackfill())
    finished = run_job(seeded, interrupted, {KIND: resumed_kind}, clock)
    assert (finished.status, finished.rows_processed, finished.rows_total) == ("done", 10, 10)
    assert resumed_kind.cursors[0] == {"project": "default", "trace": "t005"}
    assert finished.snapshot_at == interrupted.snapshot_at
    assert stored_totals(seeded) == expected_totals(10)
    live = seeded.query_rows("t", sql="SELECT count() FROM trace_durations FINAL")[0][0]
    assert live == 10


def test_stop_flag_pauses_and_the_scheduler_resumes_it(
    seeded: ClickHouse, clock: ManualClock, settings: Settings
) -> None:
    job = new_backfill(seeded, clock, batch_size=4)
    stop = {"now": False}
    kind = Wrapped(DurationsBackfill(), after_chunk=lambda n: stop.update(now=True))
    paused = run_job(seeded, job, {KIND: kind}, clock, RunOptions(should_stop=lambda: stop["now"]))
    assert (paused.status, paused.rows_processed) == ("paused", 4)

    metrics = Metrics(CollectorRegistry())
    [done] = run_pending_jobs(
        seeded,
        default_kinds(),
        clock,
        settings.model_copy(update={"backfill_pause_seconds": 0}),
        metrics,
        lambda: False,
    )
    assert (done.id, done.status, done.rows_processed) == (job.id, "done", 10)
    assert stored_totals(seeded) == expected_totals(10)
    registry = metrics.registry
    assert registry.get_sample_value("ta_jobs", {"status": "done"}) == 1
    assert registry.get_sample_value("ta_job_rows_processed", {"kind": KIND}) == 10


def test_snapshot_bound_keeps_new_conclusions_out_so_the_job_ends(
    seeded: ClickHouse, clock: ManualClock
) -> None:
    added = {"n": 0}

    def keep_concluding(chunk_number: int) -> None:
        # Traces keep concluding while the backfill runs; each is materialized on its own.
        clock.advance(1)
        seed_traces(seeded, clock, 5, first=100 + added["n"])
        added["n"] += 5

    kind = Wrapped(DurationsBackfill(), after_chunk=keep_concluding)
    job = run_job(seeded, new_backfill(seeded, clock, batch_size=2), {KIND: kind}, clock)
    assert (job.status, job.rows_total, job.rows_processed) == ("done", 10, 10)
    # Five full pages, then an empty one: the 30 traces concluded meanwhile (t100.., after the
    # cursor in key order) were registered after the snapshot and are not visited.
    assert kind.chunks == 6
    assert added["n"] == 30


def test_a_chunk_that_does_not_advance_fails_instead_of_looping(
    clickhouse: ClickHouse, clock: ManualClock
) -> None:
    @dataclass
    class Stuck:
        name: str = "stuck"

        def plan(self, ch: ClickHouse, job: Job) -> int:
            return 5

        def run_chunk(self, ch: ClickHouse, job: Job, clock: Clock) -> Chunk:
            return Chunk(rows=0, cursor=job.cursor, finished=False)

    job = create_job(clickhouse, "stuck", "default", {}, clock())
    failed = run_job(clickhouse, job, {"stuck": Stuck()}, clock)
    assert failed.status == "failed"
    assert "did not advance the cursor" in failed.error


def test_failing_source_query_marks_the_job_failed_with_the_error(
    seeded: ClickHouse, clock: ManualClock
) -> None:
    seeded.command("t", sql="DROP TABLE duration_traces")
    job = run_job(seeded, new_backfill(seeded, clock, batch_size=3), default_kinds(), clock)
    assert job.status == "failed"
    assert "duration_traces" in job.error
    stored = get_job(seeded, job.id)
    assert stored is not None
    assert (stored.status, stored.rows_processed) == ("failed", 0)


def test_a_chunk_failing_mid_way_is_failed_not_done(seeded: ClickHouse, clock: ManualClock) -> None:
    def break_source(chunk_number: int) -> None:
        if chunk_number == 1:
            seeded.command("t", sql="RENAME TABLE duration_traces TO duration_traces_gone")

    kind = Wrapped(DurationsBackfill(), after_chunk=break_source)
    job = run_job(seeded, new_backfill(seeded, clock, batch_size=3), {KIND: kind}, clock)
    assert (job.status, job.rows_processed) == ("failed", 3)
    assert "duration_traces" in job.error
    assert job.finished_at is not None


def test_done_with_nothing_processed_is_reported_as_failed(
    clickhouse: ClickHouse, clock: ManualClock
) -> None:
    @dataclass
    class Empty:
        name: str = "empty"

        def plan(self, ch: ClickHouse, job: Job) -> int:
            return 7

        def run_chunk(self, ch: ClickHouse, job: Job, clock: Clock) -> Chunk:
            return Chunk(rows=0, cursor=job.cursor, finished=True)

    job = create_job(clickhouse, "empty", "default", {}, clock())
    result = run_job(clickhouse, job, {"empty": Empty()}, clock)
    assert result.status == "failed"
    assert result.error == "source returned no rows although 7 were counted"


def make_job(**fields: object) -> Job:
    base = Job(
        id="j",
        project_id="p",
        kind=KIND,
        params={},
        status="running",
        rows_processed=0,
        rows_total=0,
        cursor={},
        snapshot_at=T0,
        created_at=T0,
        started_at=T0,
        run_started_at=T0,
        run_rows_start=0,
        finished_at=None,
        updated_at=T0,
        error="",
    )
    return replace(base, **fields)  # type: ignore[arg-type]


def test_rate_and_eta_come_from_the_current_run() -> None:
    running = make_job(
        rows_processed=600,
        rows_total=1000,
        run_rows_start=200,
        updated_at=T0 + timedelta(seconds=4),
    )
    assert progress(running).rate == 100.0
    assert progress(running).eta_seconds == 4.0
    assert progress(make_job()).rate is None
    assert progress(make_job()).eta_seconds is None
    done = replace(running, status="done", rows_processed=1000)
    assert progress(done).eta_seconds == 0.0
    assert progress(replace(running, status="failed")).eta_seconds is None
    assert progress(make_job(status="queued", run_started_at=None)) == progress(
        make_job(status="queued", run_started_at=None, rows_processed=5)
    )


def test_jobs_api_scopes_by_project_and_filters_by_status(
    make_app: Callable[..., Starlette], clickhouse: ClickHouse, clock: ManualClock
) -> None:
    acme = create_job(clickhouse, KIND, "acme", {}, clock())
    create_job(clickhouse, KIND, "globex", {}, clock())
    create_job(clickhouse, "rollups.backfill", "", {}, clock())
    failed = run_job(clickhouse, acme, {}, clock)
    assert failed.error == "unknown job kind 'durations.backfill'"
    app = make_app(api_keys=SecretStr("ka=acme,k0=*"))
    with TestClient(app) as client:
        mine = client.get("/v1/jobs", headers={"Authorization": "Bearer ka"}).json()["data"]
        assert [(j["project_id"], j["status"]) for j in mine] == [("acme", "failed")]
        assert mine[0]["error"] == "unknown job kind 'durations.backfill'"
        assert set(mine[0]) >= {"status", "rows_processed", "rows_total", "rate", "eta_seconds"}
        everything = client.get("/v1/jobs", headers={"Authorization": "Bearer k0"}).json()["data"]
        assert len(everything) == 3
        queued = client.get(
            "/v1/jobs", params={"status": "queued"}, headers={"Authorization": "Bearer k0"}
        ).json()["data"]
        assert len(queued) == 2
        bad = client.get(
            "/v1/jobs", params={"status": "finished"}, headers={"Authorization": "Bearer k0"}
        )
        assert bad.status_code == 400
        assert bad.json()["error"]["message"].startswith("status:")
        other = client.get(f"/v1/jobs/{queued[0]['id']}", headers={"Authorization": "Bearer ka"})
        assert other.status_code == 404


def test_readyz_shows_jobs_without_failing_and_metrics_export_them(
    client: TestClient, clickhouse: ClickHouse, clock: ManualClock
) -> None:
    run_job(clickhouse, create_job(clickhouse, "nope", "default", {}, clock()), {}, clock)
    create_job(clickhouse, KIND, "default", {}, clock())
    ready = client.get("/readyz")
    assert ready.status_code == 200
    jobs = ready.json()["checks"]["jobs"]
    assert (jobs["failed"], jobs["queued"], jobs["running"]) == (1, 1, 0)
    text = client.get("/metrics").text
    assert 'ta_jobs{status="failed"} 1.0' in text
    assert 'ta_jobs{status="queued"} 1.0' in text


def test_jobs_run_is_scheduled_and_resumes_an_interrupted_job(
    make_app: Callable[..., Starlette], seeded: ClickHouse, clock: ManualClock
) -> None:
    job = new_backfill(seeded, clock, batch_size=4)
    with pytest.raises(Crash):
        run_job(seeded, job, {KIND: Wrapped(DurationsBackfill(), crash_after=1)}, clock)

    app = make_app(backfill_pause_seconds=0)
    [scheduled] = [j for j in default_jobs(app_context(app)) if j.id == "jobs.run"]
    scheduled.run()
    resumed = get_job(seeded, job.id)
    assert resumed is not None
    assert (resumed.status, resumed.rows_processed) == ("done", 10)
    assert stored_totals(seeded) == expected_totals(10)


def test_jobs_run_does_nothing_once_the_app_is_stopping(
    make_app: Callable[..., Starlette], seeded: ClickHouse, clock: ManualClock
) -> None:
    job = new_backfill(seeded, clock, batch_size=4)
    app = make_app()
    [scheduled] = [j for j in default_jobs(app_context(app)) if j.id == "jobs.run"]
    app_context(app).stopping.set()
    assert scheduled.run() == []
    untouched = get_job(seeded, job.id)
    assert untouched is not None
    assert untouched.status == "queued"
