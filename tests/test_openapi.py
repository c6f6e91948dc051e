"""The OpenAPI document describes every route the app serves."""

from __future__ import annotations

import inspect

import pytest
from starlette.routing import Route
from starlette.testclient import TestClient

from service.api.openapi import build_document


def test_every_route_is_documented_by_its_endpoints_docstring(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    assert document["openapi"].startswith("3.")
    app = client.app
    routes = [r for r in app.routes if isinstance(r, Route)]  # type: ignore[attr-defined]
    assert len(routes) > 10
    for route in routes:
        docstring = inspect.getdoc(route.endpoint)
        assert docstring, f"{route.path} has no docstring"
        for method in (route.methods or set()) - {"HEAD"}:
            operation = document["paths"][route.path][method.lower()]
            assert operation["summary"] == docstring.splitlines()[0]
            assert operation["summary"] != route.path


def test_an_undocumented_endpoint_is_refused() -> None:
    def bare(request: object) -> None:
        pass

    with pytest.raises(ValueError, match="GET /bare: the endpoint needs a docstring"):
        build_document([Route("/bare", bare, methods=["GET"])])


def test_ingest_body_schema_comes_from_the_model(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    body = document["paths"]["/v1/ingest"]["post"]["requestBody"]
    schema = body["content"]["application/json"]["schema"]
    assert set(schema["properties"]) == {"traces", "observations"}


def test_metrics_and_health_endpoints(client: TestClient) -> None:
    client.get("/healthz")
    client.get("/v1/traces/missing")
    text = client.get("/metrics").text
    assert 'ta_http_requests_total{method="GET",route="/healthz",status="200"}' in text
    assert 'route="/v1/traces/{trace_id}",status="404"' in text
    assert "ta_clickhouse_query_duration_seconds_bucket" in text
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready"
    assert ready["checks"]["clickhouse"] == "ok"
