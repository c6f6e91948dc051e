"""The Prometheus metric objects, all on a registry passed in (tests build their own)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    """Every metric the service exports. Feature packages add theirs here, by name."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.http_requests = Counter(
            "ta_http_requests_total",
            "HTTP requests by route template, method and status.",
            ["route", "method", "status"],
            registry=r,
        )
        self.http_latency = Histogram(
            "ta_http_request_duration_seconds",
            "HTTP request latency by route template and method.",
            ["route", "method"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.ingested_rows = Counter(
            "ta_ingested_rows_total",
            "Rows written through POST /v1/ingest, by table.",
            ["table"],
            registry=r,
        )
        self.ingest_rejected = Counter(
            "ta_ingest_rejected_batches_total",
            "Ingest batches rejected before writing, by error code.",
            ["code"],
            registry=r,
        )
        self.clickhouse_latency = Histogram(
            "ta_clickhouse_query_duration_seconds",
            "ClickHouse statement latency by query name.",
            ["query"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.schema_up_to_date = Gauge(
            "ta_schema_up_to_date",
            "1 when the database schema matches this build's migrations.",
            registry=r,
        )

    def observe_query(self, name: str, seconds: float) -> None:
        """A `ClickHouse` observer: one histogram sample per statement."""
        self.clickhouse_latency.labels(query=name).observe(seconds)
