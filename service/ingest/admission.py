"""Admission to the write path: every ingest endpoint writes through one `IngestWriter`.

This is the seam the group-commit writer replaces: endpoints call `IngestWriter.write` and
map `Overloaded` to 503 + `Retry-After`; they never call ClickHouse themselves. Today the
bound is a cap on concurrent writes (`TA_INGEST_MAX_CONCURRENT_WRITES`): a write that finds
every slot taken is refused at once rather than queued, so a client backs off (every OTLP
exporter honours `Retry-After` on 503) instead of the service piling up threads and memory.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from service.clickhouse import ClickHouse
from service.clock import VersionStamp
from service.errors import Overloaded
from service.ingest.models import IngestBatch
from service.ingest.writer import IngestResult, Projects, write_batch


class IngestWriter:
    """Writes validated batches, at most `max_concurrent` at a time."""

    def __init__(
        self, ch: ClickHouse, stamp: VersionStamp, *, max_concurrent: int, retry_after: float
    ) -> None:
        self._ch = ch
        self._stamp = stamp
        self._slots = threading.BoundedSemaphore(max_concurrent)
        self._retry_after = retry_after

    def write(self, batch: IngestBatch, projects: Projects) -> IngestResult:
        """Write one batch (blocking); raises `Overloaded` when every slot is taken."""
        with self.slot():
            return write_batch(self._ch, batch, projects, self._stamp)

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one write slot (tests hold them all to see the overload answer)."""
        if not self._slots.acquire(blocking=False):
            raise Overloaded(retry_after=self._retry_after)
        try:
            yield
        finally:
            self._slots.release()
