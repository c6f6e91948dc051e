"""Admin endpoints: what the CLI sends to a running serve; admin keys only."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.testclient import TestClient

from service.clickhouse import parse_target
from service.context import PassLocks
from service.migrations import discover
from service.operations import CheckReport, RollupReport
from service.scheduler import ScheduledJob, build_scheduler
from service.settings import Settings
from tests.conftest import ingest_traces

ADMIN = {"authorization": "Bearer admin-key-0001"}
PROJECT = {"authorization": "Bearer project-key-0001"}
ENDPOINTS = [
    ("GET", "/v1/admin/schema"),
    ("POST", "/v1/admin/check"),
    ("POST", "/v1/admin/rollup"),
    ("POST", "/v1/jobs"),
    ("POST", "/v1/jobs/some-job/resume"),
]


@pytest.fixture
def keyed(make_app: Callable[..., Starlette]) -> Iterator[TestClient]:
    app = make_app(api_keys=SecretStr("project-key-0001=acme,admin-key-0001=*"))
    with TestClient(app) as client:
        yield client


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_admin_endpoints_refuse_project_keys_and_anonymous_callers(
    keyed: TestClient, method: str, path: str
) -> None:
    assert keyed.request(method, path).status_code == 401
    refused = keyed.request(method, path, headers=PROJECT, json={"kind": "rollups.backfill"})
    assert refused.status_code == 403
    assert refused.json()["error"] == {
        "code": "admin_only",
        "message": "this endpoint needs an admin key (key=* in TA_API_KEYS)",
    }


def test_schema_names_the_process_the_database_and_what_is_applied(
    keyed: TestClient, settings: Settings
) -> None:
    body = keyed.get("/v1/admin/schema", headers=ADMIN).json()
    shipped = discover()
    assert [row["name"] for row in body["applied"]] == [m.name for m in shipped]
    assert body["current"] == body["wanted"] == shipped[-1].name
    assert body["pending"] == body["changed"] == body["unknown"] == []
    assert body["database"] == parse_target(settings.clickhouse_url).display
    assert isinstance(body["pid"], int)
    assert body["jobs"] == {"run_here": False, "reason": "TA_SCHEDULER_ENABLED=false"}


def test_check_and_rollup_answer_the_reports_the_cli_prints(client: TestClient) -> None:
    ingest_traces(client, "t1", "t2")
    check = CheckReport.from_json(client.post("/v1/admin/check").json())
    assert check.lines() == [
        "concluded 0 trace(s)",
        "TA_ANALYZE_URL is unset: conclusions recorded, not delivered",
    ]
    rollup = RollupReport.from_json(client.post("/v1/admin/rollup").json())
    assert rollup.dirty_traces == 2
    assert rollup.lines()[0].startswith("rollup pass: 2 dirty trace(s) since the beginning")
    assert rollup.lines()[1] == f"buckets still pending: {rollup.pending_buckets}"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"kind": "durations.backfill", "definition": "nope"}, "definition: no project has"),
        (
            {"kind": "durations.backfill", "definition": "nope", "project_id": "acme"},
            "definition: project 'acme' has no definition 'nope'",
        ),
        ({"kind": "durations.backfill", "from": "2026-11-01T00:00:00Z"}, "from: only for"),
        ({"kind": "rollups.backfill", "definition": "x"}, "definition: only for durations"),
        ({"kind": "rollups.backfill", "batch_size": 0}, "batch_size: Input should be"),
        ({"kind": "rollups.backfill", "batch_size": 10_001}, "batch_size: rollups: at most"),
        (
            {
                "kind": "rollups.backfill",
                "from": "2026-11-02T00:00:00Z",
                "to": "2026-11-01T00:00:00Z",
            },
            "to: must be after from",
        ),
        ({"kind": "everything"}, "kind: Input should be"),
    ],
)
def test_a_bad_backfill_request_is_a_400_naming_the_field(
    client: TestClient, body: dict[str, object], message: str
) -> None:
    response = client.post("/v1/jobs", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalid_body"
    assert response.json()["error"]["message"].startswith(message)
    assert client.get("/v1/jobs").json()["data"] == []


def test_a_backfill_is_queued_and_resume_says_what_it_can(client: TestClient) -> None:
    created = client.post(
        "/v1/jobs", json={"kind": "rollups.backfill", "from": "2026-11-22T10:30:00"}
    )
    assert created.status_code == 201, created.text
    job = created.json()["job"]
    assert job["status"] == "queued"
    assert job["params"]["from"] == "2026-11-22T10:00:00.000Z"  # no offset means UTC
    resumed = client.post(f"/v1/jobs/{job['id']}/resume")
    assert resumed.status_code == 202
    assert resumed.json()["job"]["id"] == job["id"]
    assert client.post("/v1/jobs/nope/resume").status_code == 404


def test_the_openapi_document_describes_the_admin_routes(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    paths = document["paths"]
    for method, path in ENDPOINTS:
        path = path.replace("some-job", "{job_id}")
        assert paths[path][method.lower()]["summary"]
        assert "403" in paths[path][method.lower()]["responses"]
    body = paths["/v1/jobs"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/BackfillRequest"}
    fields = document["components"]["schemas"]["BackfillRequest"]["properties"]
    assert {"kind", "definition", "from", "to", "batch_size"} <= set(fields)


def test_a_scheduled_pass_is_skipped_while_the_same_pass_runs_on_request() -> None:
    locks = PassLocks()
    ran = threading.Event()
    scheduler = build_scheduler([ScheduledJob("p", ran.set, 3600)], locks=locks)
    [job] = scheduler.get_jobs()
    with locks["p"]:
        job.func()
    assert not ran.is_set()
    job.func()
    assert ran.is_set()
    assert locks["p"] is locks["p"]
