"""API keys: project isolation, admin keys, 401s, and keys never reaching the logs."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from service.auth import KeyRing, Principal
from service.errors import Unauthorized
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
    # ?project_id= cannot widen a project key's scope.
    sneaky = secured.get("/v1/traces/acme-trace?project_id=acme", headers=bearer("globex-key-456"))
    assert sneaky.status_code == 404
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
