"""Start-up and command-line failures are one line and exit 2, through real processes."""

from __future__ import annotations

import socket
import tomllib
from pathlib import Path

import pytest

import service
from service.clickhouse import describe_error
from tests.subprocesses import base_env, cli, one_line

ROOT = Path(__file__).resolve().parent.parent


def test_a_port_in_use_is_one_line_before_any_work(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = cli("serve", env=base_env(TA_CLICKHOUSE_URL=f"chdb://{data}", TA_PORT=str(port)))
    assert done.returncode == 2
    assert one_line(done.stderr) == (
        f"trace-analytics: cannot listen on 127.0.0.1:{port}: address already in use "
        "(another process listens there; stop it or set TA_PORT)"
    )
    assert not data.exists(), "nothing was opened, migrated or scheduled"


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("command", ["serve", "migrate", "check"])
def test_an_unreachable_clickhouse_is_one_short_line(command: str) -> None:
    port = closed_port()
    url = f"http://user:hunter2-secret@127.0.0.1:{port}/traces"
    done = cli(command, env=base_env(TA_CLICKHOUSE_URL=url, TA_LOG_LEVEL="INFO"))
    assert done.returncode == 2
    assert one_line(done.stderr) == (
        f"trace-analytics: could not reach ClickHouse at http://127.0.0.1:{port}/traces: "
        "connection refused"
    )
    assert "hunter2" not in done.stdout + done.stderr


def test_an_unknown_clickhouse_host_names_the_cause() -> None:
    url = "http://no-such-host.invalid:8123/traces"
    done = cli("migrate", "--status", env=base_env(TA_CLICKHOUSE_URL=url))
    assert done.returncode == 2
    line = one_line(done.stderr)
    assert line.startswith(
        "trace-analytics: could not reach ClickHouse at http://no-such-host.invalid:8123/traces: "
        "host name not found"
    )


def test_describe_error_finds_the_root_of_a_wrapped_error() -> None:
    outer = RuntimeError("HTTPConnectionPool(host='x'): Max retries exceeded")
    outer.__cause__ = ConnectionRefusedError(111, "Connection refused")
    assert describe_error(outer) == "connection refused"
    assert describe_error(RuntimeError("HTTP driver received HTTP status 404 (for url x)")) == (
        "HTTP 404 (is that a ClickHouse HTTP endpoint?)"
    )
    assert describe_error(
        RuntimeError("Code: 516. DB::Exception: default: Authentication failed. (AUTH)")
    ) == ("default: Authentication failed (code 516)")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["demo", "--traces", "-5"], "argument --traces: must be between 1 and"),
        (["demo", "--traces", "0"], "argument --traces: must be between 1 and"),
        (["backfill", "durations", "--batch-size", "0"], "argument --batch-size: must be"),
        (["backfill", "rollups", "--batch-size", "0"], "argument --batch-size: must"),
        (["backfill", "--pause", "-1", "rollups"], "argument --pause: must be between 0"),
        (["backfill", "rollups", "--pause", "x"], "argument --pause: 'x' is not a number"),
        (["backfill", "rollups", "--from", "yesterday"], "--from: 'yesterday' is not an RFC"),
        (
            ["backfill", "rollups", "--from", "2026-11-02T00:00:00Z", "--to", "2026-11-01"],
            "--to: must be after from",
        ),
        (["backfill"], "name a backfill: durations, rollups, --resume JOB_ID or --list"),
        (["rollup", "--frobnicate"], "unrecognized arguments: --frobnicate"),
    ],
)
def test_a_bad_command_line_is_one_line_before_any_work(
    tmp_path: Path, args: list[str], message: str
) -> None:
    data = tmp_path / "data"
    done = cli(*args, env=base_env(TA_CLICKHOUSE_URL=f"chdb://{data}"))
    assert done.returncode == 2
    assert message in one_line(done.stderr)
    assert not data.exists()


def test_an_unknown_definition_is_a_usage_error_not_a_pass_over_every_trace(
    tmp_path: Path, migrated_template: Path
) -> None:
    from tests.subprocesses import copy_template

    data = copy_template(migrated_template, tmp_path / "data")
    env = base_env(TA_CLICKHOUSE_URL=f"chdb://{data}")
    done = cli("backfill", "durations", "--definition", "nope", "--project", "acme", env=env)
    assert done.returncode == 2
    assert one_line(done.stderr) == (
        "trace-analytics backfill: --definition: project 'acme' has no definition 'nope'"
    )
    listed = cli("backfill", "--list", env=env)
    assert listed.returncode == 0
    assert listed.stdout == "", "no job was created"


def test_a_repeated_api_key_is_one_line_that_does_not_print_the_key() -> None:
    env = base_env(TA_API_KEYS="repeated-secret-key=acme,repeated-secret-key=globex")
    done = cli("migrate", "--status", env=env)
    assert done.returncode == 2
    assert one_line(done.stderr) == (
        "trace-analytics: TA_API_KEYS: entry 2 repeats the key of entry 1; every key must be unique"
    )
    assert "repeated-secret-key" not in done.stdout + done.stderr


def test_version() -> None:
    done = cli("--version", env=base_env())
    assert done.returncode == 0
    assert done.stdout.strip() == f"trace-analytics {service.__version__}"


# The embedded engine is an extra.


def test_the_embedded_engine_is_an_extra_the_tests_and_readme_install() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    core = " ".join(project["dependencies"])
    for heavy in ("chdb", "pandas", "pyarrow"):
        assert heavy not in core
    extras = project["optional-dependencies"]
    assert any(d.startswith("chdb") for d in extras["embedded"])
    assert "trace-analytics[embedded]" in extras["test"]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first_command = readme[readme.index("```bash") :].splitlines()[1]
    assert 'pip install ".[embedded]"' in first_command


@pytest.fixture
def without_chdb(tmp_path: Path) -> dict[str, str]:
    """An environment in which `import chdb` fails, as in an install without the extra."""
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text("import sys\nsys.modules['chdb'] = None\n")
    return base_env(PYTHONPATH=str(shim))


def test_without_the_extra_a_chdb_url_is_one_line_naming_it(
    tmp_path: Path, without_chdb: dict[str, str]
) -> None:
    data = tmp_path / "data"
    for command in (["serve"], ["migrate", "--status"]):
        done = cli(*command, env={**without_chdb, "TA_CLICKHOUSE_URL": f"chdb://{data}"})
        assert done.returncode == 2
        assert one_line(done.stderr) == (
            f"trace-analytics: chdb://{data} needs the embedded engine, which is not "
            "installed: pip install 'trace-analytics[embedded]' (or set TA_CLICKHOUSE_URL "
            "to a server)"
        )
    assert not data.exists()


def test_the_server_path_imports_no_embedded_engine(without_chdb: dict[str, str]) -> None:
    import subprocess
    import sys

    probe = (
        "import sys, service.cli, service.api, service.server, service.remote; "
        "import service.scheduler, service.jobs.console, service.startup; "
        "heavy = {m.split('.')[0] for m in sys.modules} & {'pandas', 'pyarrow', 'numpy'}; "
        "assert not heavy, heavy"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], env=without_chdb, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
