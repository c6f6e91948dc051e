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
from service.errors import MigrationError

log = logging.getLogger(__name__)

_FILE_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_PART = r"(?:`(?:[^`\\]|\\.)+`|\"(?:[^\"\\]|\\.)+\"|[A-Za-z_][A-Za-z0-9_]*)"
_OBJECT = rf"{_PART}(?:\s*\.\s*{_PART})?"
# DDL that takes `ON CLUSTER` right after the object name.
_AFTER_NAME = re.compile(
    r"^(?P<head>\s*(?:"
    r"CREATE\s+(?:OR\s+REPLACE\s+)?(?:MATERIALIZED\s+VIEW|VIEW|TABLE|DICTIONARY|DATABASE|FUNCTION)"
    r"(?:\s+IF\s+NOT\s+EXISTS)?"
    r"|ALTER\s+TABLE"
    r"|DROP\s+(?:TABLE|VIEW|DICTIONARY|DATABASE|FUNCTION)(?:\s+IF\s+EXISTS)?"
    r"|TRUNCATE(?:\s+TABLE)?(?:\s+IF\s+EXISTS)?"
    r"|OPTIMIZE\s+TABLE"
    r")\s+)"
    rf"(?P<name>{_OBJECT})",
    re.IGNORECASE,
)
# DDL whose `ON CLUSTER` goes after all its names, at the end: RENAME a TO b ON CLUSTER c.
_AT_END = re.compile(
    r"^\s*(?:RENAME\s+(?:TABLE|DICTIONARY)|EXCHANGE\s+(?:TABLES|DICTIONARIES))\b", re.I
)
# Any other DDL would silently run on one node only: render refuses it.
_OTHER_DDL = re.compile(r"^\s*(?:CREATE|ALTER|DROP|RENAME|EXCHANGE|TRUNCATE|ATTACH|DETACH)\b", re.I)
# Engines with a Replicated twin. Only the name changes: the arguments stay, so the server's
# default_replica_path / default_replica_name decide where the replicas meet.
_ENGINE = re.compile(
    r"(?P<prefix>\b(?i:ENGINE)\s*=\s*)(?=(?:Replacing|Aggregating|Summing|Collapsing|"
    r"VersionedCollapsing|Graphite|Coalescing)?MergeTree\b)"
)
_PLAIN_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


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

    Replicated engines keep the original arguments and add no ZooKeeper path: the server's
    `default_replica_path` / `default_replica_name` (with `{shard}`/`{replica}` macros)
    decide where each table's replicas meet. A materialized view `TO` a table has no engine
    and gets none. DDL this function cannot place `ON CLUSTER` in is refused rather than
    run on one node only.
    """
    if cluster is None:
        return statement
    on_cluster = f"ON CLUSTER {quote_cluster(cluster)}"
    match = _AFTER_NAME.match(statement)
    if match:
        end = match.end("name")
        statement = f"{statement[:end]} {on_cluster}{statement[end:]}"
    elif _AT_END.match(statement):
        statement = f"{statement.rstrip()} {on_cluster}"
    elif _OTHER_DDL.match(statement):
        first_line = statement.strip().splitlines()[0]
        raise MigrationError(f"cannot render {first_line!r} for a cluster: no ON CLUSTER rule")
    return _ENGINE.sub(r"\g<prefix>Replicated", statement)


def quote_cluster(cluster: str) -> str:
    """The cluster name as SQL: bare when it is a plain identifier, else back-quoted."""
    if _PLAIN_IDENTIFIER.match(cluster):
        return cluster
    if any(ch in cluster for ch in "`\\\n\r"):
        raise MigrationError(f"cluster name {cluster!r} cannot be quoted safely")
    return f"`{cluster}`"


def _ensure_tracking_table(ch: ClickHouse) -> None:
    ch.command(
        "schema/create_tracking_table",
        sql=render(load_query("schema/create_tracking_table"), ch.cluster),
    )


def applied_migrations(ch: ClickHouse) -> dict[str, str]:
    """`{name: checksum}` of what the database has applied (empty before the first migrate).

    Read-only: /readyz calls this on every probe, and on a cluster a CREATE ... ON CLUSTER
    per probe would flood the distributed DDL queue. Only `apply` creates the table.
    """
    if not ch.query_rows("schema/tracking_table_exists")[0][0]:
        return {}
    return {name: checksum for name, checksum in ch.query_rows("schema/applied_migrations")}


def cluster_shape_problem(cluster: str, shards: int, hosts: int) -> str | None:
    """One line when the cluster can't hold this schema, else None.

    The schema is Replicated tables with no Distributed layer: every replica holds all the
    data, which is right for one shard with any number of replicas. On several shards each
    would hold a fraction and per-trace reads, FINAL and rollup recomputes would be wrong.
    """
    if hosts == 0:
        return (
            f"cluster {cluster!r} is not defined on this server (system.clusters); check "
            "TA_CLICKHOUSE_CLUSTER against the server's remote_servers"
        )
    if shards > 1:
        return (
            f"cluster {cluster!r} has {shards} shards; trace-analytics supports one shard with "
            "any number of replicas (README: Running in production)"
        )
    return None


def check_cluster(ch: ClickHouse) -> None:
    """Raise `MigrationError` unless TA_CLICKHOUSE_CLUSTER names a one-shard cluster."""
    if ch.cluster is None:
        return
    shards, hosts = ch.query_rows("schema/cluster_shape", {"cluster": ch.cluster})[0]
    problem = cluster_shape_problem(ch.cluster, int(shards), int(hosts))
    if problem is not None:
        raise MigrationError(problem)


def status(ch: ClickHouse, shipped: list[Migration] | None = None) -> SchemaStatus:
    """Compare the database with the migrations this build ships."""
    shipped = discover() if shipped is None else shipped
    return compare(applied_migrations(ch), shipped)


def compare(applied: dict[str, str], shipped: list[Migration]) -> SchemaStatus:
    """What `applied` (`{name: checksum}`, from any database) lacks or has beyond `shipped`."""
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
    check_cluster(ch)
    _ensure_tracking_table(ch)
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
