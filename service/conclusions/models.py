"""The conclusion record and its states, shared by detection, delivery, the store and the API."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from service.times import format_time


class Status(StrEnum):
    """Where a conclusion's delivery stands."""

    RECORDED = "recorded"  # no TA_ANALYZE_URL when it concluded: kept, never delivered
    PENDING = "pending"  # waiting for its first or next attempt
    DELIVERED = "delivered"  # a 2xx confirmed it
    DEAD = "dead"  # gave up (a non-retryable answer or too many attempts); redrivable


@dataclass(frozen=True)
class Candidate:
    """A quiet trace the detector found: its last activity and its latest recorded revision."""

    project_id: str
    trace_id: str
    last_activity: datetime
    last_revision: int


@dataclass(frozen=True)
class Conclusion:
    """One revision of a concluded trace with its delivery state."""

    project_id: str
    trace_id: str
    revision: int
    concluded_at: datetime
    last_activity_at: datetime
    summary: dict[str, Any]
    status: Status
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_error: str = ""
    delivered_at: datetime | None = None

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.project_id, self.trace_id, self.revision)

    @property
    def idempotency_key(self) -> str:
        """`<project_id>:<trace_id>:<revision>`: the same on every retry, new per revision."""
        return f"{self.project_id}:{self.trace_id}:{self.revision}"

    def payload(self) -> dict[str, Any]:
        """The webhook body (DESIGN.md, "Webhook")."""
        return {
            "type": "trace.concluded",
            "project_id": self.project_id,
            "trace_id": self.trace_id,
            "revision": self.revision,
            "concluded_at": format_time(self.concluded_at),
            "last_activity_at": format_time(self.last_activity_at),
            "summary": self.summary,
        }

    def to_json(self) -> dict[str, Any]:
        """The feed's view: the payload plus the delivery state."""
        return {
            **self.payload(),
            "idempotency_key": self.idempotency_key,
            "status": self.status.value,
            "attempts": self.attempts,
            "next_attempt_at": format_time(self.next_attempt_at)
            if self.status is Status.PENDING
            else None,
            "last_error": self.last_error or None,
            "delivered_at": format_time(self.delivered_at),
        }


@dataclass(frozen=True)
class TraceState:
    """Whether a trace is open or concluded, and its latest revision (0: never concluded)."""

    status: str
    revision: int
