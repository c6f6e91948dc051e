"""API keys: project isolation, admin keys, 401s, and keys never reaching the logs."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from service.api.app import api_routes
from service.auth import KeyRing, Principal
from service.errors import ForbiddenProject, Unauthorized
from tests.conftest import observation, trace

KEYS = "acme-key-123=acme,globex-key-456=globex,admin-key-789=*"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def secured(make_app: Callable[..., Starlette]) -> Iterator[TestClient]:
    from pydantic import SecretStr

    with TestClient(make_app(api_keys=SecretStr(KEYS))) as client:
        yield client


def ingest_for(client: TestClient, key: str, trace_id: str) -> int:
    body = {"traces": [trace(trace_id)], "observations": [observation(f"{trace_id}-o", trace_id)]}
    return client.post("/v1/ingest", json=body, headers=bearer(key)).status_code


def test_v1_calls_need_a_key(secured: TestClient) -> None:
    response = secured.get("/v1/traces/t1")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert secured.get("/v1/traces/t1", headers=bearer("wrong")).status_code == 401
    assert secured.get("/healthz").status_code == 200


def test_a_project_key_sees_only_its_project(secured: TestClient) -> None:
    assert ingest_for(secured, "acme-key-123", "acme-trace") == 202
    assert ingest_for(secured, "globex-key-456", "globex-trace") == 202
    assert secured.get("/v1/traces/acme-trace", headers=bearer("acme-key-123")).status_code == 200
    other = secured.get("/v1/traces/acme-trace", headers=bearer("globex-key-456"))
    assert other.status_code == 404
    # ?project_id= cannot widen a project key's scope: naming another project is a 403.
    sneaky = secured.get("/v1/traces/acme-trace?project_id=acme", headers=bearer("globex-key-456"))
    assert sneaky.status_code == 403
    assert (
        secured.delete("/v1/traces/acme-trace", headers=bearer("globex-key-456")).status_code == 404
    )
    assert secured.get("/v1/traces/acme-trace", headers=bearer("acme-key-123")).status_code == 200


def test_a_project_key_cannot_write_another_project(secured: TestClient) -> None:
    body = {"observations": [observation(project_id="globex")]}
    response = secured.post("/v1/ingest", json=body, headers=bearer("acme-key-123"))
    assert response.status_code == 403
    assert response.json()["error"]["message"].startswith("observations[0].project_id")


def test_an_admin_key_reads_any_project_by_parameter(secured: TestClient) -> None:
    ingest_for(secured, "acme-key-123", "acme-trace")
    admin = bearer("admin-key-789")
    assert secured.get("/v1/traces/acme-trace?project_id=acme", headers=admin).status_code == 200
    assert secured.get("/v1/traces/acme-trace", headers=admin).status_code == 404


def test_without_keys_records_and_reads_default_to_the_default_project(
    client: TestClient,
) -> None:
    client.post("/v1/ingest", json={"observations": [observation()]})
    client.post("/v1/ingest?project_id=p2", json={"observations": [observation("o9", "t9")]})
    assert client.get("/v1/traces/t1").json()["project_id"] == "default"
    assert client.get("/v1/traces/t9").status_code == 404
    assert client.get("/v1/traces/t9?project_id=p2").status_code == 200


def test_keys_never_reach_the_logs(secured: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        ingest_for(secured, "acme-key-123", "t1")
        secured.get("/v1/traces/t1", headers=bearer("globex-key-456"))
        secured.get("/v1/traces/t1", headers=bearer("not-a-key-000"))
    text = caplog.text
    assert "unknown API key" in text  # the rejection was logged ...
    for secret in ("acme-key-123", "globex-key-456", "admin-key-789", "not-a-key-000"):
        assert secret not in text  # ... without the key itself


def test_keyring_maps_keys_to_principals() -> None:
    ring = KeyRing({"k1": "acme", "k0": "*"})
    assert ring.principal_for("Bearer k1") == Principal(project="acme")
    assert ring.principal_for("bearer k0").is_admin
    with pytest.raises(Unauthorized):
        ring.principal_for("Basic k1")
    assert KeyRing({}).principal_for(None).is_admin


# Authentication comes first; 405s say what is allowed ---------------------------------------


def v1_operations() -> list[tuple[str, str]]:
    """Every declared /v1 operation as (method, concrete path)."""
    out = []
    for route in api_routes():
        for method, spec in route.endpoints.items():
            if spec.auth:
                out.append((method, spec.path.replace("{", "").replace("}", "")))
    return out


def test_every_v1_operation_is_declared_with_auth() -> None:
    operations = v1_operations()
    assert len(operations) > 15
    paths = {path for _, path in operations}
    # /v1, and the Langfuse SDK's OTLP path (the same handler as POST /v1/traces).
    assert all(path.startswith(("/v1/", "/api/public/otel/v1/")) for path in paths)


@pytest.mark.parametrize(("method", "path"), v1_operations())
def test_without_a_valid_key_every_v1_call_is_401_whatever_its_parameters(
    secured: TestClient, method: str, path: str
) -> None:
    hostile = {"limit": "lots", "bogus": "1", "from": "yesterday", "project_id": "globex"}
    for headers in ({}, bearer("not-a-key"), {"Authorization": "Basic abc"}):
        response = secured.request(
            method, path, params=hostile, content=b"{not json", headers=headers
        )
        assert response.status_code == 401, (method, path, response.text)
        assert response.json()["error"]["code"] == "unauthorized"


def test_a_wrong_method_is_405_listing_every_method_of_the_path(secured: TestClient) -> None:
    response = secured.post("/v1/traces/t1")
    assert response.status_code == 405
    # Both operations of the path are listed, not only the first one declared.
    assert response.headers["allow"] == "DELETE, GET, HEAD"
    assert response.json()["error"]["code"] == "method_not_allowed"
    for route in api_routes():
        path = route.path.replace("{", "").replace("}", "")
        wrong = secured.request("PATCH", path)
        assert wrong.status_code == 405, path
        allowed = set(wrong.headers["allow"].split(", "))
        assert allowed == {*route.endpoints, *({"HEAD"} if "GET" in route.endpoints else ())}


# ?project_id= with a project key -------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/traces/acme-trace"),
        ("DELETE", "/v1/traces/acme-trace"),
        ("GET", "/v1/traces/acme-trace/durations"),
        ("GET", "/v1/conclusions"),
        ("POST", "/v1/conclusions/redrive"),
        ("GET", "/v1/usage"),
        ("GET", "/v1/latency"),
        ("GET", "/v1/duration-definitions"),
        ("GET", "/v1/jobs"),
        ("POST", "/v1/ingest"),
    ],
)
def test_a_project_key_naming_another_project_is_403(
    secured: TestClient, method: str, path: str
) -> None:
    ingest_for(secured, "acme-key-123", "acme-trace")
    acme = bearer("acme-key-123")
    body = {"traces": [trace("t9")]} if path == "/v1/ingest" else None
    other = secured.request(method, path, params={"project_id": "globex"}, json=body, headers=acme)
    assert other.status_code == 403, other.text
    error = other.json()["error"]
    assert error["code"] == "forbidden_project"
    assert error["message"].startswith("project_id:")
    own = secured.request(method, path, params={"project_id": "acme"}, json=body, headers=acme)
    assert own.status_code < 300, own.text


def test_ingest_with_another_project_in_the_query_writes_nothing(secured: TestClient) -> None:
    body = {"traces": [trace("t9")]}
    response = secured.post(
        "/v1/ingest?project_id=globex", json=body, headers=bearer("acme-key-123")
    )
    assert response.status_code == 403
    admin = bearer("admin-key-789")
    for project in ("acme", "globex"):
        found = secured.get(f"/v1/traces/t9?project_id={project}", headers=admin)
        assert found.status_code == 404


def test_principal_refuses_another_project_and_accepts_its_own() -> None:
    acme = Principal(project="acme")
    assert acme.read_project(None) == "acme"
    assert acme.read_project("acme") == "acme"
    with pytest.raises(ForbiddenProject, match="project_id"):
        acme.read_project("globex")
    assert Principal(project=None).read_project("globex") == "globex"
