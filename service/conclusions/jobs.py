"""The scheduled jobs and the `check` command call these: one pass each, wired from the app."""

from __future__ import annotations

from typing import TYPE_CHECKING

from service.conclusions.delivery import DeliveryReport, run_delivery_pass
from service.conclusions.detector import run_detection_pass
from service.conclusions.models import Conclusion

if TYPE_CHECKING:
    from service.api.app import AppContext

# The delivery job polls the outbox this often (never less often than detection runs):
# a new conclusion waits at most this long for its first attempt, and a retry fires within
# this long of its due time. An idle poll is one small query on the outbox.
DELIVERY_POLL_SECONDS = 1.0


def delivery_interval(ctx: AppContext) -> float:
    """Seconds between delivery passes."""
    return min(DELIVERY_POLL_SECONDS, ctx.settings.check_interval_seconds)


def detect(ctx: AppContext) -> list[Conclusion]:
    """One detection pass for this replica's shard."""
    return run_detection_pass(
        ctx.clickhouse, ctx.settings, clock=ctx.clock, stamp=ctx.stamp, metrics=ctx.metrics
    )


def deliver(ctx: AppContext) -> DeliveryReport:
    """One delivery pass for this replica's shard (stops taking work once `stopping` is set)."""
    return run_delivery_pass(
        ctx.clickhouse,
        ctx.settings,
        clock=ctx.clock,
        stamp=ctx.stamp,
        stopping=ctx.stopping,
        metrics=ctx.metrics,
    )
