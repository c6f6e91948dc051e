"""Cluster DDL: every migration renders `ON CLUSTER` + Replicated engines and still parses.

The statements come from `discover()`, so migrations added later are covered without
touching this file. Parsing uses ClickHouse's own parser through chDB's `formatQuery`,
which parses a statement without running it (there is no cluster or ZooKeeper here).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from service.clickhouse import ClickHouse, connect, load_query
from service.migrations import (
    MigrationError,
    apply,
    check_cluster,
    cluster_shape_problem,
    discover,
    render,
    split_statements,
    status,
)
from service.settings import Settings

CLUSTER = "prod"


def every_statement() -> list[tuple[str, str]]:
    """`(label, statement)` for every migration statement plus the tracking table."""
    found = [
        (f"{m.name}#{i + 1}", statement)
        for m in discover()
        for i, statement in enumerate(m.statements())
    ]
    tracking = split_statements(load_query("schema/create_tracking_table"))
    return found + [(f"tracking#{i + 1}", s) for i, s in enumerate(tracking)]


STATEMENTS = every_statement()
LABELS = [label for label, _ in STATEMENTS]
DDL = re.compile(r"^\s*(CREATE|ALTER|DROP|RENAME|EXCHANGE|TRUNCATE|OPTIMIZE)\b", re.I)
OBJECT_NAME = re.compile(
    r"^\s*(?:CREATE\s+(?:OR\s+REPLACE\s+)?(?:MATERIALIZED\s+VIEW|VIEW|TABLE|DICTIONARY|DATABASE"
    r"|FUNCTION)(?:\s+IF\s+NOT\s+EXISTS)?|ALTER\s+TABLE|DROP\s+(?:TABLE|VIEW|DICTIONARY|DATABASE"
    r"|FUNCTION)(?:\s+IF\s+EXISTS)?|TRUNCATE(?:\s+TABLE)?(?:\s+IF\s+EXISTS)?|OPTIMIZE\s+TABLE)"
    r"\s+(?P<name>[`\"]?[\w.]+[`\"]?)\s+(?P<after>\S+\s+\S+\s+\S+)",
    re.I,
)
ENGINE_NAME = re.compile(r"\bENGINE\s*=\s*(?P<engine>\w+)", re.I)
# Engines whose data lives on one node only: on a cluster each replica would differ.
PER_NODE_ENGINES = {"Memory", "Log", "TinyLog", "StripeLog", "Set", "Join", "File", "URL"}


def test_there_are_migrations_to_check() -> None:
    assert len(STATEMENTS) >= 5
    assert any(label.startswith("0001") for label in LABELS)


@pytest.mark.parametrize(("label", "statement"), STATEMENTS, ids=LABELS)
def test_embedded_rendering_is_the_identity(label: str, statement: str) -> None:
    assert render(statement, None) == statement


@pytest.mark.parametrize(("label", "statement"), STATEMENTS, ids=LABELS)
def test_migration_files_are_cluster_agnostic(label: str, statement: str) -> None:
    """The files name no cluster and no Replicated engine: `render` adds both, or neither."""
    assert "ON CLUSTER" not in statement.upper()
    assert "REPLICATED" not in statement.upper()


@pytest.mark.parametrize(("label", "statement"), STATEMENTS, ids=LABELS)
def test_ddl_gets_on_cluster_right_after_the_object_name(label: str, statement: str) -> None:
    rendered = render(statement, CLUSTER)
    if not DDL.match(statement):
        # Data statements (INSERT ... SELECT backfills) run once, on the host migrate is
        # connected to, and reach the other replicas through the Replicated engine.
        assert re.match(r"^\s*INSERT\s+INTO\b", statement, re.I), statement[:80]
        assert rendered == statement
        return
    if re.match(r"^\s*(RENAME|EXCHANGE)\b", statement, re.I):
        # RENAME a TO b takes ON CLUSTER after all its names.
        assert rendered.endswith(f" ON CLUSTER {CLUSTER}")
        assert rendered.count("ON CLUSTER") == 1
        return
    match = OBJECT_NAME.match(rendered)
    assert match is not None, rendered
    assert match.group("after").split()[:3] == ["ON", "CLUSTER", CLUSTER]
    assert rendered.count("ON CLUSTER") == 1


@pytest.mark.parametrize(("label", "statement"), STATEMENTS, ids=LABELS)
def test_every_mergetree_engine_becomes_replicated(label: str, statement: str) -> None:
    rendered = render(statement, CLUSTER)
    before = [m.group("engine") for m in ENGINE_NAME.finditer(statement)]
    after = [m.group("engine") for m in ENGINE_NAME.finditer(rendered)]
    assert len(after) == len(before)
    for original, engine in zip(before, after, strict=True):
        assert engine not in PER_NODE_ENGINES, f"{label}: {engine} keeps data on one node"
        if "MergeTree" in original:
            assert engine == f"Replicated{original}"
        else:
            assert engine == original


def normalized(sql: str) -> str:
    return " ".join(sql.split())


def format_query(ch: ClickHouse, sql: str) -> str:
    rows = ch.query_rows("format", {"q": sql}, sql="SELECT formatQuery({q:String})")
    return str(rows[0][0])


def test_every_rendered_statement_parses_and_differs_only_by_cluster_and_engine(
    clickhouse: ClickHouse,
) -> None:
    """ClickHouse's parser accepts each rendered statement, and its canonical form equals the
    original's once `ON CLUSTER` and the `Replicated` prefixes are taken out again."""
    failures = []
    for label, statement in STATEMENTS:
        rendered = render(statement, CLUSTER)
        try:
            canonical = normalized(format_query(clickhouse, rendered))
        except Exception as exc:  # the parser's message is the useful part
            failures.append(f"{label}: {str(exc).splitlines()[0]}")
            continue
        original = normalized(format_query(clickhouse, statement))
        if DDL.match(statement) and f" ON CLUSTER {CLUSTER}" not in canonical:
            failures.append(f"{label}: no ON CLUSTER in {canonical[:120]}")
        stripped = canonical.replace(f" ON CLUSTER {CLUSTER}", "").replace(
            "ENGINE = Replicated", "ENGINE = "
        )
        if stripped != original:
            failures.append(f"{label}: rendering changed more than cluster and engine")
    assert failures == []


# The cases the migrations on disk don't (yet) exercise.


def test_materialized_view_to_a_table_gets_on_cluster_before_to_and_no_engine() -> None:
    statement = "CREATE MATERIALIZED VIEW IF NOT EXISTS mv TO target AS SELECT 1 AS x"
    assert render(statement, CLUSTER) == (
        "CREATE MATERIALIZED VIEW IF NOT EXISTS mv ON CLUSTER prod TO target AS SELECT 1 AS x"
    )


def test_materialized_view_with_an_inner_engine_gets_a_replicated_one() -> None:
    statement = "CREATE MATERIALIZED VIEW mv ENGINE = SummingMergeTree ORDER BY x AS SELECT 1 AS x"
    assert render(statement, CLUSTER) == (
        "CREATE MATERIALIZED VIEW mv ON CLUSTER prod ENGINE = ReplicatedSummingMergeTree "
        "ORDER BY x AS SELECT 1 AS x"
    )


def test_quoted_and_qualified_names_get_on_cluster_after_the_whole_name() -> None:
    statement = "CREATE TABLE `db`.`my table` (x UInt8) ENGINE = MergeTree ORDER BY x"
    assert render(statement, CLUSTER).startswith("CREATE TABLE `db`.`my table` ON CLUSTER prod (")


def test_alter_drop_truncate_take_on_cluster_after_the_name() -> None:
    assert render("ALTER TABLE t ADD COLUMN IF NOT EXISTS y UInt8", CLUSTER) == (
        "ALTER TABLE t ON CLUSTER prod ADD COLUMN IF NOT EXISTS y UInt8"
    )
    assert render("DROP TABLE IF EXISTS t SYNC", CLUSTER) == (
        "DROP TABLE IF EXISTS t ON CLUSTER prod SYNC"
    )
    assert render("TRUNCATE TABLE IF EXISTS t", CLUSTER) == (
        "TRUNCATE TABLE IF EXISTS t ON CLUSTER prod"
    )


def test_rename_takes_on_cluster_at_the_end() -> None:
    assert render("RENAME TABLE a TO b", CLUSTER) == "RENAME TABLE a TO b ON CLUSTER prod"


def test_engine_arguments_are_kept_verbatim() -> None:
    statement = (
        "CREATE TABLE t (v UInt64, d UInt8) ENGINE = ReplacingMergeTree(toUInt64(v), d) ORDER BY v"
    )
    assert "ENGINE = ReplicatedReplacingMergeTree(toUInt64(v), d) ORDER BY v" in render(
        statement, CLUSTER
    )


def test_inserts_run_unchanged_on_a_cluster() -> None:
    statement = "INSERT INTO t SELECT number FROM numbers(10)"
    assert render(statement, CLUSTER) == statement


def test_ddl_without_an_on_cluster_rule_is_refused() -> None:
    with pytest.raises(MigrationError, match="cannot render 'CREATE INDEX"):
        render("CREATE INDEX i ON t (x) TYPE minmax", CLUSTER)


def test_a_cluster_name_that_is_not_an_identifier_is_back_quoted() -> None:
    assert "ON CLUSTER `my-cluster` (" in render("CREATE TABLE t (x UInt8)", "my-cluster")
    with pytest.raises(MigrationError, match="cannot be quoted"):
        render("CREATE TABLE t (x UInt8)", "bad`name")


def test_quoted_cluster_name_parses(clickhouse: ClickHouse) -> None:
    rendered = render("CREATE TABLE t (x UInt8) ENGINE = MergeTree ORDER BY x", "my-cluster")
    assert "ON CLUSTER `my-cluster`" in format_query(clickhouse, rendered)


# The cluster itself: one shard, any number of replicas.


def test_cluster_shape_accepts_one_shard_with_replicas() -> None:
    assert cluster_shape_problem("prod", shards=1, hosts=3) is None


def test_cluster_shape_refuses_several_shards_and_unknown_clusters() -> None:
    several = cluster_shape_problem("prod", shards=2, hosts=4)
    assert several is not None
    assert "2 shards" in several
    assert "one shard" in several
    unknown = cluster_shape_problem("prod", shards=0, hosts=0)
    assert unknown is not None
    assert "not defined" in unknown
    assert "TA_CLICKHOUSE_CLUSTER" in unknown


def test_migrate_checks_the_cluster_before_any_ddl(settings: Settings) -> None:
    """chDB defines no clusters: migrate names the cluster and creates nothing."""
    ch = connect(settings.model_copy(update={"clickhouse_cluster": "prod"}))
    try:
        with pytest.raises(MigrationError, match="cluster 'prod' is not defined"):
            apply(ch)
        with pytest.raises(MigrationError, match="not defined"):
            check_cluster(ch)
        tables = ch.query_rows(
            "t", sql="SELECT count() FROM system.tables WHERE database = currentDatabase()"
        )
        assert tables[0][0] == 0
    finally:
        ch.close()


@pytest.fixture
def bare(settings: Settings) -> Iterator[ClickHouse]:
    ch = connect(settings)
    yield ch
    ch.close()


def test_status_is_read_only_so_readiness_probes_run_no_ddl(bare: ClickHouse) -> None:
    """/readyz calls status() every few seconds; on a cluster a CREATE ... ON CLUSTER per
    probe would flood the distributed DDL queue, so status never creates anything."""
    before = status(bare)
    assert before.current is None
    assert before.pending == [m.name for m in discover()]
    rows = bare.query_rows(
        "t", sql="SELECT count() FROM system.tables WHERE database = currentDatabase()"
    )
    assert rows[0][0] == 0
    apply(bare)
    assert status(bare).up_to_date
