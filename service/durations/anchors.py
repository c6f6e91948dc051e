"""Anchor picking and duration arithmetic over plain data: no ClickHouse here.

The rules (tested directly in tests/test_durations_anchors.py):
- `trace_start` is the first start over the trace's live observations, `trace_end` the last
  end among those that have one.
- An observation anchor filters by type and/or name, orders matches by start time (id
  breaks ties so the pick is deterministic) and takes the first or last; the edge is read
  from that observation only. A picked observation without that edge (an orphan has no
  end, a generation may have no first token) yields NULL with a reason — we do not fall
  back to another observation, which would silently change what the number means.
- An end before its start is clock skew: NULL with reason "clock skew", flagged so stats
  count it, never a negative number.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from service.durations.definitions import DurationSpec, ObservationAnchor, TraceAnchor
from service.traces.rows import ObservationRow as Obs


@dataclass(frozen=True)
class AnchorTime:
    """Where an anchor landed: a time, or None and why not."""

    time: datetime | None
    reason: str | None = None


@dataclass(frozen=True)
class DurationResult:
    """One named duration of one trace, as stored and served."""

    duration_ms: float | None
    start_time: datetime | None
    end_time: datetime | None
    reason: str | None
    skewed: bool = False

    @property
    def missing(self) -> bool:
        """True when an anchor did not resolve (not counting skew)."""
        return self.duration_ms is None and not self.skewed


_EDGE_LABEL = {
    "start": "start_time",
    "end": "end_time (orphan)",
    "first_token": "first token (completion_start_time)",
}


def trace_start(observations: Sequence[Obs]) -> datetime | None:
    """First start over live observations (None for a trace without observations)."""
    return min((o.start_time for o in observations), default=None)


def trace_end(observations: Sequence[Obs]) -> datetime | None:
    """Last end over live observations that have one."""
    return max((o.end_time for o in observations if o.end_time is not None), default=None)


def pick_observation(anchor: ObservationAnchor, observations: Sequence[Obs]) -> Obs | None:
    """The first or last matching observation by start time, or None when none matches."""
    matches = [
        o
        for o in observations
        if (anchor.type is None or o.type == anchor.type)
        and (anchor.name is None or o.name == anchor.name)
    ]
    if not matches:
        return None
    ordered = sorted(matches, key=lambda o: (o.start_time, o.id))
    return ordered[0] if anchor.pick == "first" else ordered[-1]


def resolve_anchor(
    anchor: TraceAnchor | ObservationAnchor, observations: Sequence[Obs], role: str
) -> AnchorTime:
    """The time an anchor points at in this trace; `role` ("start"/"end") words the reason."""
    if isinstance(anchor, TraceAnchor):
        if not observations:
            return AnchorTime(None, f"{role} anchor missing: trace has no live observations")
        if anchor.anchor == "trace_start":
            return AnchorTime(trace_start(observations))
        end = trace_end(observations)
        if end is None:
            return AnchorTime(None, f"{role} anchor missing: no observation has an end_time")
        return AnchorTime(end)
    picked = pick_observation(anchor, observations)
    if picked is None:
        return AnchorTime(None, f"{role} anchor missing: no {anchor.describe()}")
    value = {
        "start": picked.start_time,
        "end": picked.end_time,
        "first_token": picked.completion_start_time,
    }[anchor.edge]
    if value is None:
        return AnchorTime(
            None, f"{role} anchor has no {_EDGE_LABEL[anchor.edge]}: observation {picked.id!r}"
        )
    return AnchorTime(value)


def compute_duration(spec: DurationSpec, observations: Sequence[Obs]) -> DurationResult:
    """The named duration of one trace from its live observations."""
    start = resolve_anchor(spec.start, observations, "start")
    end = resolve_anchor(spec.end, observations, "end")
    if start.time is None or end.time is None:
        reason = start.reason if start.time is None else end.reason
        return DurationResult(None, start.time, end.time, reason)
    if end.time < start.time:
        return DurationResult(
            None, start.time, end.time, "clock skew: end anchor is before start anchor", True
        )
    return DurationResult(
        (end.time - start.time).total_seconds() * 1000.0, start.time, end.time, None
    )
