"""The command line: migrate and demo on the test's engine, one-line errors."""

from __future__ import annotations

import pytest

from service.cli import main


@pytest.fixture
def data_url(clickhouse_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("TA_CLICKHOUSE_URL", clickhouse_url)
    return clickhouse_url


def test_migrate_then_status_is_up_to_date(
    data_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["migrate", "--status"]) == 1
    assert "pending:" in capsys.readouterr().out
    assert main(["migrate"]) == 0
    assert main(["migrate", "--status"]) == 0
    assert "pending:" not in capsys.readouterr().out


def test_demo_writes_traces_through_the_ingest_path(
    data_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["migrate"]) == 0
    assert main(["demo", "--traces", "40"]) == 0
    assert "wrote 40 traces" in capsys.readouterr().out


@pytest.mark.embedded_only
def test_the_embedded_default_migrates_itself(
    data_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Only an embedded directory migrates on first use; a server must be migrated first."""
    assert main(["demo", "--traces", "5"]) == 0
    assert "wrote 5 traces" in capsys.readouterr().out


def test_a_bad_setting_exits_2_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TA_IDLE_SECONDS", "soon")
    assert main(["migrate", "--status"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("trace-analytics: TA_IDLE_SECONDS")
    assert "\n" not in err
