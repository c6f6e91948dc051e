"""CLI operations while `serve` holds the embedded directory, through real processes.

Every operation goes through the running serve's admin API and prints what it prints when
it runs in its own process; the same commands are then run with serve stopped and the
deterministic outputs compared line for line.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from service.server import ADDRESS_FILE
from tests.subprocesses import base_env, cli, copy_template, one_line, serve


def lines(text: str) -> list[str]:
    return text.strip().splitlines()


def test_every_operation_works_while_serve_runs_and_prints_the_same(
    tmp_path: Path, migrated_template: Path
) -> None:
    data = copy_template(migrated_template, tmp_path / "data")
    env = base_env(TA_CLICKHOUSE_URL=f"chdb://{data}", TA_ROLLUP_INTERVAL_SECONDS="3600")
    remote: dict[str, list[str]] = {}
    with serve(data, env) as running:
        # The README quick start, in its order: demo while serve runs, then read.
        demo = cli("demo", "--traces", "40", env=env)
        assert demo.returncode == 0, demo.stderr
        assert re.fullmatch(
            r"wrote 40 traces, \d+ observations to project 'default'", lines(demo.stdout)[0]
        )
        assert lines(demo.stdout)[1].startswith("added duration definitions: ")
        assert "\r" not in demo.stdout + demo.stderr
        with running.client() as client:
            assert client.get("/v1/traces/demo-7-000001").status_code == 200

        check = cli("check", env=env)
        assert check.returncode == 0, check.stderr
        assert re.fullmatch(r"concluded \d+ trace\(s\)", lines(check.stdout)[0])
        assert lines(check.stdout)[1] == (
            "TA_ANALYZE_URL is unset: conclusions recorded, not delivered"
        )

        rollup = cli("rollup", env=env)
        assert rollup.returncode == 0, rollup.stderr
        first, second = lines(rollup.stdout)
        assert re.match(r"rollup pass: \d+ dirty trace\(s\) since .*; watermark ", first)
        assert re.fullmatch(r"buckets still pending: \d+", second)

        backfill = cli("backfill", "rollups", "--batch-size", "500", env=env)
        assert backfill.returncode == 0, backfill.stderr
        out = lines(backfill.stdout)
        assert "runs in serve (pid" in out[0]
        assert re.search(r"rollups\.backfill\s+\*\s+done\s+(\d+)/\1", out[-1]), out
        job_id = out[-1].split()[0]
        assert "\r" not in backfill.stdout + backfill.stderr

        for args in (
            ("migrate", "--status"),
            ("migrate",),
            ("backfill", "--list"),
            ("backfill", "--resume", job_id),
            ("backfill", "durations", "--definition", "nope"),
            ("backfill", "--resume", "nope"),
        ):
            done = cli(*args, env=env)
            remote[" ".join(args)] = [str(done.returncode), *lines(done.stdout), done.stderr]
    assert not (data / ADDRESS_FILE).exists(), "serve removes its address file on SIGTERM"
    assert running.process.returncode == 0

    # The same commands, serve stopped: this process opens the directory itself.
    for command, seen in remote.items():
        done = cli(*command.split(), env=env)
        here = [str(done.returncode), *lines(done.stdout), done.stderr]
        assert here == seen, command
    assert remote["migrate --status"][:2] == ["0", f"database: chdb://{data}"]
    assert remote["migrate"][:2] == ["0", "applied 0 migration(s)"]
    assert remote["backfill --list"][0] == "0"
    assert any(job_id in line for line in remote["backfill --list"])
    assert remote["backfill durations --definition nope"][0] == "2"
    assert one_line(remote["backfill durations --definition nope"][-1]) == (
        "trace-analytics backfill: --definition: no project has a definition 'nope'"
    )
    assert one_line(remote["backfill --resume nope"][-1]) == (
        "trace-analytics backfill: --resume: no job 'nope'"
    )


@pytest.fixture
def keyed(tmp_path: Path, migrated_template: Path) -> dict[str, str]:
    data = copy_template(migrated_template, tmp_path / "data")
    return base_env(
        TA_CLICKHOUSE_URL=f"chdb://{data}",
        TA_API_KEYS="project-key-0001=acme,admin-key-0001=*",
        TA_HOST="127.0.0.1",
    )


def test_with_api_keys_the_cli_uses_the_admin_key_and_never_prints_it(
    keyed: dict[str, str],
) -> None:
    data = Path(keyed["TA_CLICKHOUSE_URL"].removeprefix("chdb://"))
    with serve(data, keyed) as running:
        with running.client(authorization="Bearer project-key-0001") as client:
            refused = client.post("/v1/admin/rollup")
            assert refused.status_code == 403
            assert refused.json()["error"]["code"] == "admin_only"

        ok = cli("migrate", "--status", env=keyed)
        assert ok.returncode == 0, ok.stderr

        project_only = {**keyed, "TA_API_KEYS": "project-key-0001=acme"}
        denied = cli("migrate", "--status", env=project_only)
        no_keys = {k: v for k, v in keyed.items() if k != "TA_API_KEYS"}
        no_keys["TA_HOST"] = "127.0.0.1"
        missing = cli("migrate", "--status", env=no_keys)
        wrong = cli("rollup", env={**keyed, "TA_ADMIN_KEY": "not-a-real-key-42"})
        project = cli("check", env={**keyed, "TA_ADMIN_KEY": "project-key-0001"})
    for done, hint in (
        (denied, "the CLI has no admin key: set TA_ADMIN_KEY"),
        (missing, "the CLI has no admin key: set TA_ADMIN_KEY"),
        (wrong, "refused the CLI's admin key: set TA_ADMIN_KEY"),
        (project, "needs an admin key, not a project key: set TA_ADMIN_KEY"),
    ):
        assert done.returncode == 2, done.stderr
        assert hint in one_line(done.stderr)
        for secret in ("project-key-0001", "admin-key-0001", "not-a-real-key-42"):
            assert secret not in done.stdout + done.stderr


def test_a_second_serve_names_the_first_and_a_serve_without_jobs_refuses_backfills(
    tmp_path: Path, migrated_template: Path
) -> None:
    data = copy_template(migrated_template, tmp_path / "data")
    env = base_env(TA_CLICKHOUSE_URL=f"chdb://{data}", TA_SCHEDULER_ENABLED="false")
    with serve(data, env) as running:
        second = cli("serve", env={**env, "TA_PORT": str(running.port)})
        other_port = cli("serve", env={**env, "TA_PORT": "0"})
        backfill = cli("backfill", "rollups", env=env)
    assert second.returncode == 2
    assert one_line(second.stderr) == (
        f"trace-analytics: {data} is already served by serve (pid {running.process.pid}) "
        f"at {running.url}"
    )
    assert other_port.returncode == 2
    assert f"held by serve (pid {running.process.pid}) at {running.url}" in one_line(
        other_port.stderr
    )
    assert backfill.returncode == 2
    assert "does not run jobs (TA_SCHEDULER_ENABLED=false)" in one_line(backfill.stderr)


def test_a_stale_address_file_is_not_trusted(tmp_path: Path, migrated_template: Path) -> None:
    """A busy directory whose address file names another pid is reported as busy, as before."""
    data = copy_template(migrated_template, tmp_path / "data")
    env = base_env(TA_CLICKHOUSE_URL=f"chdb://{data}")
    with serve(data, env) as running:
        (data / ADDRESS_FILE).write_text('{"pid": 1, "url": "http://127.0.0.1:9"}')
        done = cli("rollup", env=env)
        with httpx.Client(base_url=running.url) as client:
            assert client.get("/healthz").status_code == 200
    assert done.returncode == 2
    assert "is in use by another process" in one_line(done.stderr)


def test_migrate_through_serve_says_what_it_cannot_do(tmp_path: Path) -> None:
    """A newer CLI beside an older embedded serve: status shows the pending migration, and
    applying it is refused with what to do (serve applies migrations when it starts)."""
    from service.cli import _migrate_through
    from service.errors import DirectoryInUse, UsageError
    from service.migrations import discover
    from service.remote import RunningServe

    shipped = discover()
    busy = DirectoryInUse("busy", path=tmp_path / "data", pid=4242)
    with httpx.Client() as client:
        remote = RunningServe(busy, "http://127.0.0.1:9", None, client)
        remote.hello = {
            "database": f"chdb://{tmp_path / 'data'}",
            "applied": [{"name": m.name, "checksum": m.checksum} for m in shipped[:-1]],
        }
        assert _migrate_through(remote, status_only=True) == 1
        with pytest.raises(UsageError, match=r"cannot apply migrations while serve \(pid 4242\)"):
            _migrate_through(remote, status_only=False)
