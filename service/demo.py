"""Realistic synthetic traces, written through the ingest path so every endpoint has data."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import orjson

from service.auth import ADMIN_PRINCIPAL
from service.clickhouse import ClickHouse
from service.clock import VersionStamp
from service.durations.catalog import get_definition, save_definition
from service.durations.definitions import DurationDefinitionIn, parse_definition
from service.ingest.decode import parse_batch
from service.ingest.writer import write_rows
from service.times import format_time

MODELS = (
    ("gpt-4o", "openai", 2.5e-6, 1.0e-5),
    ("gpt-4o-mini", "openai", 1.5e-7, 6.0e-7),
    ("claude-sonnet-4", "anthropic", 3.0e-6, 1.5e-5),
    ("gemini-2.5-flash", "google", 3.0e-7, 2.5e-6),
)
TRACE_NAMES = ("chat", "rag-answer", "summarize", "agent-run", "classify")
TOOLS = ("search", "sql", "fetch_url", "calculator")
ENVIRONMENTS = ("production", "production", "production", "staging")

# Named durations `demo` defines, in the body format of POST /v1/duration-definitions.
DEMO_DEFINITIONS: tuple[dict[str, Any], ...] = (
    {
        "name": "time_to_first_token",
        "start": {"anchor": "trace_start"},
        "end": {
            "anchor": "observation",
            "type": "generation",
            "pick": "first",
            "edge": "first_token",
        },
    },
    {
        "name": "last_llm_call",
        "start": {"anchor": "observation", "type": "generation", "pick": "last", "edge": "start"},
        "end": {"anchor": "observation", "type": "generation", "pick": "last", "edge": "end"},
    },
    {
        "name": "end_to_end",
        "start": {"anchor": "trace_start"},
        "end": {"anchor": "trace_end"},
    },
)


def synthetic_trace(rng: random.Random, trace_id: str, start: datetime) -> dict[str, Any]:
    """One trace with a root span, 1-4 generations and some tool calls."""
    name = rng.choice(TRACE_NAMES)
    trace = {
        "id": trace_id,
        "name": name,
        "timestamp": format_time(start),
        "user_id": f"user-{rng.randrange(200)}",
        "session_id": f"session-{rng.randrange(1000)}",
        "environment": rng.choice(ENVIRONMENTS),
        "tags": rng.sample(["beta", "mobile", "web", "internal"], k=rng.randrange(3)),
        "metadata": {"app_version": f"1.{rng.randrange(9)}.0"},
    }
    observations: list[dict[str, Any]] = []
    cursor = start + timedelta(milliseconds=rng.randrange(1, 30))
    root_id = f"{trace_id}-root"
    for step in range(rng.randrange(1, 5)):
        model, provider, in_price, out_price = rng.choice(MODELS)
        input_tokens = rng.randrange(50, 4000)
        output_tokens = rng.randrange(10, 800)
        ttft = timedelta(milliseconds=rng.lognormvariate(5.5, 0.5))
        gen_end = cursor + ttft + timedelta(milliseconds=output_tokens * rng.uniform(8, 25))
        error = rng.random() < 0.03
        observations.append(
            {
                "id": f"{trace_id}-gen-{step}",
                "trace_id": trace_id,
                "parent_id": root_id,
                "type": "generation",
                "name": f"{name}.llm",
                "start_time": format_time(cursor),
                "end_time": format_time(gen_end),
                "completion_start_time": format_time(cursor + ttft),
                "model": model,
                "provider": provider,
                "input_tokens": input_tokens,
                "output_tokens": output_tokens,
                "cost": round(input_tokens * in_price + output_tokens * out_price, 8),
                "status": "error" if error else "ok",
            }
        )
        cursor = gen_end
        if rng.random() < 0.5:
            tool_end = cursor + timedelta(milliseconds=rng.lognormvariate(4.5, 0.8))
            orphan = rng.random() < 0.02
            observations.append(
                {
                    "id": f"{trace_id}-tool-{step}",
                    "trace_id": trace_id,
                    "parent_id": root_id,
                    "type": "tool",
                    "name": rng.choice(TOOLS),
                    "start_time": format_time(cursor),
                    "end_time": None if orphan else format_time(tool_end),
                }
            )
            cursor = tool_end
    observations.insert(
        0,
        {
            "id": root_id,
            "trace_id": trace_id,
            "type": "span",
            "name": name,
            "start_time": format_time(start),
            "end_time": format_time(cursor + timedelta(milliseconds=rng.randrange(1, 20))),
        },
    )
    return {"trace": trace, "observations": observations}


def synthetic_batches(
    *, traces: int, batch_size: int, now: datetime, hours: int = 48, seed: int = 7
) -> Iterator[bytes]:
    """JSON ingest bodies holding `traces` traces spread over the last `hours` hours."""
    rng = random.Random(seed)
    pending: dict[str, list[dict[str, Any]]] = {"traces": [], "observations": []}
    for n in range(traces):
        start = now - timedelta(seconds=rng.uniform(90, hours * 3600))
        item = synthetic_trace(rng, f"demo-{seed}-{n:06d}", start)
        pending["traces"].append(item["trace"])
        pending["observations"].extend(item["observations"])
        if len(pending["traces"]) >= batch_size:
            yield orjson.dumps(pending)
            pending = {"traces": [], "observations": []}
    if pending["traces"]:
        yield orjson.dumps(pending)


def write_demo(
    ch: ClickHouse,
    stamp: VersionStamp,
    *,
    traces: int,
    project: str,
    now: datetime,
    seed: int = 7,
    on_batch: Callable[[int], None] | None = None,
) -> int:
    """Write `traces` synthetic traces through ingest validation and the writer.

    Returns the number of observations written; `on_batch(traces)` follows progress.
    """
    written = 0
    for body in synthetic_batches(traces=traces, batch_size=250, now=now, seed=seed):
        rows = parse_batch(body).resolve(
            lambda record, field: ADMIN_PRINCIPAL.write_project(record, project, field)
        )
        result = write_rows(ch, rows, stamp)
        written += result.observations
        if on_batch is not None:
            on_batch(result.traces)
    return written


def add_demo_definitions(ch: ClickHouse, project: str, stamp: VersionStamp) -> list[str]:
    """The demo's named durations, unless the project already has them; returns those added.

    They are materialized as the demo traces conclude under `serve`, so
    `/v1/traces/{id}/durations` has data without any further step.
    """
    added = []
    for body in DEMO_DEFINITIONS:
        definition = parse_definition(DurationDefinitionIn, body)
        if get_definition(ch, project, definition.name) is None:
            save_definition(ch, project, definition.name, definition, stamp.next())
            added.append(definition.name)
    return added
