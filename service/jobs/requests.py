"""Asking for a backfill: one validated request, whether it comes from the CLI or `POST /v1/jobs`.

`create_backfill` checks what cannot be seen in the request alone (a definition that does
not exist would otherwise run over every concluded trace and report `done` having changed
nothing) and persists the job as `queued`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from service.clickhouse import ClickHouse
from service.durations.catalog import get_definition, projects_defining
from service.errors import FieldError, InvalidBody, first_validation_error
from service.jobs.durations_backfill import KIND as DURATIONS
from service.jobs.durations_backfill import backfill_params
from service.jobs.model import Job
from service.jobs.rollups_backfill import KIND as ROLLUPS
from service.jobs.rollups_backfill import rollup_backfill_params
from service.jobs.store import ALL_PROJECTS, create_job
from service.rollups.ledger import CHUNK_TRACES
from service.settings import Settings

BackfillKind = Literal["durations.backfill", "rollups.backfill"]
MAX_ROLLUP_CHUNK = 5 * CHUNK_TRACES


class BackfillRequest(BaseModel):
    """Body of `POST /v1/jobs`: which backfill to queue (the fields of its kind only)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    kind: BackfillKind = Field(description="`durations.backfill` or `rollups.backfill`.")
    project_id: str | None = Field(
        None,
        min_length=1,
        max_length=512,
        description="durations: only this project (default: every project).",
    )
    definition: str | None = Field(
        None,
        min_length=1,
        max_length=512,
        description="durations: only this definition (default: all); it must exist.",
    )
    batch_size: int | None = Field(
        None,
        ge=1,
        le=100_000,
        description=(
            "Traces per chunk: durations, concluded traces (default TA_BACKFILL_BATCH_SIZE); "
            f"rollups, traces of the range (default {CHUNK_TRACES}, at most "
            f"{5 * CHUNK_TRACES})."
        ),
    )
    # strict: an RFC 3339 string only, not a number of seconds (the documented type).
    start: datetime | None = Field(
        None,
        alias="from",
        strict=True,
        description="rollups: RFC 3339 start (default: the first row).",
    )
    end: datetime | None = Field(
        None, alias="to", strict=True, description="rollups: RFC 3339 end (default: the last row)."
    )

    @field_validator("start", "end")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        """No offset means UTC, as everywhere else."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    @model_validator(mode="after")
    def _fields_of_its_kind(self) -> BackfillRequest:
        if self.kind == DURATIONS:
            for name, value in (("from", self.start), ("to", self.end)):
                if value is not None:
                    raise FieldError(name, f"only for {ROLLUPS}")
        else:
            given = {"project_id": self.project_id, "definition": self.definition}
            for name, given_value in given.items():
                if given_value is not None:
                    raise FieldError(name, f"only for {DURATIONS}")
            if self.batch_size is not None and self.batch_size > MAX_ROLLUP_CHUNK:
                # A chunk must land as one insert block (one part) to stay exact after a
                # crash: see service/rollups/ledger.py.
                raise FieldError("batch_size", f"rollups: at most {MAX_ROLLUP_CHUNK} traces")
            if self.start is not None and self.end is not None and self.end <= self.start:
                raise FieldError("to", "must be after from")
        return self


def parse_backfill_request(raw: bytes | dict[str, object]) -> BackfillRequest:
    """Validate a request body (JSON bytes or a dict); `InvalidBody` names the field."""
    try:
        if isinstance(raw, bytes):
            return BackfillRequest.model_validate_json(raw)
        return BackfillRequest.model_validate(raw)
    except ValidationError as exc:
        raise InvalidBody(*first_validation_error(exc)) from None


def create_backfill(
    ch: ClickHouse, request: BackfillRequest, settings: Settings, now: datetime
) -> Job:
    """Check the request against the database and queue the job."""
    if request.kind == DURATIONS:
        if request.definition is not None:
            _require_definition(ch, request.definition, request.project_id)
        batch = request.batch_size or settings.backfill_batch_size
        params = backfill_params(request.definition, batch)
        return create_job(ch, DURATIONS, request.project_id or ALL_PROJECTS, params, now)
    batch = request.batch_size or CHUNK_TRACES
    return create_job(
        ch, ROLLUPS, ALL_PROJECTS, rollup_backfill_params(request.start, request.end, batch), now
    )


def _require_definition(ch: ClickHouse, name: str, project: str | None) -> None:
    if project is not None:
        if get_definition(ch, project, name) is None:
            raise InvalidBody("definition", f"project {project!r} has no definition {name!r}")
    elif not projects_defining(ch, name):
        raise InvalidBody("definition", f"no project has a definition {name!r}")
