"""The conclusion record and its states, shared by detection, delivery, the store and the API."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from service.times import format_time

# Characters kept as they are in an idempotency key part: visible ASCII except `%` (the
# escape) and `:` (the separator). Everything else is percent-encoded as UTF-8 bytes.
_KEPT = frozenset(chr(c) for c in range(0x21, 0x7F)) - {"%", ":"}


def key_part(text: str) -> str:
    """`text` made safe for an HTTP header and for the `:`-separated key.

    Visible ASCII other than `%` and `:` stays; every other character (non-ASCII, spaces,
    control characters, `%`, `:`) becomes `%XX` per UTF-8 byte, as in a URL. Lone
    surrogates, which have no UTF-8 form, are encoded as the bytes Python's
    `surrogatepass` gives them, so every string has a key and distinct strings distinct
    keys.
    """
    if all(ch in _KEPT for ch in text):
        return text
    out = []
    for ch in text:
        if ch in _KEPT:
            out.append(ch)
        else:
            out.extend(f"%{byte:02X}" for byte in ch.encode("utf-8", "surrogatepass"))
    return "".join(out)


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
    # When the current run of attempts began (the retry window counts from here); None
    # before the first attempt and again after a redrive.
    first_attempt_at: datetime | None = None
    # Why this stored record cannot be sent as it is (e.g. its summary is not JSON); a
    # delivery with a defect goes dead with it as the reason instead of being attempted.
    defect: str = field(default="", compare=False)

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.project_id, self.trace_id, self.revision)

    @property
    def idempotency_key(self) -> str:
        """`<project_id>:<trace_id>:<revision>`, each part through `key_part`.

        The same on every retry, new per revision, and always a valid header value: ids
        may hold any Unicode, and the body carries them unchanged.
        """
        return f"{key_part(self.project_id)}:{key_part(self.trace_id)}:{self.revision}"

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
