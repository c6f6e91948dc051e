"""POST /v1/traces (OTLP/HTTP): encodings, responses, partial success, failures, auth, overload."""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.testclient import TestClient

from service.api import app_context
from service.clickhouse import ClickHouse
from service.ingest.decode import parse_batch
from tests.conftest import detect, observation, trace
from tests.otlp_builders import JSON, PROTOBUF, ROOT, TRACE, json_request, protobuf_body, span

CHAT = "a1a1a1a1a1a1a1a1"
TOOL = "b2b2b2b2b2b2b2b2"
OBSERVATION_COLUMNS = (
    "project_id, trace_id, id, parent_id, type, name, start_time, end_time, "
    "completion_start_time, model, provider, input_tokens, output_tokens, cost, status, metadata"
)
TRACE_COLUMNS = "project_id, id, name, timestamp, user_id, session_id, environment, tags, metadata"


def observations(ch: ClickHouse) -> list[tuple[Any, ...]]:
    return ch.query_rows(
        "t", sql=f"SELECT {OBSERVATION_COLUMNS} FROM observations FINAL ORDER BY start_time, id"
    )


def traces(ch: ClickHouse) -> list[tuple[Any, ...]]:
    return ch.query_rows(
        "t", sql=f"SELECT {TRACE_COLUMNS} FROM traces FINAL ORDER BY project_id, id"
    )


def at(ms: int) -> datetime:
    return datetime(2026, 11, 22, 10, 0, tzinfo=UTC) + timedelta(milliseconds=ms)


def agent_spans() -> list[dict[str, Any]]:
    """A root agent span, a chat generation and a failed tool call (GenAI conventions)."""
    return [
        span(
            ROOT,
            name="agent run",
            start=0,
            end=3000,
            gen_ai__operation__name="invoke_agent",
            user__id="u-7",
            session__id="s-1",
        ),
        span(
            CHAT,
            ROOT,
            name="chat gpt-4o",
            start=100,
            end=1900,
            gen_ai__operation__name="chat",
            gen_ai__provider__name="openai",
            gen_ai__request__model="gpt-4o",
            gen_ai__response__model="gpt-4o-2024-08-06",
            gen_ai__usage__input_tokens=120,
            gen_ai__usage__output_tokens=30,
            gen_ai__usage__cost=0.0042,
            gen_ai__response__time_to_first_chunk=0.25,
            gen_ai__request__temperature=0.2,
            gen_ai__input__messages='[{"role": "user", "content": "hello"}]',
            gen_ai__output__messages='[{"role": "assistant", "content": "hi"}]',
        ),
        span(
            TOOL,
            ROOT,
            name="execute_tool get_weather",
            start=2000,
            end=2500,
            error=True,
            gen_ai__operation__name="execute_tool",
            gen_ai__tool__name="get_weather",
        ),
    ]


EXPECTED_OBSERVATIONS = [
    (
        "default",
        TRACE,
        ROOT,
        "",
        "agent",
        "agent run",
        at(0),
        at(3000),
        None,
        "",
        "",
        0,
        0,
        0.0,
        "ok",
        {
            "service.name": "chat-app",
            "otel.scope.name": "tests",
            "gen_ai.operation.name": "invoke_agent",
        },
    ),
    (
        "default",
        TRACE,
        CHAT,
        ROOT,
        "generation",
        "chat gpt-4o",
        at(100),
        at(1900),
        at(350),
        "gpt-4o-2024-08-06",
        "openai",
        120,
        30,
        0.0042,
        "ok",
        {
            "service.name": "chat-app",
            "otel.scope.name": "tests",
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.request.temperature": "0.2",
        },
    ),
    (
        "default",
        TRACE,
        TOOL,
        ROOT,
        "tool",
        "execute_tool get_weather",
        at(2000),
        at(2500),
        None,
        "",
        "",
        0,
        0,
        0.0,
        "error",
        {
            "service.name": "chat-app",
            "otel.scope.name": "tests",
            "otel.status_message": "boom",
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": "get_weather",
        },
    ),
]
EXPECTED_TRACE = (
    "default",
    TRACE,
    "agent run",
    at(0),
    "u-7",
    "s-1",
    "default",
    [],
    {"service.name": "chat-app"},
)


def post_protobuf(client: TestClient, body: bytes, **headers: str) -> Any:
    return client.post("/v1/traces", content=body, headers={**PROTOBUF, **headers})


def test_protobuf_export_maps_spans_to_observations_and_the_root_to_the_trace(
    client: TestClient, clickhouse: ClickHouse
) -> None:
    response = post_protobuf(client, protobuf_body(agent_spans()))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-protobuf"
    assert response.content == b"", "a full success leaves partial_success unset"
    assert observations(clickhouse) == EXPECTED_OBSERVATIONS
    assert traces(clickhouse) == [EXPECTED_TRACE]


def test_hand_written_otlp_json_stores_the_same_rows_as_protobuf(
    client: TestClient, clickhouse: ClickHouse
) -> None:
    document = json_request(agent_spans())
    # The spec's own example writes ids in upper case; int64 may be a number or a string.
    first = document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    first["traceId"] = TRACE.upper()
    first["startTimeUnixNano"] = int(first["startTimeUnixNano"])
    first["somethingNew"] = {"receivers": "must ignore unknown fields"}
    response = client.post("/v1/traces", content=orjson.dumps(document), headers=JSON)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {}
    assert observations(clickhouse) == EXPECTED_OBSERVATIONS
    assert traces(clickhouse) == [EXPECTED_TRACE]


def test_the_langfuse_path_is_the_same_handler(client: TestClient, clickhouse: ClickHouse) -> None:
    response = client.post(
        "/api/public/otel/v1/traces", content=protobuf_body(agent_spans()), headers=PROTOBUF
    )
    assert response.status_code == 200
    assert observations(clickhouse) == EXPECTED_OBSERVATIONS


def test_rows_written_through_either_endpoint_count_in_one_metric(client: TestClient) -> None:
    def written(table: str) -> float:
        page = client.get("/metrics").text
        prefix = f'ta_ingested_rows_total{{table="{table}"}}'
        line = next(row for row in page.splitlines() if row.startswith(prefix))
        return float(line.rsplit(" ", 1)[1])

    assert post_protobuf(client, protobuf_body(agent_spans())).status_code == 200
    assert (written("traces"), written("observations")) == (1, len(EXPECTED_OBSERVATIONS))
    batch = {"traces": [trace("t-json")], "observations": [observation("o-json", "t-json")]}
    assert client.post("/v1/ingest", json=batch).status_code == 202
    assert (written("traces"), written("observations")) == (2, len(EXPECTED_OBSERVATIONS) + 1)


def test_otlp_and_v1_ingest_store_identical_rows(
    make_app: Callable[..., Starlette], clickhouse: ClickHouse
) -> None:
    """The same content through both paths: the raw rows match column for column."""
    with TestClient(make_app()) as client:
        assert post_protobuf(client, protobuf_body(agent_spans())).status_code == 200
        equivalent = {
            "traces": [
                trace(
                    TRACE,
                    name="agent run",
                    timestamp="2026-11-22T10:00:00Z",
                    user_id="u-7",
                    session_id="s-1",
                    metadata={"service.name": "chat-app"},
                    project_id="other",
                )
            ],
            "observations": [
                {
                    **observation(row[2], TRACE),
                    "project_id": "other",
                    "parent_id": row[3],
                    "type": row[4],
                    "name": row[5],
                    "start_time": row[6].isoformat(),
                    "end_time": row[7].isoformat(),
                    "completion_start_time": row[8].isoformat() if row[8] else None,
                    "model": row[9],
                    "provider": row[10],
                    "input_tokens": row[11],
                    "output_tokens": row[12],
                    "cost": row[13],
                    "status": row[14],
                    "metadata": row[15],
                }
                for row in EXPECTED_OBSERVATIONS
            ],
        }
        assert client.post("/v1/ingest", json=equivalent).status_code == 202
    rows = observations(clickhouse)
    by_project = {p: [r[1:] for r in rows if r[0] == p] for p in ("default", "other")}
    assert by_project["default"] == by_project["other"]
    trace_rows = traces(clickhouse)
    assert [r[0] for r in trace_rows] == ["default", "other"]
    assert trace_rows[0][1:] == trace_rows[1][1:]


def test_partial_success_writes_the_valid_spans_and_names_the_first_bad_one(
    client: TestClient, clickhouse: ClickHouse
) -> None:
    spans = [
        span(ROOT, name="root", start=0, end=900),
        span(CHAT, ROOT, name="chat", gen_ai__usage__input_tokens=-5),
        span(TOOL, ROOT, name="bad type", langfuse__observation__type="bogus"),
        span("0000000000000000", ROOT, name="zero id"),
    ]
    response = post_protobuf(client, protobuf_body(spans))
    assert response.status_code == 200
    partial = ExportTraceServiceResponse.FromString(response.content).partial_success
    assert partial.rejected_spans == 3
    assert partial.error_message == (
        "resourceSpans[0].scopeSpans[0].spans[1].attributes['gen_ai.usage.input_tokens']: "
        f"Input should be greater than or equal to 0 (spanId {CHAT}, traceId {TRACE}); "
        "3 of 4 spans rejected"
    )
    assert [r[2] for r in observations(clickhouse)] == [ROOT]
    assert [r[1] for r in traces(clickhouse)] == [TRACE]


def test_partial_success_in_json_uses_camel_case_and_int64_strings(
    client: TestClient, clickhouse: ClickHouse
) -> None:
    spans = [span(ROOT, name="x" * 1025), span(CHAT, ROOT, name="ok")]
    response = client.post("/v1/traces", content=orjson.dumps(json_request(spans)), headers=JSON)
    assert response.status_code == 200
    assert response.json() == {
        "partialSuccess": {
            "rejectedSpans": "1",
            "errorMessage": "resourceSpans[0].scopeSpans[0].spans[0].name: String should have "
            f"at most 1024 characters (spanId {ROOT}, traceId {TRACE}); 1 of 2 spans rejected",
        }
    }
    assert [r[2] for r in observations(clickhouse)] == [CHAT]
    assert traces(clickhouse) == [], "a rejected root writes no trace row"


def test_a_trace_field_out_of_bounds_rejects_the_root_span_and_keeps_values_elsewhere(
    client: TestClient, clickhouse: ClickHouse
) -> None:
    spans = [span(ROOT, user__id="u" * 513), span(CHAT, ROOT, session__id="s-1")]
    response = post_protobuf(client, protobuf_body(spans))
    partial = ExportTraceServiceResponse.FromString(response.content).partial_success
    assert partial.rejected_spans == 1
    assert partial.error_message.startswith(
        "resourceSpans[0].scopeSpans[0].spans[0].attributes['user.id']: "
        "String should have at most 512 characters"
    )
    rows = observations(clickhouse)
    assert [(r[2], r[15].get("session.id")) for r in rows] == [(CHAT, "s-1")]
    assert traces(clickhouse) == []


@pytest.mark.parametrize(
    ("headers", "body", "message"),
    [
        (PROTOBUF, b"\x0a\xff\xff\xff", "body: not a protobuf ExportTraceServiceRequest"),
        (JSON, b"{not json", "body: not valid JSON"),
        (JSON, b'{"resourceSpans": {}}', "resourceSpans: expected a JSON array, got an object"),
        (
            JSON,
            b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "xyz"}]}]}]}',
            "resourceSpans[0].scopeSpans[0].spans[0].traceId: expected a hex string",
        ),
        (
            JSON,
            b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": "soon"}]}]}]}',
            "resourceSpans[0].scopeSpans[0].spans[0].startTimeUnixNano: expected an integer",
        ),
    ],
)
def test_an_undecodable_body_is_400_with_a_status_and_writes_nothing(
    client: TestClient, clickhouse: ClickHouse, headers: dict[str, str], body: bytes, message: str
) -> None:
    response = client.post("/v1/traces", content=body, headers=headers)
    assert response.status_code == 400
    assert response.headers["content-type"] == headers["content-type"]
    if headers is PROTOBUF:
        status = Status.FromString(response.content)
        assert (status.code, status.message.startswith(message)) == (3, True), status.message
    else:
        document = response.json()
        assert document["code"] == 3
        assert document["message"].startswith(message), document["message"]
        assert document["error"] == {"code": "invalid_body", "message": document["message"]}
    assert observations(clickhouse) == []


def test_an_empty_export_is_a_success(client: TestClient) -> None:
    assert post_protobuf(client, b"").content == b""
    assert client.post("/v1/traces", content=b"{}", headers=JSON).json() == {}
    assert client.post("/v1/traces", content=b"", headers=JSON).json() == {}


def test_other_content_types_are_415_naming_them(client: TestClient) -> None:
    response = client.post("/v1/traces", content=b"{}", headers={"content-type": "text/plain"})
    assert response.status_code == 415
    assert response.json()["error"] == {
        "code": "unsupported_media_type",
        "message": "Content-Type: 'text/plain' is not accepted here "
        "(use application/x-protobuf or application/json)",
    }
    assert client.post("/v1/traces", content=b"{}").status_code == 415


def test_gzip_export_is_inflated(client: TestClient, clickhouse: ClickHouse) -> None:
    body = gzip.compress(protobuf_body(agent_spans()))
    assert post_protobuf(client, body, **{"content-encoding": "gzip"}).status_code == 200
    assert observations(clickhouse) == EXPECTED_OBSERVATIONS


def test_an_unsupported_encoding_is_415_naming_it(client: TestClient) -> None:
    response = post_protobuf(client, b"\x00", **{"content-encoding": "br"})
    assert response.status_code == 415
    assert Status.FromString(response.content).message == (
        "Content-Encoding: 'br' is not supported (use one of gzip, deflate, zstd, identity)"
    )


def test_a_gzip_bomb_is_413_while_inflating(
    make_app: Callable[..., Starlette], clickhouse: ClickHouse
) -> None:
    bomb = gzip.compress(b"\x00" * (64 * 1024 * 1024), compresslevel=9)
    assert len(bomb) < 128 * 1024
    with TestClient(make_app(ingest_max_bytes=1024 * 1024)) as client:
        response = post_protobuf(client, bomb, **{"content-encoding": "gzip"})
    assert response.status_code == 413
    assert Status.FromString(response.content).message == (
        "body exceeds 1048576 bytes once decompressed (gzip) (TA_INGEST_MAX_BYTES)"
    )
    assert observations(clickhouse) == []


def test_spans_before_their_root_conclude_and_the_late_root_is_late_activity(
    make_app: Callable[..., Starlette], clickhouse: ClickHouse, clock: Any
) -> None:
    app = make_app(idle_seconds=60)
    children, root = agent_spans()[1:], agent_spans()[0]
    with TestClient(app) as client:
        assert post_protobuf(client, protobuf_body(children)).status_code == 200
        assert traces(clickhouse) == [], "no root, no trace row"
        metadata = {r[2]: r[15] for r in observations(clickhouse)}
        assert "user.id" not in metadata[CHAT]
        clock.advance(61)
        first = detect(app)
        assert [(c.trace_id, c.revision, c.summary["observations"]) for c in first] == [
            (TRACE, 1, 2)
        ]
        assert first[0].summary["name"] == ""

        assert post_protobuf(client, protobuf_body([root])).status_code == 200
        clock.advance(61)
        second = detect(app)
    assert [(c.trace_id, c.revision, c.summary["observations"]) for c in second] == [(TRACE, 2, 3)]
    assert second[0].summary["name"] == "agent run"
    assert traces(clickhouse) == [EXPECTED_TRACE]


def test_trace_attributes_on_spans_without_their_root_stay_in_observation_metadata(
    client: TestClient, clickhouse: ClickHouse
) -> None:
    child = span(
        CHAT,
        ROOT,
        user__id="u-9",
        langfuse__trace__name="named later",
        langfuse__trace__tags=["a", "b"],
        langfuse__trace__metadata__plan='"pro"',
    )
    assert post_protobuf(client, protobuf_body([child])).status_code == 200
    assert traces(clickhouse) == []
    assert observations(clickhouse)[0][15] == {
        "service.name": "chat-app",
        "otel.scope.name": "tests",
        "user.id": "u-9",
        "langfuse.trace.name": "named later",
        "langfuse.trace.tags": '["a","b"]',
        "langfuse.trace.metadata.plan": '"pro"',
    }


def test_trace_fields_merge_from_the_roots_request(
    client: TestClient, clickhouse: ClickHouse
) -> None:
    spans = [
        span(ROOT, name="root span", langfuse__trace__tags=["a"], user__id="u-1"),
        span(
            CHAT,
            ROOT,
            user__id="u-other",
            session__id="s-2",
            langfuse__trace__name="support chat",
            langfuse__trace__tags=["b", "a"],
            langfuse__trace__metadata__plan='"pro"',
        ),
    ]
    resource = {"service.name": "svc", "deployment.environment.name": "prod"}
    assert post_protobuf(client, protobuf_body(spans, resource=resource)).status_code == 200
    assert traces(clickhouse) == [
        (
            "default",
            TRACE,
            "support chat",
            at(0),
            "u-1",
            "s-2",
            "prod",
            ["a", "b"],
            {"service.name": "svc"},  # trace metadata is the root's own
        )
    ]
    chat = {r[2]: r[15] for r in observations(clickhouse)}[CHAT]
    # Values the root does not carry stay here too: the trace row is not their only home.
    assert chat == {
        "service.name": "svc",
        "otel.scope.name": "tests",
        "user.id": "u-other",
        "session.id": "s-2",
        "langfuse.trace.name": "support chat",
        "langfuse.trace.tags": '["b","a"]',
        "langfuse.trace.metadata.plan": '"pro"',
    }


KEYS = "acme-key-123=acme,globex-key-456=globex,admin-key-789=*"


@pytest.fixture
def secured(make_app: Callable[..., Starlette]) -> Iterator[TestClient]:
    with TestClient(make_app(api_keys=SecretStr(KEYS))) as client:
        yield client


def basic(user: str, key: str) -> dict[str, str]:
    import base64

    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{key}".encode()).decode()}


def test_the_key_decides_the_project_bearer_or_basic(
    secured: TestClient, clickhouse: ClickHouse
) -> None:
    body = protobuf_body([span(ROOT)])
    no_key = post_protobuf(secured, body)
    assert no_key.status_code == 401
    assert Status.FromString(no_key.content).code == 16
    assert post_protobuf(secured, body, **basic("pk-lf-1", "wrong")).status_code == 401

    headers = basic("pk-lf-anything", "acme-key-123")
    assert post_protobuf(secured, body, **headers).status_code == 200
    # A project key naming another project is refused (403, a Status), as on every route.
    other = protobuf_body([span(ROOT, trace_id="c" * 32)])
    response = secured.post(
        "/v1/traces",
        params={"project_id": "globex"},
        content=other,
        headers={**PROTOBUF, "Authorization": "Bearer acme-key-123"},
    )
    assert response.status_code == 403
    assert Status.FromString(response.content).code == 7  # PERMISSION_DENIED
    rows = clickhouse.query_rows(
        "t", sql="SELECT project_id, trace_id FROM observations ORDER BY 2"
    )
    assert rows == [("acme", TRACE)]
    as_globex = {"Authorization": "Bearer globex-key-456"}
    assert secured.get(f"/v1/traces/{TRACE}", headers=as_globex).status_code == 404
    as_acme = {"Authorization": "Bearer acme-key-123"}
    assert secured.get(f"/v1/traces/{TRACE}", headers=as_acme).status_code == 200


def test_an_admin_key_writes_the_project_it_names(
    secured: TestClient, clickhouse: ClickHouse
) -> None:
    response = secured.post(
        "/v1/traces",
        params={"project_id": "globex"},
        content=protobuf_body([span(ROOT)]),
        headers={**PROTOBUF, **basic("x", "admin-key-789")},
    )
    assert response.status_code == 200
    assert clickhouse.query_rows("t", sql="SELECT project_id FROM observations") == [("globex",)]


def test_an_overloaded_write_path_is_503_with_retry_after_on_both_endpoints(
    make_app: Callable[..., Starlette], clickhouse: ClickHouse
) -> None:
    """One writer behind both endpoints: a full queue refuses both, before reading a body."""
    app = make_app(ingest_max_queue_rows=1, ingest_retry_after_seconds=2.5)
    queued = parse_batch(orjson.dumps({"observations": [observation("queued")]}))
    with TestClient(app) as client:
        writer = app_context(app).ingest
        with writer.held():
            waiting = writer.submit(queued.resolve(lambda _p, _f: "default"))  # fills the queue
            otlp = post_protobuf(client, protobuf_body(agent_spans()))
            ingest = client.post("/v1/ingest", json={"observations": [observation()]})
        assert waiting.result(timeout=60).observations == 1
    assert (otlp.status_code, otlp.headers["retry-after"]) == (503, "3")  # 2.5 s, rounded up
    status = Status.FromString(otlp.content)
    assert status.code == 14  # UNAVAILABLE
    assert status.message.startswith("ingest queue is full")
    assert (ingest.status_code, ingest.headers["retry-after"]) == (503, "3")
    assert ingest.json()["error"]["code"] == "overloaded"
    assert [row[2] for row in observations(clickhouse)] == ["queued"]
