"""Schema migrations: apply numbered files in order, report status, gate start-up.

Files are `queries/migrations/NNNN_name.sql`, tracked by name and SHA-256 in
`schema_migrations`. The schema version is the name of the newest applied file. An applied
file whose text changed is an error, never a silent re-run: write a new migration instead.

ClickHouse DDL is not transactional. Every statement is written to be idempotent
(`IF NOT EXISTS`), and a file is recorded only after all its statements ran, so a
migration interrupted half-way is simply applied again.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from service.clickhouse import ClickHouse, load_query, queries_root

log = logging.getLogger(__name__)

_FILE_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_CREATE = re.compile(
    r"^(?P<head>\s*CREATE\s+(?:OR\s+REPLACE\s+)?(?:MATERIALIZED\s+VIEW|VIEW|TABLE|DICTIONARY)"
    r"(?:\s+IF\s+NOT\s+EXISTS)?\s+)(?P<name>[A-Za-z_][A-Za-z0-9_.]*)",
    re.IGNORECASE,
)
_ALTER_DROP = re.compile(
    r"^(?P<head>\s*(?:ALTER\s+TABLE|DROP\s+(?:TABLE|VIEW|DICTIONARY)(?:\s+IF\s+EXISTS)?|"
    r"RENAME\s+TABLE)\s+)(?P<name>[A-Za-z_][A-Za-z0-9_.]*)",
    re.IGNORECASE,
)
_ENGINE = re.compile(
    r"ENGINE\s*=\s*(?P<engine>(?:Replacing|Aggregating|Summing|Collapsing|"
    r"VersionedCollapsing)?MergeTree)\b(?P<args>\s*\([^)]*\))?",
    re.IGNORECASE,
)


class MigrationError(RuntimeError):
    """The migrations on disk and in the database disagree; the message says how."""


@dataclass(frozen=True)
class Migration:
    """One numbered migration file."""

    name: str
    checksum: str
    sql: str

    def statements(self) -> list[str]:
        return split_statements(self.sql)


@dataclass(frozen=True)
class SchemaStatus:
    """What the database has applied compared with what this build ships."""

    wanted: str | None
    current: str | None
    pending: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)

    @property
    def up_to_date(self) -> bool:
        return not (self.pending or self.unknown or self.changed)

    def problem(self) -> str | None:
        """One line for an operator, or None when the schema matches."""
        if self.changed:
            return (
                f"applied migration {self.changed[0]} was edited after it ran; restore the "
                "original file and put the change in a new migration"
            )
        if self.unknown:
            return (
                f"schema is at {self.current}, this build wants {self.wanted}: the database has "
                f"migration {self.unknown[0]} that this build does not know; deploy the newer "
                "build"
            )
        if self.pending:
            return (
                f"schema is at {self.current or 'none'}, this build wants {self.wanted}; run "
                "`trace-analytics migrate`"
            )
        return None


def discover(folder: Path | None = None) -> list[Migration]:
    """Every migration file shipped with this build, in order."""
    root = folder or queries_root() / "migrations"
    found = []
    for path in sorted(root.iterdir()):
        if path.suffix != ".sql":
            continue
        if not _FILE_NAME.match(path.name):
            raise MigrationError(f"migration file {path.name} is not named NNNN_name.sql")
        text = path.read_text(encoding="utf-8")
        digest = hashlib.sha256(text.encode()).hexdigest()
        found.append(Migration(name=path.stem, checksum=digest, sql=text))
    numbers = [m.name[:4] for m in found]
    if len(set(numbers)) != len(numbers):
        raise MigrationError("two migration files share a number")
    return found


def split_statements(sql: str) -> list[str]:
    """Statements of a migration file: comment lines dropped, split on `;` at line end."""
    lines = [line for line in sql.splitlines() if not line.lstrip().startswith("--")]
    text = "\n".join(lines)
    return [part.strip() for part in re.split(r";\s*(?:\n|$)", text) if part.strip()]


def render(statement: str, cluster: str | None) -> str:
    """The statement as it runs: unchanged embedded, `ON CLUSTER` + Replicated on a cluster.

    Replicated engines are written without arguments so the server's
    `default_replica_path` / `default_replica_name` (with `{shard}`/`{replica}` macros)
    decide where each table's replicas meet.
    """
    if cluster is None:
        return statement
    on_cluster = f" ON CLUSTER {cluster}"
    for pattern in (_CREATE, _ALTER_DROP):
        match = pattern.match(statement)
        if match:
            end = match.end("name")
            statement = statement[:end] + on_cluster + statement[end:]
            break
    return _ENGINE.sub(_replicated_engine, statement)


def _replicated_engine(match: re.Match[str]) -> str:
    engine = match.group("engine")
    args = match.group("args") or ""
    return f"ENGINE = Replicated{engine}{args}"


def _ensure_tracking_table(ch: ClickHouse) -> None:
    ch.command(
        "schema/create_tracking_table",
        sql=render(load_query("schema/create_tracking_table"), ch.cluster),
    )


def applied_migrations(ch: ClickHouse) -> dict[str, str]:
    """`{name: checksum}` of what the database has applied."""
    _ensure_tracking_table(ch)
    return {name: checksum for name, checksum in ch.query_rows("schema/applied_migrations")}


def status(ch: ClickHouse, shipped: list[Migration] | None = None) -> SchemaStatus:
    """Compare the database with the migrations this build ships."""
    shipped = discover() if shipped is None else shipped
    applied = applied_migrations(ch)
    known = {m.name: m for m in shipped}
    return SchemaStatus(
        wanted=shipped[-1].name if shipped else None,
        current=max(applied) if applied else None,
        pending=[m.name for m in shipped if m.name not in applied],
        unknown=sorted(name for name in applied if name not in known),
        changed=[m.name for m in shipped if m.name in applied and applied[m.name] != m.checksum],
    )


def apply(ch: ClickHouse, shipped: list[Migration] | None = None) -> list[str]:
    """Apply pending migrations in order; returns their names. Refuses edited or unknown ones."""
    shipped = discover() if shipped is None else shipped
    current = status(ch, shipped)
    if current.changed or current.unknown:
        raise MigrationError(current.problem() or "schema mismatch")
    done = []
    for migration in shipped:
        if migration.name not in current.pending:
            continue
        log.info("applying migration", extra={"migration": migration.name})
        for statement in migration.statements():
            ch.command(f"migration:{migration.name}", sql=render(statement, ch.cluster))
        ch.insert(
            "schema_migrations",
            ["name", "checksum", "applied_at"],
            [[migration.name, migration.checksum, datetime.now(UTC)]],
            by_column=False,
        )
        done.append(migration.name)
    return done


def require_current(ch: ClickHouse) -> None:
    """Raise `MigrationError` with one line unless the schema matches this build."""
    problem = status(ch).problem()
    if problem is not None:
        raise MigrationError(problem)
