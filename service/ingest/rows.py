"""Validated records as insert columns: the unit the ingest writer takes.

A request's records become a `Batch` (columns, times as DateTime64(3) ticks, metadata as
strings, each record's own `project_id` as sent); resolving the projects turns it into
`IngestRows`, which is what `IngestWriter.submit` and `write_rows` accept. Any endpoint
(`POST /v1/ingest`, OTLP) that produces objects with the attributes of `TraceIn` /
`ObservationIn` (the pydantic models, the msgspec records, or its own) builds its rows
with `batch_from_records(...).resolve(...)`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from service.ingest.models import metadata_strings
from service.times import EARLIEST_MS, EPOCH, LATEST_MS, MILLISECOND

# Insert columns, in order: the project, the record's own columns, then what the writer adds.
TRACE_FIELDS = (
    "id",
    "name",
    "timestamp",
    "user_id",
    "session_id",
    "environment",
    "tags",
    "metadata",
)
OBSERVATION_FIELDS = (
    "trace_id",
    "id",
    "parent_id",
    "type",
    "name",
    "start_time",
    "end_time",
    "completion_start_time",
    "model",
    "provider",
    "input_tokens",
    "output_tokens",
    "cost",
    "status",
    "metadata",
)
WRITER_COLUMNS = ("ingested_at", "is_deleted")
TRACE_COLUMNS = ("project_id", *TRACE_FIELDS, *WRITER_COLUMNS)
OBSERVATION_COLUMNS = ("project_id", *OBSERVATION_FIELDS, *WRITER_COLUMNS)
_TRACE_TIMES = tuple(TRACE_FIELDS.index(f) for f in ("timestamp",))
_OBSERVATION_TIMES = tuple(
    OBSERVATION_FIELDS.index(f) for f in ("start_time", "end_time", "completion_start_time")
)

_NAIVE_EPOCH = datetime(1970, 1, 1)

# Decides the project of one record: (record's own project_id, its field path) -> project.
ProjectResolver = Callable[[str | None, str], str]


class TraceRecord(Protocol):
    """What a trace looks like to the writer (`TraceIn` and the fast-path struct fit)."""

    @property
    def id(self) -> str: ...
    @property
    def project_id(self) -> str | None: ...
    @property
    def name(self) -> str: ...
    @property
    def timestamp(self) -> datetime: ...
    @property
    def user_id(self) -> str: ...
    @property
    def session_id(self) -> str: ...
    @property
    def environment(self) -> str: ...
    @property
    def tags(self) -> list[str]: ...
    @property
    def metadata(self) -> dict[str, Any]: ...


class ObservationRecord(Protocol):
    """What an observation looks like to the writer."""

    @property
    def id(self) -> str: ...
    @property
    def trace_id(self) -> str: ...
    @property
    def project_id(self) -> str | None: ...
    @property
    def parent_id(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def start_time(self) -> datetime: ...
    @property
    def end_time(self) -> datetime | None: ...
    @property
    def completion_start_time(self) -> datetime | None: ...
    @property
    def model(self) -> str: ...
    @property
    def provider(self) -> str: ...
    @property
    def input_tokens(self) -> int: ...
    @property
    def output_tokens(self) -> int: ...
    @property
    def cost(self) -> float: ...
    @property
    def status(self) -> str: ...
    @property
    def metadata(self) -> dict[str, Any]: ...


def epoch_ms(values: Sequence[datetime | None]) -> list[int | None]:
    """DateTime64(3) ticks, None kept as NULL; a time without an offset is taken as UTC.

    Sub-millisecond parts are floored. clickhouse-connect writes integer columns as they
    are; exact timedelta arithmetic here is several times cheaper than its datetime path.
    """
    return [
        None
        if v is None
        else (v - (EPOCH if v.tzinfo is not None else _NAIVE_EPOCH)) // MILLISECOND
        for v in values
    ]


@dataclass(frozen=True)
class IngestRows:
    """One request's rows, projects resolved: `traces[i]` is column TRACE_COLUMNS[i].

    The writer appends `ingested_at` and `is_deleted`; everything else is final.
    """

    traces: list[list[Any]]
    observations: list[list[Any]]

    @property
    def trace_count(self) -> int:
        return len(self.traces[0]) if self.traces else 0

    @property
    def observation_count(self) -> int:
        return len(self.observations[0]) if self.observations else 0

    @property
    def size(self) -> int:
        return self.trace_count + self.observation_count


@dataclass(frozen=True)
class Batch:
    """A validated batch as columns (TRACE_FIELDS / OBSERVATION_FIELDS order).

    `trace_projects` and `observation_projects` hold each record's own `project_id`
    (None when it named none); `resolve` decides them.
    """

    traces: list[list[Any]]
    observations: list[list[Any]]
    trace_projects: list[str | None]
    observation_projects: list[str | None]

    def in_window(self) -> bool:
        """True when every time lies in the window of `service.times`."""
        for columns, indexes in (
            (self.traces, _TRACE_TIMES),
            (self.observations, _OBSERVATION_TIMES),
        ):
            for index in indexes:
                values = [v for v in columns[index] if v is not None]
                if values and (min(values) < EARLIEST_MS or max(values) >= LATEST_MS):
                    return False
        return True

    def resolve(self, resolve_project: ProjectResolver) -> IngestRows:
        """The rows with every record's project decided (raises before anything is written).

        `resolve_project` is called once per distinct project_id, with the field path of
        the first record naming it, so an error names the first offending record.
        """
        decided: dict[str | None, str] = {}

        def projects(named: list[str | None], table: str) -> list[str]:
            for index, project in enumerate(named):
                if project not in decided:
                    decided[project] = resolve_project(project, f"{table}[{index}]")
            if len(decided) == 1:
                return [next(iter(decided.values()))] * len(named)
            return [decided[p] for p in named]

        trace_projects = projects(self.trace_projects, "traces")
        observation_projects = projects(self.observation_projects, "observations")
        return IngestRows(
            traces=[trace_projects, *self.traces] if trace_projects else [],
            observations=(
                [observation_projects, *self.observations] if observation_projects else []
            ),
        )


def batch_from_records(
    traces: Sequence[TraceRecord], observations: Sequence[ObservationRecord]
) -> Batch:
    """Records (already validated) as columns; metadata values become strings.

    Raises `FieldError` for metadata that cannot be stored (only records that skipped the
    models' validation can hold such values).
    """
    return Batch(
        traces=[
            [t.id for t in traces],
            [t.name for t in traces],
            epoch_ms([t.timestamp for t in traces]),
            [t.user_id for t in traces],
            [t.session_id for t in traces],
            [t.environment for t in traces],
            [t.tags for t in traces],
            [_metadata(t.metadata) for t in traces],
        ],
        observations=[
            [o.trace_id for o in observations],
            [o.id for o in observations],
            [o.parent_id for o in observations],
            [o.type for o in observations],
            [o.name for o in observations],
            epoch_ms([o.start_time for o in observations]),
            epoch_ms([o.end_time for o in observations]),
            epoch_ms([o.completion_start_time for o in observations]),
            [o.model for o in observations],
            [o.provider for o in observations],
            [o.input_tokens for o in observations],
            [o.output_tokens for o in observations],
            [o.cost for o in observations],
            [o.status for o in observations],
            [_metadata(o.metadata) for o in observations],
        ],
        trace_projects=[t.project_id for t in traces],
        observation_projects=[o.project_id for o in observations],
    )


# Shared by every record without metadata (never mutated): no dict allocated per record.
_NO_METADATA: dict[str, str] = {}


def _metadata(value: dict[str, Any]) -> dict[str, str]:
    if not value:
        return _NO_METADATA
    for item in value.values():
        if type(item) is not str:
            return metadata_strings(value)
    return value
