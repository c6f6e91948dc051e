"""Engine roles: who talks to ClickHouse, over which connections, with which settings.

Every statement runs on the engine of one role. Embedded chDB runs one statement at a time
per connection, so each role owns its connections and a slow background statement never
queues an API read:

| role      | who                                     | connections (embedded) | server session |
| --------- | --------------------------------------- | ---------------------- | -------------- |
| `admin`   | migrations, start-up checks, the CLI    | 1 (the first opened)   | no             |
| `api`     | API requests (reads, deletes, defs)     | `TA_API_CONNECTIONS`   | no             |
| `ingest`  | ingest writer (/v1/ingest, OTLP), demo  | 1                      | no             |
| `detect`  | conclusion detection + durations        | 1                      | yes            |
| `deliver` | webhook delivery bookkeeping            | 1                      | yes            |
| `rollups` | rollup passes                           | 1                      | yes            |
| `jobs`    | backfill jobs                           | 1                      | yes            |

The API's connections are checked out per statement, not per request: a request holds none
while it parses, validates or serializes between statements, so a pool of 4 serves many
more concurrent requests, and no route has to manage a lease.

On a server the HTTP client is thread-safe and pooled, so `admin`, `api` and `ingest` share
one client; each background role gets a client of its own (same connection pool) with its
own `session_id`, so a session-sticky proxy (chproxy, a load balancer hashing on
`session_id`) pins a multi-statement pass to one replica and the pass reads its own writes.

Settings are decided here, in one place, as plain data (`statement_settings`):

* every statement, everywhere: `max_execution_time` (TA_QUERY_TIMEOUT_SECONDS);
* on a server with TA_CLICKHOUSE_CLUSTER set:
  - background roles' queries and commands: `select_sequential_consistency=1`, so a read
    on a replica that lacks a quorum-acknowledged write fails instead of answering stale;
  - writes into every table except the raw ingest tables: `insert_quorum='auto'` (a
    majority of replicas holds the row before the INSERT returns);
* on a server, row inserts into the raw ingest tables: `async_insert=1,
  wait_for_async_insert=1`: the server batches many small inserts into few parts, and the
  INSERT still returns only once the batch is written, so a 2xx still means durable.

chDB (embedded) gets `max_execution_time` only: the other settings mean nothing on one
node, and an engine may reject settings it does not know.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

SettingValue = int | float | str

ADMIN = "admin"
API = "api"
INGEST = "ingest"
DETECT = "detect"
DELIVER = "deliver"
ROLLUPS = "rollups"
JOBS = "jobs"

# Multi-statement passes that must read their own writes: their own server session each.
BACKGROUND_ROLES = frozenset({DETECT, DELIVER, ROLLUPS, JOBS})
ROLES = frozenset({ADMIN, API, INGEST}) | BACKGROUND_ROLES

# Written by ingest (and soft deletes) at the client's pace: async inserts, never quorum.
# Every other table the service writes holds state a later statement decides on.
RAW_TABLES = frozenset({"traces", "observations"})

_INSERT_TARGET = re.compile(
    r"^\s*INSERT\s+INTO\s+(?:TABLE\s+)?(?P<name>(?:`[^`]+`|\w+)(?:\s*\.\s*(?:`[^`]+`|\w+))?)",
    re.IGNORECASE,
)


def insert_target(sql: str) -> str | None:
    """The table an `INSERT INTO t ...` statement writes (unqualified), else None."""
    text = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
    match = _INSERT_TARGET.match(text)
    if match is None:
        return None
    return match.group("name").split(".")[-1].strip().strip("`")


@dataclass(frozen=True)
class StatementSettings:
    """The settings one role sends, by kind of statement (pure data; see the module doc)."""

    role: str
    session: bool
    reads: Mapping[str, SettingValue]
    state_writes: Mapping[str, SettingValue] = field(default_factory=dict)
    raw_inserts: Mapping[str, SettingValue] = field(default_factory=dict)

    def for_query(self) -> dict[str, SettingValue]:
        """Settings of a SELECT."""
        return dict(self.reads)

    def for_command(self, sql: str) -> dict[str, SettingValue]:
        """Settings of a statement without rows (INSERT ... SELECT, DELETE, DDL)."""
        target = insert_target(sql)
        if target is None or target in RAW_TABLES:
            return dict(self.reads)
        # An INSERT ... SELECT reads (its own pass's writes, for background roles) and
        # writes state: both halves' settings.
        return {**self.reads, **self.state_writes}

    def for_insert(self, table: str) -> dict[str, SettingValue]:
        """Settings of a row insert into `table`."""
        base = {k: v for k, v in self.reads.items() if k != "select_sequential_consistency"}
        extra = self.raw_inserts if table in RAW_TABLES else self.state_writes
        return {**base, **extra}


def statement_settings(
    role: str, *, server: bool, cluster: str | None, timeout_seconds: float
) -> StatementSettings:
    """What `role` sends: embedded or server, with or without TA_CLICKHOUSE_CLUSTER."""
    if role not in ROLES:
        raise KeyError(f"unknown engine role {role!r}; known: {', '.join(sorted(ROLES))}")
    bounded: dict[str, SettingValue] = {"max_execution_time": timeout_seconds}
    if not server:
        return StatementSettings(role=role, session=False, reads=MappingProxyType(bounded))
    background = role in BACKGROUND_ROLES
    reads = dict(bounded)
    state_writes: dict[str, SettingValue] = {}
    if cluster is not None:
        if background:
            reads["select_sequential_consistency"] = 1
        state_writes["insert_quorum"] = "auto"
    raw_inserts: dict[str, SettingValue] = {"async_insert": 1, "wait_for_async_insert": 1}
    return StatementSettings(
        role=role,
        session=background,
        reads=MappingProxyType(reads),
        state_writes=MappingProxyType(state_writes),
        raw_inserts=MappingProxyType(raw_inserts),
    )
