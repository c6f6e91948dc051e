"""Scheduler wiring: skipped runs are counted, and logged rarely instead of once a second."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest
from prometheus_client import CollectorRegistry

from service.context import PassLocks
from service.metrics import Metrics
from service.scheduler import (
    ON_REQUEST,
    STILL_RUNNING,
    ScheduledJob,
    SkipLog,
    build_scheduler,
)


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def skipped(metrics: Metrics, job_id: str) -> float:
    value = metrics.registry.get_sample_value("ta_scheduler_skipped_runs_total", {"job_id": job_id})
    return value or 0.0


def test_skips_are_counted_every_time_and_logged_once_a_minute_per_job(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = Metrics(CollectorRegistry())
    clock = FakeMonotonic()
    skips = SkipLog(metrics, monotonic=clock)
    with caplog.at_level(logging.WARNING, logger="service.scheduler"):
        for _ in range(240):  # four minutes of a 1 s job that never finishes in time
            skips.skipped("conclusions.deliver")
            clock.now += 1
        skips.skipped("rollups.recompute")
    assert skipped(metrics, "conclusions.deliver") == 240
    assert skipped(metrics, "rollups.recompute") == 1
    lines = [r for r in caplog.records if r.name == "service.scheduler"]
    jobs = [getattr(r, "job", None) for r in lines]
    assert jobs == ["conclusions.deliver"] * 4 + ["rollups.recompute"]
    counts = [getattr(r, "skipped", None) for r in lines]
    assert counts == [1, 60, 60, 60, 1], "each line says how many were skipped since the last"


def test_a_real_scheduler_counts_skips_and_apscheduler_logs_none(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = Metrics(CollectorRegistry())
    release = threading.Event()
    job = ScheduledJob("slow", lambda: release.wait(30), every_seconds=0.05)

    class Watch(SkipLog):
        """Says when five runs were skipped (APScheduler calls it on the event loop)."""

        def __init__(self) -> None:
            super().__init__(metrics)
            self.enough = asyncio.Event()

        def skipped(self, job_id: str, reason: str = STILL_RUNNING) -> None:
            super().skipped(job_id, reason)
            if skipped(metrics, "slow") >= 5:
                self.enough.set()

    async def run() -> None:
        watch = Watch()
        scheduler = build_scheduler([job], skip_log=watch)
        scheduler.start()
        try:
            await asyncio.wait_for(watch.enough.wait(), timeout=20)
        finally:
            release.set()
            scheduler.shutdown(wait=True)

    with caplog.at_level(logging.DEBUG):
        asyncio.run(run())
    assert skipped(metrics, "slow") >= 5
    assert not [r for r in caplog.records if "maximum number of running" in r.getMessage()]
    ours = [r for r in caplog.records if r.getMessage().startswith("scheduled run skipped")]
    assert len(ours) == 1


def test_a_run_skipped_because_the_pass_runs_on_request_is_counted_too(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = Metrics(CollectorRegistry())
    locks = PassLocks()
    ran = threading.Event()
    scheduler = build_scheduler([ScheduledJob("p", ran.set, 3600)], locks=locks, metrics=metrics)
    [job] = scheduler.get_jobs()
    with caplog.at_level(logging.WARNING, logger="service.scheduler"), locks["p"]:
        job.func()
    assert not ran.is_set()
    assert skipped(metrics, "p") == 1
    [line] = [r for r in caplog.records if r.name == "service.scheduler"]
    assert line.getMessage() == f"scheduled run skipped: {ON_REQUEST}"
    job.func()
    assert ran.is_set()
    assert skipped(metrics, "p") == 1
