"""Duration definitions and results in ClickHouse: CRUD, materialization, reads.

Writes happen in two places only: definition CRUD (API) and `materialize_durations`
(called when a trace concludes, and by backfill jobs). Reads never compute: a trace's
durations are whatever the last materialization stored.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from service.clickhouse import ClickHouse
from service.durations.anchors import DurationResult, Obs, compute_duration, trace_start
from service.durations.definitions import DurationSpec, spec_from_json, spec_json
from service.times import rfc3339

log = logging.getLogger(__name__)

# (project_id, trace_id, conclusion revision)
ConclusionKey = tuple[str, str, int]
TraceKey = tuple[str, str]
Now = Callable[[], datetime]


@dataclass(frozen=True)
class StoredDefinition:
    """A live definition as stored: its anchors and how many times it was edited."""

    project_id: str
    name: str
    version: int
    spec: DurationSpec
    created_at: datetime
    updated_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            **self.spec.model_dump(include={"start", "end"}, exclude_none=True),
            "created_at": rfc3339(self.created_at),
            "updated_at": rfc3339(self.updated_at),
        }


@dataclass(frozen=True)
class MaterializeResult:
    """What one materialization wrote."""

    traces: int
    rows: int


def _definition(row: dict[str, Any]) -> StoredDefinition:
    return StoredDefinition(
        project_id=row["project_id"],
        name=row["name"],
        version=int(row["version"]),
        spec=spec_from_json(row["spec"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def list_definitions(ch: ClickHouse, project_id: str) -> list[StoredDefinition]:
    """The project's live definitions, by name."""
    rows = ch.query_dicts("durations/definitions_list", {"project_id": project_id})
    return [_definition(r) for r in rows]


def get_definition(ch: ClickHouse, project_id: str, name: str) -> StoredDefinition | None:
    """One live definition, or None when it does not exist (or was deleted)."""
    rows = ch.query_dicts("durations/definition_get", {"project_id": project_id, "name": name})
    return _definition(rows[0]) if rows else None


def save_definition(
    ch: ClickHouse, project_id: str, name: str, spec: DurationSpec, now: datetime
) -> StoredDefinition:
    """Write a new version of the definition (create, re-create or update)."""
    current = get_definition(ch, project_id, name)
    history = ch.query_dicts(
        "durations/definition_history", {"project_id": project_id, "name": name}
    )
    last_version = int(history[0]["last_version"]) if history and history[0]["versions"] else 0
    created_at = current.created_at if current is not None else now
    stored = StoredDefinition(project_id, name, last_version + 1, spec, created_at, now)
    ch.insert(
        "duration_definitions",
        ["project_id", "name", "version", "spec", "created_at", "updated_at", "is_deleted"],
        [[project_id, name, stored.version, spec_json(spec), created_at, now, 0]],
        by_column=False,
    )
    log.info(
        "duration definition saved",
        extra={"project_id": project_id, "definition": name, "version": stored.version},
    )
    return stored


def delete_definition(ch: ClickHouse, current: StoredDefinition, now: datetime) -> None:
    """Tombstone a definition; its stored results stop being served (reads join on live ones)."""
    ch.insert(
        "duration_definitions",
        ["project_id", "name", "version", "spec", "created_at", "updated_at", "is_deleted"],
        [
            [
                current.project_id,
                current.name,
                current.version,
                spec_json(current.spec),
                current.created_at,
                now,
                1,
            ]
        ],
        by_column=False,
    )


def _page_range(keys: Sequence[TraceKey]) -> dict[str, str] | None:
    """Range parameters when sorted `keys` are one project's contiguous page, else None."""
    if not keys or keys[0][0] != keys[-1][0]:
        return None
    return {"project_id": keys[0][0], "first": keys[0][1], "last": keys[-1][1]}


def load_observations(
    ch: ClickHouse, keys: Sequence[TraceKey], *, page: bool = False
) -> dict[TraceKey, list[Obs]]:
    """Live observations of the given (sorted) traces, grouped by trace.

    A backfill page is a contiguous key range of one project: reading that primary-key range
    is cheaper than binding and matching hundreds of keys; traces in the range that were not
    asked for are dropped here.
    """
    grouped: dict[TraceKey, list[Obs]] = defaultdict(list)
    if not keys:
        return grouped
    span = _page_range(keys) if page else None
    if span is not None:
        rows = ch.query_rows("durations/observations_in_range", span)
    else:
        rows = ch.query_rows("durations/observations_for_traces", {"keys": list(keys)})
    wanted = set(keys)
    for project_id, trace_id, obs_id, type_, name, start, end, first_token in rows:
        key = (project_id, trace_id)
        if key in wanted:
            grouped[key].append(Obs(obs_id, type_, name, start, end, first_token))
    return grouped


def materialize_durations(
    ch: ClickHouse,
    keys: Iterable[ConclusionKey],
    now: Now,
    *,
    definition: str | None = None,
    register: bool = True,
    page: bool = False,
) -> MaterializeResult:
    """Compute and store the named durations of concluded traces from their live raw rows.

    `register` records each (project, trace, revision) as concluded, so a definition created
    later can backfill it; backfill jobs pass False (they read that registry). `definition`
    limits the work to one definition; `page` says the keys are a contiguous key range of
    one project (a backfill page), read as a range. Re-running with the same inputs writes the same
    values (a newer version of the same keys), so a replayed chunk is harmless.
    """
    latest: dict[TraceKey, int] = {}
    for project_id, trace_id, revision in keys:
        latest[(project_id, trace_id)] = max(revision, latest.get((project_id, trace_id), 0))
    if not latest:
        return MaterializeResult(0, 0)
    trace_keys = sorted(latest)
    observations = load_observations(ch, trace_keys, page=page)
    trace_times = _trace_times(ch, trace_keys, observations)
    # A trace with no live row was deleted: its stored durations are tombstoned below so
    # neither the trace endpoint nor the stats keep counting it.
    gone = {key for key in trace_keys if key not in trace_times}
    stamp = now()
    if register and len(gone) < len(trace_keys):
        ch.insert(
            "duration_traces",
            ["project_id", "trace_id", "revision", "trace_time", "registered_at"],
            [
                [p, t, latest[(p, t)], trace_times[(p, t)], stamp]
                for p, t in trace_keys
                if (p, t) not in gone
            ],
            by_column=False,
        )
    definitions = _definitions_for(ch, sorted({p for p, _ in trace_keys}), definition)
    if not any(definitions.values()) and not gone:
        return MaterializeResult(len(trace_keys), 0)
    span = _page_range(trace_keys) if page else None
    stored_rows = (
        ch.query_rows("durations/stored_in_range", span)
        if span is not None
        else ch.query_rows("durations/stored_for_traces", {"keys": trace_keys})
    )
    previous = {(p, t, d): trace_time for p, t, d, trace_time in stored_rows}
    rows: list[list[Any]] = []
    hour_rows: list[list[Any]] = []
    for (project_id, trace_id, name), old_time in previous.items():
        if (project_id, trace_id) in gone:
            rows.append(_tombstone_row(project_id, trace_id, name, old_time, stamp))
            hour_rows.append(_hour_row(project_id, trace_id, name, 0, old_time, None, stamp))
    for key in trace_keys:
        if key in gone:
            continue
        project_id, trace_id = key
        trace_time = trace_times[key]
        for stored in definitions.get(project_id, []):
            result = compute_duration(stored.spec, observations.get(key, []))
            rows.append(_result_row(key, stored, latest[key], trace_time, result, stamp))
            old_time = previous.get((project_id, trace_id, stored.name))
            if old_time is not None and _hour(old_time) != _hour(trace_time):
                # The trace moved to another hour: clear the old stats row, or stats over a
                # range covering both hours would count this trace twice.
                hour_rows.append(
                    _hour_row(
                        project_id, trace_id, stored.name, stored.version, old_time, None, stamp
                    )
                )
            hour_rows.append(
                _hour_row(
                    project_id, trace_id, stored.name, stored.version, trace_time, result, stamp
                )
            )
    if rows:
        ch.insert("trace_durations", _RESULT_COLUMNS, rows, by_column=False)
        ch.insert("trace_durations_by_hour", _HOUR_COLUMNS, hour_rows, by_column=False)
    return MaterializeResult(len(trace_keys), len(rows))


# Traces materialized per statement group by the detector hook (bounds one IN-list).
HOOK_BATCH = 1000


def materialize_concluded(ch: ClickHouse, keys: Sequence[ConclusionKey], now: Now) -> int:
    """The detector's hook: materialize just-recorded conclusions; returns rows written.

    A failure is logged and swallowed: the conclusions are already durable and must still
    be delivered, and `trace-analytics backfill durations` recomputes registered traces.
    """
    written = 0
    for start in range(0, len(keys), HOOK_BATCH):
        batch = keys[start : start + HOOK_BATCH]
        try:
            written += materialize_durations(ch, batch, now).rows
        except Exception:
            log.exception(
                "materializing durations failed; run `trace-analytics backfill durations`",
                extra={"traces": len(batch), "first": list(batch[0])},
            )
    return written


def forget_deleted_trace(ch: ClickHouse, project_id: str, trace_id: str, now: Now) -> None:
    """After a trace is soft-deleted: tombstone its stored durations (no-op if none)."""
    materialize_durations(ch, [(project_id, trace_id, 0)], now, register=False)


def _definitions_for(
    ch: ClickHouse, projects: list[str], only: str | None
) -> dict[str, list[StoredDefinition]]:
    """Live definitions of these projects by project (just `only` when it is given)."""
    found: dict[str, list[StoredDefinition]] = defaultdict(list)
    for row in ch.query_dicts("durations/definitions_for_projects", {"projects": projects}):
        stored = _definition(row)
        if only is None or stored.name == only:
            found[stored.project_id].append(stored)
    return found


def _tombstone_row(
    project_id: str, trace_id: str, name: str, old_time: datetime, stamp: datetime
) -> list[Any]:
    return [project_id, trace_id, name, 0, 0, old_time, None, None, None, "", 0, stamp, 1]


def _hour_row(
    project_id: str,
    trace_id: str,
    name: str,
    version: int,
    trace_time: datetime,
    result: DurationResult | None,
    stamp: datetime,
) -> list[Any]:
    """A stats row; `result` None writes the tombstone of the row at that hour."""
    return [
        project_id,
        name,
        _hour(trace_time),
        trace_id,
        version,
        trace_time,
        None if result is None else result.duration_ms,
        0 if result is None else int(result.skewed),
        0 if result is None else int(result.missing),
        stamp,
        1 if result is None else 0,
    ]


_RESULT_COLUMNS = (
    "project_id",
    "trace_id",
    "definition",
    "definition_version",
    "revision",
    "trace_time",
    "duration_ms",
    "start_time",
    "end_time",
    "reason",
    "skewed",
    "computed_at",
    "is_deleted",
)
_HOUR_COLUMNS = (
    "project_id",
    "definition",
    "hour",
    "trace_id",
    "definition_version",
    "trace_time",
    "duration_ms",
    "skewed",
    "missing",
    "computed_at",
    "is_deleted",
)


def _result_row(
    key: TraceKey,
    stored: StoredDefinition,
    revision: int,
    trace_time: datetime,
    result: DurationResult,
    stamp: datetime,
) -> list[Any]:
    return [
        key[0],
        key[1],
        stored.name,
        stored.version,
        revision,
        trace_time,
        result.duration_ms,
        result.start_time,
        result.end_time,
        result.reason or "",
        int(result.skewed),
        stamp,
        0,
    ]


def _hour(value: datetime) -> datetime:
    return value.replace(minute=0, second=0, microsecond=0)


def _trace_times(
    ch: ClickHouse, keys: Sequence[TraceKey], observations: dict[TraceKey, list[Obs]]
) -> dict[TraceKey, datetime]:
    """Each trace's start (first live observation), else its trace row's timestamp.

    Traces with neither (deleted, or never written) are left out.
    """
    times: dict[TraceKey, datetime] = {}
    for key in keys:
        start = trace_start(observations.get(key, []))
        if start is not None:
            times[key] = start
    bare = [k for k in keys if k not in times]
    if bare:
        for row in ch.query_dicts("traces/summary_traces", {"keys": bare}):
            times[(row["project_id"], row["id"])] = row["timestamp"]
    return times


def read_trace_durations(
    ch: ClickHouse, project_id: str, trace_id: str
) -> list[dict[str, Any]] | None:
    """The stored durations of a trace for its project's live definitions; None if unknown.

    Only reads. A definition with no stored row at its current version (a backfill has not
    reached this trace yet) is listed with a null duration and a reason saying so.
    """
    params = {"project_id": project_id, "trace_id": trace_id}
    registered = ch.query_rows("durations/registered_trace", params)
    if not registered:
        return None
    stored = {r["definition"]: r for r in ch.query_dicts("durations/read_trace", params)}
    data: list[dict[str, Any]] = []
    for current in list_definitions(ch, project_id):
        row = stored.get(current.name)
        if row is None or int(row["definition_version"]) != current.version:
            data.append(
                {
                    "name": current.name,
                    "duration_ms": None,
                    "start_time": None,
                    "end_time": None,
                    "reason": "pending: not yet materialized for this definition version "
                    "(see GET /v1/jobs)",
                    "revision": None,
                }
            )
            continue
        data.append(
            {
                "name": current.name,
                "duration_ms": row["duration_ms"],
                "start_time": rfc3339(row["start_time"]),
                "end_time": rfc3339(row["end_time"]),
                "reason": row["reason"] or None,
                "revision": int(row["revision"]),
            }
        )
    return data


def definition_stats(
    ch: ClickHouse,
    current: StoredDefinition,
    start: datetime,
    end: datetime,
    granularity: str,
) -> list[dict[str, Any]]:
    """Per-bucket count, skew, missing and percentiles of one definition over [start, end)."""
    params = {
        "project_id": current.project_id,
        "definition": current.name,
        "from": start,
        "to": end,
        "granularity": granularity,
        "version": current.version,
    }
    out = []
    for row in ch.query_dicts("durations/stats", params):
        measured = int(row["measured"])
        p50, p90, p95, p99 = row["percentiles"] if measured else (None, None, None, None)
        out.append(
            {
                "bucket": rfc3339(row["bucket"]),
                "count": measured,
                "skewed": int(row["skewed_traces"]),
                "missing": int(row["missing_traces"]),
                "avg_ms": row["avg_ms"],
                "p50_ms": p50,
                "p90_ms": p90,
                "p95_ms": p95,
                "p99_ms": p99,
                "max_ms": row["max_ms"],
            }
        )
    return out


def backfill_total(ch: ClickHouse, project_id: str, snapshot: datetime) -> int:
    """Concluded traces a durations backfill will visit (`project_id` '' = every project)."""
    rows = ch.query_rows(
        "durations/backfill_count", {"project_id": project_id, "snapshot": snapshot}
    )
    return int(rows[0][0])


def backfill_page(
    ch: ClickHouse, project_id: str, after: TraceKey, snapshot: datetime, limit: int
) -> list[ConclusionKey]:
    """The next `limit` concluded traces after `after`, in key order."""
    rows = ch.query_rows(
        "durations/backfill_keys",
        {
            "project_id": project_id,
            "after_project": after[0],
            "after_trace": after[1],
            "snapshot": snapshot,
            "limit": limit,
        },
    )
    return [(p, t, int(r)) for p, t, r in rows]
