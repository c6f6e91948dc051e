"""The embedded engine: one process per data directory, with a clear message for the second."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from service.clickhouse import ClickHouse, parse_target
from service.settings import Settings


@pytest.mark.embedded_only
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
