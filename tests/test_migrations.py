"""Migrations: fresh apply, re-run no-op, edited file refused, the schema-version gate."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from service.api import create_app
from service.clickhouse import ClickHouse, connect, queries_root
from service.migrations import (
    MigrationError,
    apply,
    discover,
    render,
    require_current,
    split_statements,
    status,
)
from service.settings import Settings


@pytest.fixture
def bare(settings: Settings) -> Iterator[ClickHouse]:
    """An engine in the test's directory with no migrations applied."""
    ch = connect(settings)
    yield ch
    ch.close()


def table_names(ch: ClickHouse) -> set[str]:
    rows = ch.query_rows(
        "t", sql="SELECT name FROM system.tables WHERE database = currentDatabase()"
    )
    return {r[0] for r in rows}


def test_fresh_database_gets_every_migration_in_order(bare: ClickHouse) -> None:
    shipped = discover()
    assert apply(bare) == [m.name for m in shipped]
    assert {"traces", "observations", "trace_activity", "schema_migrations"} <= table_names(bare)
    assert status(bare).up_to_date
    assert status(bare).current == shipped[-1].name


def test_rerun_is_a_no_op(clickhouse: ClickHouse) -> None:
    assert apply(clickhouse) == []
    rows = clickhouse.query_rows("t", sql="SELECT count() FROM schema_migrations")
    assert rows[0][0] == len(discover())


def test_edited_applied_migration_is_refused(bare: ClickHouse, tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    shutil.copytree(queries_root() / "migrations", folder)
    apply(bare, discover(folder))
    first = sorted(folder.glob("*.sql"))[0]
    first.write_text(first.read_text() + "\n-- an innocent-looking edit\n")
    with pytest.raises(MigrationError, match=f"{first.stem} was edited"):
        apply(bare, discover(folder))
    assert status(bare, discover(folder)).changed == [first.stem]


def test_gate_reports_a_schema_behind_the_build(bare: ClickHouse) -> None:
    shipped = discover()
    apply(bare, shipped[:1])
    with pytest.raises(MigrationError) as caught:
        require_current(bare)
    message = str(caught.value)
    assert "\n" not in message
    assert f"schema is at {shipped[0].name}" in message
    assert f"wants {shipped[-1].name}" in message
    assert "trace-analytics migrate" in message


def test_gate_reports_a_database_ahead_of_the_build(bare: ClickHouse) -> None:
    shipped = discover()
    apply(bare, shipped)
    older_build = status(bare, shipped[:-1])
    assert older_build.unknown == [shipped[-1].name]
    assert "does not know" in (older_build.problem() or "")


def test_apply_refuses_when_the_database_is_ahead(bare: ClickHouse) -> None:
    shipped = discover()
    apply(bare, shipped)
    with pytest.raises(MigrationError, match="deploy the newer build"):
        apply(bare, shipped[:-1])


def test_readyz_is_503_while_the_schema_is_behind(bare: ClickHouse, settings: Settings) -> None:
    apply(bare, discover()[:1])
    app = create_app(settings, bare)
    with TestClient(app) as client:
        response = client.get("/readyz")
        assert response.status_code == 503
        body = response.json()
        assert body["checks"]["schema"]["ok"] is False
        assert any("trace-analytics migrate" in reason for reason in body["reasons"])
        apply(bare)
        assert client.get("/readyz").status_code == 200


def test_statements_split_on_semicolons_and_drop_comments() -> None:
    sql = "-- header\nCREATE TABLE a (x UInt8) ENGINE = MergeTree ORDER BY x;\n\nSELECT 1;\n"
    assert split_statements(sql) == [
        "CREATE TABLE a (x UInt8) ENGINE = MergeTree ORDER BY x",
        "SELECT 1",
    ]


def test_cluster_rendering_adds_on_cluster_and_replicated_engines() -> None:
    statement = "CREATE TABLE IF NOT EXISTS t (x UInt8) ENGINE = ReplacingMergeTree(x) ORDER BY x"
    assert render(statement, None) == statement
    assert render(statement, "prod") == (
        "CREATE TABLE IF NOT EXISTS t ON CLUSTER prod (x UInt8) "
        "ENGINE = ReplicatedReplacingMergeTree(x) ORDER BY x"
    )
