"""Which settings each engine role sends, decided as plain data (and the version gate's rule)."""

from __future__ import annotations

import re

import pytest

from service.clickhouse import queries_root
from service.engine_roles import (
    ADMIN,
    API,
    BACKGROUND_ROLES,
    DETECT,
    INGEST,
    JOBS,
    RAW_TABLES,
    ROLES,
    ROLLUPS,
    insert_target,
    statement_settings,
)
from service.engine_version import MINIMUM_VERSION, parse_version, version_problem

BOUND = {"max_execution_time": 30.0}
ASYNC = {"async_insert": 1, "wait_for_async_insert": 1}
STATE_INSERT = "-- what it does\nINSERT INTO rollup_state (name, cursor) SELECT 'x', now64(3)"


def settings_of(role: str, *, server: bool, cluster: str | None) -> dict[str, object]:
    chosen = statement_settings(role, server=server, cluster=cluster, timeout_seconds=30.0)
    return {
        "query": chosen.for_query(),
        "state_command": chosen.for_command(STATE_INSERT),
        "ddl": chosen.for_command("CREATE TABLE IF NOT EXISTS t (x UInt8) ENGINE = Memory"),
        "state_insert": chosen.for_insert("conclusions"),
        "raw_insert": chosen.for_insert("observations"),
        "session": chosen.session,
    }


@pytest.mark.parametrize("role", sorted(ROLES))
@pytest.mark.parametrize("server", [False, True], ids=["embedded", "server"])
@pytest.mark.parametrize("cluster", [None, "prod"], ids=["no cluster", "cluster"])
def test_every_statement_of_every_role_carries_the_time_bound(
    role: str, server: bool, cluster: str | None
) -> None:
    chosen = settings_of(role, server=server, cluster=cluster)
    for kind in ("query", "state_command", "ddl", "state_insert", "raw_insert"):
        assert chosen[kind]["max_execution_time"] == 30.0, kind  # type: ignore[index]


@pytest.mark.parametrize("role", sorted(ROLES))
def test_embedded_chdb_gets_only_the_bound_even_with_a_cluster_name(role: str) -> None:
    chosen = settings_of(role, server=False, cluster="prod")
    assert chosen == {
        "query": BOUND,
        "state_command": BOUND,
        "ddl": BOUND,
        "state_insert": BOUND,
        "raw_insert": BOUND,
        "session": False,
    }


@pytest.mark.parametrize("role", sorted(BACKGROUND_ROLES))
def test_background_roles_on_a_cluster_read_their_writes_and_write_state_with_quorum(
    role: str,
) -> None:
    chosen = settings_of(role, server=True, cluster="prod")
    consistent = {**BOUND, "select_sequential_consistency": 1}
    assert chosen == {
        "query": consistent,
        "state_command": {**consistent, "insert_quorum": "auto"},
        "ddl": consistent,
        "state_insert": {**BOUND, "insert_quorum": "auto"},
        "raw_insert": {**BOUND, **ASYNC},
        "session": True,
    }


@pytest.mark.parametrize("role", sorted(BACKGROUND_ROLES))
def test_background_roles_on_a_single_server_keep_a_session_and_nothing_else(role: str) -> None:
    chosen = settings_of(role, server=True, cluster=None)
    assert chosen == {
        "query": BOUND,
        "state_command": BOUND,
        "ddl": BOUND,
        "state_insert": BOUND,
        "raw_insert": {**BOUND, **ASYNC},
        "session": True,
    }


@pytest.mark.parametrize("role", [ADMIN, API, INGEST])
@pytest.mark.parametrize("cluster", [None, "prod"], ids=["no cluster", "cluster"])
def test_foreground_roles_share_the_pooled_client_without_a_session(
    role: str, cluster: str | None
) -> None:
    chosen = settings_of(role, server=True, cluster=cluster)
    quorum = {"insert_quorum": "auto"} if cluster else {}
    assert chosen == {
        "query": BOUND,
        "state_command": {**BOUND, **quorum},
        "ddl": BOUND,
        "state_insert": {**BOUND, **quorum},
        "raw_insert": {**BOUND, **ASYNC},
        "session": False,
    }


def test_an_unknown_role_is_refused_by_name() -> None:
    with pytest.raises(KeyError, match="'rollup'"):
        statement_settings("rollup", server=True, cluster=None, timeout_seconds=1)


@pytest.mark.parametrize(
    ("sql", "table"),
    [
        (STATE_INSERT, "rollup_state"),
        ("INSERT INTO `conclusion_outbox` (a) VALUES", "conclusion_outbox"),
        ("  insert into analytics.jobs SELECT 1", "jobs"),
        ("INSERT INTO TABLE observations SELECT 1", "observations"),
        ("SELECT 1", None),
        ("DELETE FROM usage_rollup WHERE 1", None),
        ("-- INSERT INTO jobs\nSELECT 1", None),
    ],
)
def test_the_written_table_is_read_from_the_statement(sql: str, table: str | None) -> None:
    assert insert_target(sql) == table


def created_tables() -> set[str]:
    sql = " ".join(p.read_text(encoding="utf-8") for p in sorted(queries_root().rglob("*.sql")))
    return set(re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", sql))


def test_every_insert_in_queries_names_a_table_the_schema_creates() -> None:
    """So the quorum rule (every table but the raw ones) covers what the service writes."""
    tables = created_tables()
    assert RAW_TABLES <= tables
    targets = {}
    for path in sorted(queries_root().rglob("*.sql")):
        if "migrations" in path.parts:
            continue
        target = insert_target(path.read_text(encoding="utf-8"))
        if target is not None:
            targets[path.stem] = target
    assert targets, "no INSERT found: the parser is broken"
    assert {name: t for name, t in targets.items() if t not in tables} == {}
    raw_writers = {name for name, t in targets.items() if t in RAW_TABLES}
    assert raw_writers == {"soft_delete_observations", "soft_delete_traces"}


def test_roles_are_the_documented_ones() -> None:
    assert {DETECT, ROLLUPS, JOBS} <= BACKGROUND_ROLES
    assert {ADMIN, API, INGEST}.isdisjoint(BACKGROUND_ROLES)


# The version gate's rule.


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("24.8.14.39", (24, 8, 14, 39)),
        ("26.9.2.1", (26, 9, 2, 1)),
        ("24.8", (24, 8)),
        ("v25.3.1.2-lts", (25, 3, 1, 2)),
        ("unknown", None),
        ("", None),
    ],
)
def test_versions_parse_to_numbers(text: str, parsed: tuple[int, ...] | None) -> None:
    assert parse_version(text) == parsed


@pytest.mark.parametrize("found", ["24.8.1.1", "24.8", "24.9.1", "25.1.1.1", "26.9.2.1"])
def test_the_minimum_and_newer_pass(found: str) -> None:
    assert MINIMUM_VERSION == (24, 8)
    assert version_problem(found) is None


@pytest.mark.parametrize("found", ["24.7.9.9", "24.3.5.47", "23.12.1.1", "19.17.1"])
def test_older_versions_are_refused_naming_found_wanted_and_why(found: str) -> None:
    problem = version_problem(found)
    assert problem is not None
    assert found in problem
    assert "24.8 or newer" in problem
    assert "deduplicate_merge_projection_mode" in problem
    assert "\n" not in problem


def test_a_version_that_is_not_a_number_is_refused() -> None:
    problem = version_problem("my-fork")
    assert problem is not None
    assert "'my-fork'" in problem
