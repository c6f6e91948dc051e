"""Rollup answers kept until what they were computed from changes (one cache per app).

A `/v1/usage` or `/v1/latency` answer from the ledger is a function of the request and of
two tables' contents: `rollup_ledger` (the rows) and `rollup_state` (the watermark).
`read_version` (queries/rollups/read_version.sql) fingerprints both tables' active parts,
and every insert, merge or mutation replaces parts, so:

* the same version means the same parts, hence the same contents: an answer computed
  after the version was read and stored under it is exactly what recomputing it would
  give, with the same watermark, for as long as the version reads the same. A hit is
  never stale; only `lag_seconds` is computed per request.
* any change — a pass, a backfill chunk, a merge — gives a new version, and the next
  request computes its answer again. A response is still never older than it says: on a
  miss the watermark is read before the rows, as without the cache.

The cache holds the answers of one version (the last one asked for) and drops the rest
when the version moves; within it, the least recently used go first once their encoded
size passes `max_bytes`. Raw reads (`source=raw`) are never cached.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class CachedAnswer:
    """One answer: the watermark it was computed at and its rows, already JSON-encoded."""

    watermark: datetime | None
    data: bytes


class ReadCache:
    """Answers of the current version, bounded by their encoded size (thread-safe)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Hashable, CachedAnswer] = OrderedDict()
        self._version: int | None = None
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0

    @property
    def size_bytes(self) -> int:
        """Encoded size of what is held now."""
        return self._bytes

    def get(self, request: Hashable, version: int) -> CachedAnswer | None:
        """The answer to `request` at `version`, if held; a new version empties the cache."""
        with self._lock:
            self._move_to(version)
            found = self._entries.get(request)
            if found is not None:
                self._entries.move_to_end(request)
            return found

    def put(self, request: Hashable, version: int, answer: CachedAnswer) -> None:
        """Hold `answer` unless its version is no longer the last asked for, or it is too big."""
        size = len(answer.data)
        with self._lock:
            if version != self._version or size > self.max_bytes:
                return
            previous = self._entries.pop(request, None)
            if previous is not None:
                self._bytes -= len(previous.data)
            self._entries[request] = answer
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, dropped = self._entries.popitem(last=False)
                self._bytes -= len(dropped.data)

    def _move_to(self, version: int) -> None:
        if version != self._version:
            self._entries.clear()
            self._bytes = 0
            self._version = version
