"""OTLP throughput: spans/s through POST /v1/traces (protobuf) vs observations/s through
POST /v1/ingest (JSON) on the same data, in the same run, against one `serve` process.

The data is the demo's synthetic traces expressed as OTLP spans with GenAI semantic
convention attributes (about 1000 spans per request). The /v1/ingest bodies are made by
running the OTLP mapping over those spans, so both paths validate and store the same rows
(traces and observations); the rounds alternate between the two paths so drift in the
engine (merges, cache) hits both alike.

    python bench/otlp.py [--spans 60000] [--per-request 1000] [--senders 4] [--rounds 5]

Besides throughput it prints the server process's CPU time per span on each path (from
/proc), which other load on a shared machine does not distort.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from ingest import start_server  # bench/ingest.py: `serve` in its own process, on its own data
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ScopeSpans

from service.demo import synthetic_trace
from service.otlp.decode import decode_protobuf
from service.otlp.export import prepare
from service.times import parse_time

PROTOBUF = {"content-type": "application/x-protobuf"}
JSON = {"content-type": "application/json"}


def _nanos(text: str | None) -> int:
    if text is None:
        return 0
    when = parse_time(text)
    return (int(when.timestamp()) * 1_000_000 + when.microsecond) * 1000


def _set(span: Any, key: str, value: Any) -> None:
    any_value = AnyValue()
    if isinstance(value, str):
        any_value.string_value = value
    elif isinstance(value, int):
        any_value.int_value = value
    elif isinstance(value, float):
        any_value.double_value = value
    elif isinstance(value, list):
        any_value.array_value.values.extend(AnyValue(string_value=v) for v in value)
    span.attributes.add(key=key, value=any_value)


def add_trace(scope: ScopeSpans, item: dict[str, Any], number: int, payload: str) -> int:
    """One demo trace as OTLP spans (GenAI conventions); returns how many spans it added."""
    trace, observations = item["trace"], item["observations"]
    trace_id = bytes.fromhex(f"{number:032x}")
    span_ids = {
        o["id"]: bytes.fromhex(f"{number:08x}{i + 1:08x}") for i, o in enumerate(observations)
    }
    for o in observations:
        span = scope.spans.add()
        span.trace_id = trace_id
        span.span_id = span_ids[o["id"]]
        if o.get("parent_id"):
            span.parent_span_id = span_ids[o["parent_id"]]
        span.name = o["name"]
        span.kind = 1
        span.start_time_unix_nano = _nanos(o["start_time"])
        span.end_time_unix_nano = _nanos(o.get("end_time"))
        if o.get("status") == "error":
            span.status.code = 2
        if o["type"] == "generation":
            _set(span, "gen_ai.operation.name", "chat")
            _set(span, "gen_ai.provider.name", o["provider"])
            _set(span, "gen_ai.request.model", o["model"])
            _set(span, "gen_ai.usage.input_tokens", o["input_tokens"])
            _set(span, "gen_ai.usage.output_tokens", o["output_tokens"])
            _set(span, "gen_ai.usage.cost", o["cost"])
            first = _nanos(o["completion_start_time"]) - span.start_time_unix_nano
            _set(span, "gen_ai.response.time_to_first_chunk", first / 1e9)
            if payload:
                _set(span, "gen_ai.input.messages", payload)
        elif o["type"] == "tool":
            _set(span, "gen_ai.operation.name", "execute_tool")
            _set(span, "gen_ai.tool.name", o["name"])
        else:  # the root
            _set(span, "langfuse.trace.name", trace["name"])
            _set(span, "user.id", trace["user_id"])
            _set(span, "session.id", trace["session_id"])
            _set(span, "langfuse.environment", trace["environment"])
            _set(span, "langfuse.trace.tags", trace["tags"])
            _set(
                span, "langfuse.trace.metadata.app_version", f'"{trace["metadata"]["app_version"]}"'
            )
    return len(observations)


def build_bodies(spans: int, per_request: int, payload_bytes: int) -> list[tuple[bytes, bytes]]:
    """(protobuf export, equivalent /v1/ingest JSON) pairs of about `per_request` spans."""
    rng = random.Random(11)
    now = datetime.now(UTC)
    payload = "x" * payload_bytes
    bodies: list[tuple[bytes, bytes]] = []
    made = number = 0
    while made < spans:
        request = ExportTraceServiceRequest()
        resource_spans = request.resource_spans.add()
        resource_spans.resource.attributes.add(
            key="service.name", value=AnyValue(string_value="bench-app")
        )
        scope = resource_spans.scope_spans.add()
        scope.scope.name = "bench"
        in_request = 0
        while in_request < per_request:
            number += 1
            start = now.replace(microsecond=0).astimezone(UTC)
            item = synthetic_trace(rng, f"t{number}", start.replace(minute=rng.randrange(60)))
            in_request += add_trace(scope, item, number, payload)
        protobuf = request.SerializeToString()
        prepared = prepare(decode_protobuf(protobuf))
        assert prepared.rejected == 0, prepared.error_message
        bodies.append((protobuf, prepared.batch.model_dump_json().encode()))
        made += in_request
    return bodies


def timed(url: str, bodies: list[bytes], headers: dict[str, str], senders: int) -> float:
    """Seconds to send every body with `senders` concurrent clients."""
    with httpx.Client(timeout=300) as http:

        def send(body: bytes) -> None:
            http.post(url, content=body, headers=headers).raise_for_status()

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=senders) as pool:
            list(pool.map(send, bodies))
        return time.perf_counter() - started


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (Linux /proc): immune to other load on the box."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=60_000)
    parser.add_argument("--per-request", type=int, default=1000)
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--port", type=int, default=18766)
    parser.add_argument(
        "--payload-bytes", type=int, default=0, help="a gen_ai.input.messages of this size"
    )
    args = parser.parse_args()

    bodies = build_bodies(args.spans, args.per_request, args.payload_bytes)
    total = sum(len(prepare(decode_protobuf(p)).batch.observations) for p, _ in bodies)
    otlp_bytes = sum(len(p) for p, _ in bodies)
    json_bytes = sum(len(j) for _, j in bodies)
    print(
        f"{total} spans in {len(bodies)} requests; protobuf {otlp_bytes / 1e6:.1f} MB, "
        f"ingest JSON {json_bytes / 1e6:.1f} MB; {args.rounds} rounds, each path in turn"
    )
    paths = {
        "otlp": ("/v1/traces?project_id=otlp", [p for p, _ in bodies], PROTOBUF),
        "json": ("/v1/ingest?project_id=json", [j for _, j in bodies], JSON),
    }
    wall = {name: 0.0 for name in paths}
    cpu = {name: 0.0 for name in paths}
    round_ratios = []
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(Path(tmp) / "data", args.port)
        try:
            base = f"http://127.0.0.1:{args.port}"
            for route, sent, headers in paths.values():  # warm-up
                timed(base + route, sent[:1], headers, 1)
            for _ in range(args.rounds):
                seconds = {}
                for name, (route, sent, headers) in paths.items():
                    before = cpu_seconds(server.pid)
                    seconds[name] = timed(base + route, sent, headers, args.senders)
                    cpu[name] += cpu_seconds(server.pid) - before
                    wall[name] += seconds[name]
                round_ratios.append(seconds["json"] / seconds["otlp"])
        finally:
            server.terminate()
            server.wait(timeout=60)

    spans = total * args.rounds
    otlp_rate, json_rate = spans / wall["otlp"], spans / wall["json"]
    print(
        f"POST /v1/traces (protobuf): {otlp_rate:>8,.0f} spans/s, "
        f"server CPU {1e6 * cpu['otlp'] / spans:,.0f} us/span ({args.senders} senders)"
    )
    print(
        f"POST /v1/ingest (JSON)    : {json_rate:>8,.0f} observations/s, "
        f"server CPU {1e6 * cpu['json'] / spans:,.0f} us/observation"
    )
    print(
        f"ratio (otlp / json)       : {otlp_rate / json_rate:.2f}x throughput "
        f"(per round: {', '.join(f'{r:.2f}' for r in round_ratios)}; "
        f"median {statistics.median(round_ratios):.2f}), "
        f"{cpu['json'] / cpu['otlp']:.2f}x CPU efficiency  (target: >= 1.0x)"
    )


if __name__ == "__main__":
    main()
