"""The embedded engine: one process per data directory, with a clear message for the second."""

from __future__ import annotations

import os
import subprocess
import sys

from service.clickhouse import MAX_KEY_BYTES_PER_STATEMENT, ClickHouse, key_chunks, parse_target
from service.settings import Settings
from service.traces.summary import fetch_summaries


def test_a_second_process_gets_one_line_naming_the_directory(
    clickhouse: ClickHouse, settings: Settings
) -> None:
    path = parse_target(settings.clickhouse_url).embedded_path
    env = {**os.environ, "TA_CLICKHOUSE_URL": settings.clickhouse_url}
    result = subprocess.run(
        [sys.executable, "-m", "service", "migrate", "--status"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert str(path) in lines[0]
    assert "in use by another process" in lines[0]
    assert "Traceback" not in result.stderr


def test_server_urls_are_displayed_without_the_password() -> None:
    target = parse_target("https://analytics:s3cret@ch.internal:8443/traces")
    assert target.display == "https://ch.internal:8443/traces"
    assert "s3cret" not in target.display


def test_key_lists_are_cut_by_count_and_by_size() -> None:
    small = [("p", f"t{i}") for i in range(2500)]
    assert [len(c) for c in key_chunks(small)] == [1000, 1000, 500]
    big = [("p", "x" * 20_000) for _ in range(10)]
    chunks = list(key_chunks(big))
    assert all(sum(len(t) for _, t in c) <= MAX_KEY_BYTES_PER_STATEMENT for c in chunks)
    assert [k for c in chunks for k in c] == big


def test_summaries_of_more_traces_than_one_statement_binds(clickhouse: ClickHouse) -> None:
    keys = [("default", f"t{i:05d}") for i in range(2600)]
    clickhouse.command(
        "seed",
        sql="INSERT INTO observations (project_id, trace_id, id, type, start_time, ingested_at) "
        "SELECT 'default', concat('t', leftPad(toString(number), 5, '0')), 'o', 'span', "
        "now64(3), now64(6) FROM numbers(2600)",
    )
    summaries = fetch_summaries(clickhouse, keys)
    assert len(summaries) == 2600
    assert {s.observations for s in summaries.values()} == {1}
