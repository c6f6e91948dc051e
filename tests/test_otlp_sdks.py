"""Real SDKs export to a running service: OpenTelemetry (protobuf, plain and gzip) and Langfuse.

The service runs under uvicorn on 127.0.0.1 (ephemeral port) on the test's embedded chDB; what
the spans carried must come out of conclusions, the webhook summary, /v1/usage and
/v1/latency exactly as if it had been sent to /v1/ingest.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
import respx
from opentelemetry import trace as otel_trace
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Status, StatusCode
from pydantic import SecretStr
from starlette.applications import Starlette

from service.api import app_context
from service.clickhouse import ClickHouse
from service.clock import ManualClock
from service.rollups import run_rollup_pass
from service.rollups.sketch import RELATIVE_ACCURACY
from tests.conftest import deliver, detect
from tests.live import serve

KEYS = "acme-key-123=acme,globex-key-456=globex"
ANALYZE_URL = "http://receiver.test/analyze"
RANGE = {"from": "2026-11-22T00:00:00Z", "to": "2026-11-23T00:00:00Z"}
T0_NS = calendar.timegm(datetime(2026, 11, 22, 10, 0, tzinfo=UTC).utctimetuple()) * 10**9
IDLE = 60


def at(milliseconds: int) -> int:
    """Unix nanoseconds `milliseconds` after 2026-11-22T10:00:00Z (the test clock's start)."""
    return T0_NS + milliseconds * 1_000_000


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def app(make_app: Callable[..., Starlette]) -> Starlette:
    return make_app(api_keys=SecretStr(KEYS), idle_seconds=IDLE, analyze_url=ANALYZE_URL)


def export_agent_trace(base_url: str, compression: Compression) -> str:
    """An agent run with a chat call and a failed tool call, as GenAI instrumentation emits it.

    SimpleSpanProcessor exports each span when it ends, so the children arrive (in their own
    requests) before their root. Returns the trace id (hex).
    """
    provider = TracerProvider(
        resource=Resource.create(
            {"service.name": "chat-app", "deployment.environment.name": "staging"}
        )
    )
    exporter = OTLPSpanExporter(
        endpoint=f"{base_url}/v1/traces", headers=bearer("acme-key-123"), compression=compression
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test.agent")
    root = tracer.start_span(
        "agent run",
        start_time=at(0),
        attributes={"gen_ai.operation.name": "invoke_agent", "user.id": "u-7", "session.id": "s-1"},
    )
    context = otel_trace.set_span_in_context(root)
    chat = tracer.start_span(
        "chat gpt-4o",
        context=context,
        start_time=at(100),
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.response.model": "gpt-4o-2024-08-06",
            "gen_ai.usage.input_tokens": 120,
            "gen_ai.usage.output_tokens": 30,
            "gen_ai.usage.cost": 0.0042,
            "gen_ai.response.time_to_first_chunk": 0.35,
            "gen_ai.input.messages": '[{"role": "user", "content": "' + "x" * 5000 + '"}]',
            "gen_ai.request.temperature": 0.2,
        },
    )
    chat.end(end_time=at(1900))
    tool = tracer.start_span(
        "execute_tool get_weather",
        context=context,
        start_time=at(2000),
        attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "get_weather"},
    )
    tool.set_status(Status(StatusCode.ERROR, "upstream timeout"))
    tool.end(end_time=at(2500))
    root.end(end_time=at(3000))
    provider.shutdown()
    return format(root.get_span_context().trace_id, "032x")


@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip])
def test_opentelemetry_sdk_export_concludes_with_its_tokens_cost_and_durations(
    app: Starlette, clickhouse: ClickHouse, clock: ManualClock, compression: Compression
) -> None:
    with serve(app) as base_url:
        trace_id = export_agent_trace(base_url, compression)

        clock.advance(IDLE + 1)  # three exports were stamped a microsecond apart from T0
        concluded = detect(app)
        assert [(c.project_id, c.trace_id, c.revision) for c in concluded] == [
            ("acme", trace_id, 1)
        ]
        with respx.mock(assert_all_called=True) as mock:
            receiver = mock.post(ANALYZE_URL).mock(return_value=httpx.Response(204))
            deliver(app)
        assert receiver.call_count == 1
        payload = orjson.loads(receiver.calls[0].request.content)
        assert payload["trace_id"] == trace_id
        assert payload["summary"] == {
            "name": "agent run",
            "environment": "staging",
            "user_id": "u-7",
            "session_id": "s-1",
            "start_time": "2026-11-22T10:00:00.000Z",
            "end_time": "2026-11-22T10:00:03.000Z",
            "duration_ms": 3000.0,
            "observations": 3,
            "orphans": 0,
            "skewed": 0,
            "errors": 1,
            "input_tokens": 120,
            "output_tokens": 30,
            "total_tokens": 150,
            "cost": pytest.approx(0.0042),
            "models": ["gpt-4o-2024-08-06"],
        }

        run_rollup_pass(clickhouse, clock)
        with httpx.Client(base_url=base_url, headers=bearer("acme-key-123")) as http:
            usage = http.get("/v1/usage", params={**RANGE, "group_by": "type,model"}).json()
            observation_latency = http.get(
                "/v1/latency", params={**RANGE, "level": "observation", "group_by": "type"}
            ).json()
            trace_latency = http.get("/v1/latency", params={**RANGE, "level": "trace"}).json()
            other_project = http.get(
                f"/v1/traces/{trace_id}", headers=bearer("globex-key-456")
            ).status_code

    bucket = "2026-11-22T10:00:00.000Z"
    assert usage["data"] == [
        row(bucket, "agent", "", errors=0),
        row(bucket, "tool", "", errors=1),
        row(bucket, "generation", "gpt-4o-2024-08-06", 120, 30, 0.0042),
    ]
    durations = {
        r["type"]: (r["count"], r["avg_ms"], r["max_ms"]) for r in observation_latency["data"]
    }
    # avg is exact; max is the top histogram bucket's value, within the sketch's 1%.
    within = pytest.approx
    assert durations == {
        "agent": (1, 3000.0, within(3000.0, rel=RELATIVE_ACCURACY)),
        "generation": (1, 1800.0, within(1800.0, rel=RELATIVE_ACCURACY)),
        "tool": (1, 500.0, within(500.0, rel=RELATIVE_ACCURACY)),
    }
    assert [(r["count"], r["avg_ms"], r["max_ms"]) for r in trace_latency["data"]] == [
        (1, 3000.0, within(3000.0, rel=RELATIVE_ACCURACY))
    ]
    assert other_project == 404, "another project's key does not see the trace"


def row(
    bucket: str,
    type_: str,
    model: str,
    input_tokens: int = 0,
    output_tokens: int = 0,
    cost: float = 0.0,
    errors: int = 0,
) -> dict[str, Any]:
    return {
        "bucket": bucket,
        "type": type_,
        "model": model,
        "observations": 1,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens,
        "cost": pytest.approx(cost),
        "errors": errors,
    }


def test_langfuse_sdk_generation_arrives_with_its_usage_and_cost_in_the_keys_project(
    app: Starlette, clickhouse: ClickHouse
) -> None:
    from langfuse import Langfuse, propagate_attributes

    with serve(app) as base_url:
        langfuse = Langfuse(
            public_key="pk-lf-anything",
            secret_key="globex-key-456",
            base_url=base_url,
            environment="production",
        )
        with (
            langfuse.start_as_current_observation(as_type="span", name="pipeline"),
            propagate_attributes(user_id="user-42", session_id="sess-9", tags=["beta"]),
        ):
            with langfuse.start_as_current_observation(
                as_type="generation",
                name="llm-call",
                model="gpt-4o-mini",
                usage_details={"input": 50, "output": 7},
                cost_details={"input": 0.001, "output": 0.002},
                input=[{"role": "user", "content": "hello"}],
                metadata={"experiment": "a1"},
            ):
                pass
        langfuse.flush()
        langfuse.shutdown()
        routes = {
            sample.labels["route"]
            for sample in app_context(app).metrics.http_requests.collect()[0].samples
            if sample.name.endswith("_total")
        }

    assert routes == {"/api/public/otel/v1/traces"}, "the SDK calls nothing but the OTLP path"
    rows = clickhouse.query_rows(
        "t",
        sql="SELECT project_id, type, name, model, input_tokens, output_tokens, cost, metadata "
        "FROM observations FINAL ORDER BY name",
    )
    assert [r[:7] for r in rows] == [
        ("globex", "generation", "llm-call", "gpt-4o-mini", 50, 7, pytest.approx(0.003)),
        ("globex", "span", "pipeline", "", 0, 0, 0.0),
    ]
    assert rows[0][7] == {
        "service.name": "unknown_service:python",
        "otel.scope.name": "langfuse-sdk",
        "langfuse.observation.usage_details": '{"input": 50, "output": 7}',
        "langfuse.observation.cost_details": '{"input": 0.001, "output": 0.002}',
        "experiment": "a1",  # langfuse.observation.metadata.experiment, JSON-decoded
    }, "no input payload; trace-level values equal to the root's are on the trace row"
    traces = clickhouse.query_rows(
        "t", sql="SELECT project_id, name, user_id, session_id, environment, tags FROM traces FINAL"
    )
    assert traces == [("globex", "pipeline", "user-42", "sess-9", "production", ["beta"])]
