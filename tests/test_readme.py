"""The README states facts the code can check: metrics, ingest fields, examples, references."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase
from pydantic import BaseModel
from starlette.testclient import TestClient

from service.clickhouse import ClickHouse
from service.clock import ManualClock
from service.ingest.models import ObservationIn, TraceIn
from service.metrics import Metrics
from service.rollups import run_rollup_pass
from tests.conftest import observation, trace

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def registry_metrics() -> dict[str, set[str]]:
    """`{name: label names}` for every metric, under its family and its sample names."""
    names: dict[str, set[str]] = {}
    suffixes = {
        "counter": ["", "_total"],
        "gauge": [""],
        "histogram": ["", "_bucket", "_count", "_sum"],
        "summary": ["", "_count", "_sum"],
    }
    for metric in vars(Metrics(CollectorRegistry())).values():
        if isinstance(metric, MetricWrapperBase):
            for suffix in suffixes[metric._type]:
                names[metric._name + suffix] = set(metric._labelnames)
    return names


def readme_metric_mentions() -> list[tuple[str, list[str]]]:
    """Every backticked `ta_*` metric in the README with the labels written after it."""
    found = []
    for span in re.findall(r"`([^`\n]*\bta_[a-z0-9_]+[^`\n]*)`", README):
        for name, labels in re.findall(r"\b(ta_[a-z0-9_]+)(?:\{([^}]*)\})?", span):
            label_names = [re.split(r"[=!~]", part)[0].strip() for part in labels.split(",")]
            found.append((name, [label for label in label_names if label]))
    return found


def test_the_metric_parser_sees_names_and_labels() -> None:
    mentions = dict(readme_metric_mentions())
    assert mentions["ta_deliveries_total"] == ["outcome"]
    assert "ta_http_requests_total" in mentions or len(mentions) > 10


def test_every_metric_and_label_the_readme_names_exists() -> None:
    exported = registry_metrics()
    problems = []
    for name, labels in readme_metric_mentions():
        if name not in exported:
            problems.append(f"unknown metric {name}")
            continue
        for label in labels:
            if label not in exported[name]:
                problems.append(f"{name} has no label {label!r} (it has {sorted(exported[name])})")
    assert problems == []


def test_the_readme_cites_no_file_outside_the_repository() -> None:
    assert "DESIGN.md" not in README
    assert "shared/" not in README
    for path in re.findall(r"`((?:service|deploy|tests|bench|queries)/[\w./-]*\w)`", README):
        assert (ROOT / path).exists(), path


def test_no_paragraph_appears_twice() -> None:
    paragraphs = [p.strip() for p in README.split("\n\n") if len(p.strip()) > 80]
    repeated = [p[:60] for p, n in Counter(paragraphs).items() if n > 1]
    assert repeated == []


# Ingest fields: the README's tables list exactly the model's fields, required or not.


def field_table(heading: str) -> dict[str, str]:
    """`{field: required|optional}` from the table under `heading`."""
    start = README.index(heading)
    rows = {}
    for line in README[start:].splitlines()[2:]:
        if not line.startswith("|"):
            if rows:
                break
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        match = re.fullmatch(r"`(\w+)`", cells[0])
        if match:
            rows[match.group(1)] = cells[1]
    return rows


def test_readme_lists_every_ingest_field_and_which_are_required() -> None:
    models: dict[str, type[BaseModel]] = {
        "**Trace fields**": TraceIn,
        "**Observation fields**": ObservationIn,
    }
    for heading, model in models.items():
        documented = field_table(heading)
        assert set(documented) == set(model.model_fields), heading
        for name, field in model.model_fields.items():
            expected = "required" if field.is_required() else "optional"
            assert documented[name] == expected, f"{heading} {name}"
    assert field_table("**Trace fields**")["timestamp"] == "required"


# The latency example: the README shows what the service answers for its inputs.


def readme_latency_example() -> dict[str, Any]:
    block = README[README.index("GET /v1/latency?from=") :]
    data = block[block.index('{"data": [') + len('{"data": [') : block.index("}],") + 1]
    row: dict[str, Any] = orjson.loads(data)
    return row


def test_the_latency_example_is_what_the_service_returns(
    client: TestClient, clickhouse: ClickHouse, clock: ManualClock
) -> None:
    """Two observations of 1 s and 3 s, one orphan and two skewed ones, as in the README."""
    at = "2026-11-22T10:00:00.000Z"
    observations = [
        observation("fast", end_time="2026-11-22T10:00:01.000Z", start_time=at),
        observation("slow", end_time="2026-11-22T10:00:03.000Z", start_time=at),
        observation("orphan", end_time=None, start_time=at),
        observation("skew-1", end_time="2026-11-22T09:59:59.000Z", start_time=at),
        observation("skew-2", end_time="2026-11-22T09:59:58.000Z", start_time=at),
    ]
    body = {"traces": [trace()], "observations": observations}
    assert client.post("/v1/ingest", json=body).status_code == 202
    run_rollup_pass(clickhouse, clock)
    params = {
        "from": "2026-11-22T00:00:00Z",
        "to": "2026-11-23T00:00:00Z",
        "level": "observation",
        "group_by": "name",
        "granularity": "day",
    }
    shown = readme_latency_example()
    for source in ("rollup", "raw"):
        [row] = client.get("/v1/latency", params={**params, "source": source}).json()["data"]
        assert set(row) == set(shown), source
        for key, value in shown.items():
            if isinstance(value, float):  # the README shows one decimal
                assert abs(row[key] - value) < 0.05, f"{source} {key}: {row[key]} != {value}"
            else:
                assert row[key] == value, f"{source} {key}"
