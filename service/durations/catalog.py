"""Duration definitions in ClickHouse: list, get, save (create, re-create, update), delete.

Every save writes a new version of the (project, name) row; a deleted definition keeps its
tombstone, so a re-created one continues the version sequence and stored results can always
say which definition version they were computed from.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from service.clickhouse import ClickHouse
from service.durations.definitions import DurationSpec, spec_from_json, spec_json
from service.times import format_time

log = logging.getLogger(__name__)

_COLUMNS = ("project_id", "name", "version", "spec", "created_at", "updated_at", "is_deleted")


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
            "created_at": format_time(self.created_at),
            "updated_at": format_time(self.updated_at),
        }


def list_definitions(ch: ClickHouse, project_id: str) -> list[StoredDefinition]:
    """The project's live definitions, by name."""
    rows = ch.query_dicts("durations/definitions_list", {"project_id": project_id})
    return [_definition(r) for r in rows]


def get_definition(ch: ClickHouse, project_id: str, name: str) -> StoredDefinition | None:
    """One live definition, or None when it does not exist (or was deleted)."""
    rows = ch.query_dicts("durations/definition_get", {"project_id": project_id, "name": name})
    return _definition(rows[0]) if rows else None


def projects_defining(ch: ClickHouse, name: str, limit: int = 1) -> list[str]:
    """Projects with a live definition called `name` (at most `limit` of them)."""
    rows = ch.query_rows("durations/definition_projects", {"name": name, "limit": limit})
    return [str(project) for (project,) in rows]


def definitions_by_project(
    ch: ClickHouse, projects: Sequence[str]
) -> dict[str, list[StoredDefinition]]:
    """The live definitions of these projects, by project (a project has few)."""
    found: dict[str, list[StoredDefinition]] = defaultdict(list)
    if not projects:
        return found
    rows = ch.query_dicts("durations/definitions_for_projects", {"projects": sorted(projects)})
    for row in rows:
        stored = _definition(row)
        found[stored.project_id].append(stored)
    return found


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
    _insert(ch, stored, now, deleted=False)
    log.info(
        "duration definition saved",
        extra={"project_id": project_id, "definition": name, "version": stored.version},
    )
    return stored


def delete_definition(ch: ClickHouse, current: StoredDefinition, now: datetime) -> None:
    """Tombstone a definition; its stored results stop being served (reads join on live ones)."""
    _insert(ch, current, now, deleted=True)


def _insert(ch: ClickHouse, stored: StoredDefinition, now: datetime, *, deleted: bool) -> None:
    row = [
        stored.project_id,
        stored.name,
        stored.version,
        spec_json(stored.spec),
        stored.created_at,
        now,
        int(deleted),
    ]
    ch.insert("duration_definitions", _COLUMNS, [row], by_column=False)


def _definition(row: dict[str, Any]) -> StoredDefinition:
    return StoredDefinition(
        project_id=row["project_id"],
        name=row["name"],
        version=int(row["version"]),
        spec=spec_from_json(row["spec"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )
