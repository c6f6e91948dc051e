"""A trace's live raw rows as plain data: what summaries and named durations are made of."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

# (project_id, trace_id)
TraceKey = tuple[str, str]


@dataclass(frozen=True)
class TraceRow:
    """The live trace record (a trace may have none: observations can arrive alone)."""

    name: str
    timestamp: datetime
    user_id: str = ""
    session_id: str = ""
    environment: str = ""
    tags: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class ObservationRow:
    """One live observation: the fields anchors read first, then the summary's."""

    id: str
    type: str
    name: str
    start_time: datetime
    end_time: datetime | None
    completion_start_time: datetime | None
    model: str = ""
    status: str = "ok"
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0


@dataclass(frozen=True)
class TraceRows:
    """Everything live of one trace, read once and shared by its summary and its durations."""

    key: TraceKey
    trace: TraceRow | None
    observations: tuple[ObservationRow, ...]

    @property
    def exists(self) -> bool:
        """False when nothing of the trace is live (never written, or soft-deleted)."""
        return self.trace is not None or bool(self.observations)

    @property
    def start_time(self) -> datetime | None:
        """The first observation's start, else the trace record's timestamp."""
        first = min((o.start_time for o in self.observations), default=None)
        if first is not None:
            return first
        return self.trace.timestamp if self.trace is not None else None
