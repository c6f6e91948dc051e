"""The OpenAPI document: valid, generated from the declarations, and true of real responses."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2
import jsonschema
import pytest
from openapi_spec_validator import validate
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.testclient import TestClient

from service.api.app import api_routes
from service.api.endpoint import ApiRoute, endpoint
from service.api.openapi import api_table, build_document, openapi_path
from service.api.params import NoParams
from service.clickhouse import ClickHouse
from service.clock import ManualClock
from service.rollups import run_rollup_pass
from tests.conftest import IDLE, detect, ingest_traces, observation, trace
from tests.otlp_builders import ROOT, protobuf_body, span

README = Path(__file__).resolve().parent.parent / "README.md"
# The one time shape the service writes (service.times.format_time).
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return build_document(api_routes())


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            yield path, method.upper(), operation


# The document itself -----------------------------------------------------------------------


def test_the_document_is_valid_openapi_3_1(client: TestClient) -> None:
    served = client.get("/openapi.json").json()
    assert served["openapi"] == "3.1.0"
    validate(served)


def test_every_ref_resolves_into_components(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    refs: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "$ref" in node:
                refs.append(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(document)
    assert refs
    for ref in refs:
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.rsplit("/", 1)[1] in schemas, ref
    assert "$defs" not in str(document)


def test_every_route_is_declared_and_documented(document: dict[str, Any]) -> None:
    routes = api_routes()
    assert all(isinstance(route, ApiRoute) for route in routes)
    declared = {(openapi_path(r.path), method) for r in routes for method in r.endpoints}
    assert declared == {(path, method) for path, method, _ in operations(document)}
    assert len(declared) > 15
    for path, method, operation in operations(document):
        assert operation["summary"], (method, path)
        assert any(200 <= int(s) < 300 for s in operation["responses"]), (method, path)


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("POST", "/v1/ingest", "202"),
        ("POST", "/v1/duration-definitions", "201"),
        ("PUT", "/v1/duration-definitions/{name}", "200"),
        ("GET", "/v1/traces/{trace_id}", "200"),
    ],
)
def test_success_statuses_are_the_real_ones(
    document: dict[str, Any], method: str, path: str, status: str
) -> None:
    responses = document["paths"][path][method.lower()]["responses"]
    assert [s for s in responses if s.startswith("2")] == [status]
    assert "$ref" in responses[status]["content"]["application/json"]["schema"]


def test_get_operations_declare_their_query_parameters(document: dict[str, Any]) -> None:
    def names(path: str) -> list[str]:
        parameters = document["paths"][path]["get"].get("parameters", [])
        return [p["name"] for p in parameters if p["in"] == "query"]

    assert names("/v1/usage") == ["project_id", "from", "to", "granularity", "group_by", "source"]
    assert names("/v1/latency")[-1] == "level"
    assert names("/v1/conclusions") == ["project_id", "since", "status", "limit", "cursor"]
    assert names("/v1/jobs") == ["project_id", "status", "limit"]
    limit = next(
        p for p in document["paths"]["/v1/conclusions"]["get"]["parameters"] if p["name"] == "limit"
    )
    assert limit["schema"] == {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}
    group_by = next(
        p for p in document["paths"]["/v1/usage"]["get"]["parameters"] if p["name"] == "group_by"
    )
    assert (group_by["style"], group_by["explode"]) == ("form", False)
    assert "environment" in group_by["schema"]["items"]["enum"]


def test_error_statuses_follow_the_declaration(document: dict[str, Any]) -> None:
    def errors(path: str, method: str) -> list[str]:
        return [s for s in document["paths"][path][method]["responses"] if s >= "400"]

    assert errors("/v1/ingest", "post") == ["400", "401", "403", "413", "415", "503"]
    assert errors("/v1/traces/{trace_id}", "get") == ["400", "401", "403", "404"]
    assert "409" in errors("/v1/duration-definitions", "post")
    assert errors("/healthz", "get") == []
    bad = document["paths"]["/v1/usage"]["get"]["responses"]["400"]
    assert "invalid_parameter" in bad["description"]


def test_an_undeclared_route_is_refused() -> None:
    def bare(request: Request) -> Response:
        """A route someone forgot to declare."""
        return Response()

    with pytest.raises(ValueError, match="/bare: undeclared route"):
        build_document([Route("/bare", bare, methods=["GET"])])


def test_a_handler_without_docstring_is_refused_at_declaration() -> None:
    def bare(request: Request, query: NoParams) -> Response:
        return Response()

    with pytest.raises(ValueError, match="GET /bare: the handler needs a docstring"):
        endpoint("GET", "/bare", bare, query=NoParams, responses={200: dict})


def test_the_readme_endpoint_table_is_the_documents(document: dict[str, Any]) -> None:
    text = README.read_text(encoding="utf-8")
    start, end = "<!-- api-table:start -->\n", "<!-- api-table:end -->"
    assert start in text
    assert end in text
    table = text.split(start, 1)[1].split(end, 1)[0]
    assert table == api_table(document), "regenerate with: python -m service.api"


# Real responses against the document ---------------------------------------------------------


def strict(document: dict[str, Any]) -> dict[str, Any]:
    """The components with `additionalProperties: false` on every declared object, so an
    undocumented field in a response fails the check (the served document stays open)."""
    components = copy.deepcopy(document["components"])

    def close(node: Any) -> None:
        if isinstance(node, dict):
            if "properties" in node and "additionalProperties" not in node:
                node["additionalProperties"] = False
            for value in node.values():
                close(value)
        elif isinstance(node, list):
            for value in node:
                close(value)

    close(components)
    return components


class Checker:
    """Validates responses against the document and records which operations answered 2xx."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.components = strict(document)
        self.formats = jsonschema.FormatChecker(formats=())
        self.formats.checks("date-time")(
            lambda value: not isinstance(value, str) or bool(TIME.match(value))
        )
        self.covered: set[tuple[str, str]] = set()
        self.patterns = [
            (re.compile("^" + re.sub(r"\\{\w+\\}", "[^/]+", re.escape(path)) + "$"), path)
            for path in document["paths"]
        ]

    def template(self, url: str) -> str:
        path = httpx2.URL(url).path
        matches = [t for pattern, t in self.patterns if pattern.match(path)]
        assert matches, path
        return min(matches, key=lambda t: t.count("{"))  # literal segments win

    def __call__(self, response: httpx2.Response) -> httpx2.Response:
        method = response.request.method
        path = self.template(str(response.request.url))
        declared = self.document["paths"][path][method.lower()]["responses"]
        status = str(response.status_code)
        assert status in declared, f"{method} {path} answered an undocumented {status}"
        content = declared[status]["content"]
        media = response.headers["content-type"].split(";")[0]
        assert media in content, (method, path, media)
        if media == "application/json":
            schema = {"allOf": [content[media]["schema"]], "components": self.components}
            jsonschema.Draft202012Validator(schema, format_checker=self.formats).validate(
                response.json()
            )
        if response.status_code < 300:
            self.covered.add((method, path))
        return response


def test_every_operation_answers_as_documented_with_data(
    make_app: Callable[..., Starlette],
    clickhouse: ClickHouse,
    clock: ManualClock,
    document: dict[str, Any],
) -> None:
    app = make_app(idle_seconds=IDLE, analyze_url="http://127.0.0.1:9/hook")
    check = Checker(document)
    definition = {
        "name": "total",
        "start": {"anchor": "trace_start"},
        "end": {"anchor": "trace_end"},
    }
    window = {"from": "2026-11-22T00:00:00Z", "to": "2026-11-23T00:00:00Z"}
    with TestClient(app) as client:
        check(client.get("/healthz"))
        check(client.get("/readyz"))
        check(client.get("/metrics"))
        check(client.get("/openapi.json"))
        check(client.post("/v1/duration-definitions", json=definition))
        ingest_traces(client, "t1", "t2")
        check(
            client.post(
                "/v1/ingest",
                json={
                    "traces": [trace("t3", environment="prod")],
                    "observations": [observation("o3", "t3", completion_start_time=None)],
                },
            )
        )
        clock.advance(IDLE + 1)  # past every record's stamp
        assert detect(app)
        run_rollup_pass(clickhouse, clock)
        check(client.get("/v1/traces/t1"))
        check(client.get("/v1/traces/t1/durations"))
        check(client.get("/v1/conclusions", params={"limit": 1}))
        check(client.get("/v1/conclusions", params={"status": "pending"}))
        check(client.post("/v1/conclusions/redrive", json={"trace_id": "t1"}))
        for source in ("rollup", "raw"):
            check(
                client.get(
                    "/v1/usage",
                    params={**window, "group_by": "model,environment", "source": source},
                )
            )
            check(client.get("/v1/latency", params={**window, "source": source}))
        check(client.get("/v1/latency", params={**window, "level": "trace", "group_by": "name"}))
        check(client.get("/v1/duration-definitions"))
        check(client.get("/v1/duration-definitions/total"))
        check(
            client.get(
                "/v1/duration-definitions/total/stats", params={**window, "granularity": "day"}
            )
        )
        saved = check(
            client.put("/v1/duration-definitions/total", json={**definition, "name": None})
        )
        job_id = saved.json()["job"]["id"]
        check(client.get("/v1/jobs", params={"status": "queued,running"}))
        check(client.get(f"/v1/jobs/{job_id}"))
        queued = check(client.post("/v1/jobs", json={"kind": "rollups.backfill"}))
        check(client.post(f"/v1/jobs/{queued.json()['job']['id']}/resume"))
        check(client.get("/v1/admin/schema"))
        check(client.post("/v1/admin/check"))
        check(client.post("/v1/admin/rollup"))
        spans = protobuf_body([span(ROOT, name="agent run")])
        for path in ("/v1/traces", "/api/public/otel/v1/traces"):
            check(
                client.post(path, content=spans, headers={"content-type": "application/x-protobuf"})
            )
        check(client.delete("/v1/duration-definitions/total"))
        check(client.delete("/v1/traces/t2"))
        # Errors have the documented shape too.
        check(client.get("/v1/traces/missing"))
        check(client.get("/v1/usage", params={"granularity": "week"}))
        check(client.post("/v1/duration-definitions", json={"name": "x"}))
    assert check.covered == {(method, path) for path, method, _ in operations(document)}


def test_the_response_check_catches_an_undocumented_field(document: dict[str, Any]) -> None:
    """The check above can fail: a field the document does not declare is refused."""
    check = Checker(document)
    request = httpx2.Request("GET", "http://testserver/v1/jobs")
    ok = httpx2.Response(200, json={"data": []}, request=request)
    check(ok)
    extra = httpx2.Response(200, json={"data": [], "surprise": 1}, request=request)
    with pytest.raises(jsonschema.ValidationError, match="surprise"):
        check(extra)
    undocumented = httpx2.Response(418, json={}, request=request)
    with pytest.raises(AssertionError, match="undocumented 418"):
        check(undocumented)


def test_an_empty_parameter_is_the_same_as_none_as_documented(
    client: TestClient, document: dict[str, Any]
) -> None:
    """Found by schemathesis: `?since=` was accepted while the document called it invalid."""
    for parameter in document["paths"]["/v1/conclusions"]["get"]["parameters"]:
        assert parameter["allowEmptyValue"] is True, parameter["name"]
    empty = client.get("/v1/conclusions", params={"since": "", "limit": "", "status": ""})
    assert empty.status_code == 200
    assert empty.json() == client.get("/v1/conclusions").json()


def test_metrics_and_health_endpoints(client: TestClient) -> None:
    client.get("/healthz")
    client.get("/v1/traces/missing")
    client.post("/v1/traces/missing")  # 405: still counted under its route template
    text = client.get("/metrics").text
    assert 'ta_http_requests_total{method="GET",route="/healthz",status="200"}' in text
    assert 'route="/v1/traces/{trace_id}",status="404"' in text
    assert 'method="POST",route="/v1/traces/{trace_id}",status="405"' in text
    assert "ta_clickhouse_query_duration_seconds_bucket" in text
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready"
    assert ready["checks"]["clickhouse"] == "ok"
