"""Named durations: definitions (two anchors), materialization on conclusion, reads, backfills."""

from service.durations.store import (
    ConclusionKey,
    MaterializeResult,
    materialize_concluded,
    materialize_durations,
)

__all__ = [
    "ConclusionKey",
    "MaterializeResult",
    "materialize_concluded",
    "materialize_durations",
]
