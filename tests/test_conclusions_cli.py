"""`trace-analytics check`: one detection pass and one delivery pass, counts printed, exit 0."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest
import respx

from service.auth import ADMIN_PRINCIPAL
from service.cli import main
from service.clickhouse import connect
from service.clock import ManualClock, VersionStamp
from service.ingest.decode import parse_batch
from service.ingest.writer import write_rows
from service.migrations import apply
from service.settings import Settings
from tests.conftest import observation

URL = "http://analyze.test/hook"


def write_old_traces(url: str, *trace_ids: str) -> None:
    """Traces whose last activity was an hour ago, written through the ingest path."""
    ch = connect(Settings(clickhouse_url=url))
    try:
        apply(ch)
        body = {"observations": [observation(f"{t}-o", t) for t in trace_ids]}
        stamp = VersionStamp(ManualClock(datetime.now(UTC) - timedelta(hours=1)))
        rows = parse_batch(orjson.dumps(body)).resolve(
            lambda p, f: ADMIN_PRINCIPAL.write_project(p, None, f)
        )
        write_rows(ch, rows, stamp)
    finally:
        ch.close()


def test_check_concludes_delivers_and_prints_counts(
    clickhouse_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = clickhouse_url
    write_old_traces(url, "t1", "t2")
    monkeypatch.setenv("TA_CLICKHOUSE_URL", url)
    monkeypatch.setenv("TA_ANALYZE_URL", URL)
    with respx.mock() as mock:
        route = mock.post(URL).respond(200)
        assert main(["check"]) == 0
        assert main(["check"]) == 0
    assert route.call_count == 2
    out = capsys.readouterr().out.splitlines()
    assert out[:2] == [
        "concluded 2 trace(s)",
        "delivered 2, retrying 0, dead 0; open now: 0 pending, 0 dead",
    ]
    assert out[2] == "concluded 0 trace(s)"


def test_check_without_analyze_url_only_records(
    clickhouse_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = clickhouse_url
    write_old_traces(url, "t1")
    monkeypatch.setenv("TA_CLICKHOUSE_URL", url)
    monkeypatch.delenv("TA_ANALYZE_URL", raising=False)
    assert main(["check"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "concluded 1 trace(s)",
        "TA_ANALYZE_URL is unset: conclusions recorded, not delivered",
    ]
