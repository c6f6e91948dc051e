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
        self.http_connections = Gauge(
            "ta_http_connections",
            "Open client connections (at most TA_HTTP_MAX_CONNECTIONS).",
            registry=r,
        )
        self.http_connections_dropped = Counter(
            "ta_http_connections_dropped_total",
            "Client connections closed by a limit, by reason (over_limit, idle, "
            "header_timeout, body_timeout, headers_too_large).",
            ["reason"],
            registry=r,
        )
        self.ingested_rows = Counter(
            "ta_ingested_rows_total",
            "Rows written through ingest (POST /v1/ingest and OTLP), by table.",
            ["table"],
            registry=r,
        )
        self.ingest_rejected = Counter(
            "ta_ingest_rejected_batches_total",
            "Ingest batches rejected before writing, by error code (overloaded: queue full).",
            ["code"],
            registry=r,
        )
        self.ingest_queue_rows = Gauge(
            "ta_ingest_queue_rows",
            "Rows accepted by ingest endpoints and waiting for the group insert.",
            registry=r,
        )
        self.ingest_queue_requests = Gauge(
            "ta_ingest_queue_requests",
            "Ingest requests waiting for the group insert.",
            registry=r,
        )
        self.ingest_group_requests = Histogram(
            "ta_ingest_group_requests",
            "Requests written together by one group insert.",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
            registry=r,
        )
        self.ingest_group_rows = Histogram(
            "ta_ingest_group_rows",
            "Rows (traces and observations) written by one group insert.",
            buckets=(10, 100, 500, 1000, 2500, 5000, 10_000, 25_000, 50_000, 100_000),
            registry=r,
        )
        self.ingest_flush_duration = Histogram(
            "ta_ingest_flush_duration_seconds",
            "Time to write one ingest group (both table inserts).",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.ingest_flush_failures = Counter(
            "ta_ingest_flush_failures_total",
            "Ingest group inserts that failed (each request of the group got a 503).",
            registry=r,
        )
        self.otlp_rejected_spans = Counter(
            "ta_otlp_rejected_spans_total",
            "OTLP spans rejected as invalid (answered as a partial success).",
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
        # Conclusions (detection and delivery).
        self.conclusion_passes = Counter(
            "ta_conclusion_passes_total",
            "Conclusion passes completed without an error, by pass (detect, deliver).",
            # Not `job`: Prometheus reserves that label for the scrape target.
            ["pass"],
            registry=r,
        )
        self.conclusion_pass_duration = Histogram(
            "ta_conclusion_pass_duration_seconds",
            "Duration of one conclusion pass, by pass (detect, deliver).",
            ["pass"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.conclusion_pass_failures = Counter(
            "ta_conclusion_pass_failures_total",
            "Conclusion passes that raised (nothing they had not written is lost), by pass.",
            ["pass"],
            registry=r,
        )
        self.conclusion_consecutive_failures = Gauge(
            "ta_conclusion_consecutive_pass_failures",
            "Conclusion passes that failed in a row, by pass (0 after a successful one).",
            ["pass"],
            registry=r,
        )
        self.conclusion_last_success = Gauge(
            "ta_conclusion_last_success_timestamp_seconds",
            "Unix time of the last successful conclusion pass, by pass (0: none yet).",
            ["pass"],
            registry=r,
        )
        for name in ("detect", "deliver"):  # export every series from the start
            self.conclusion_pass_failures.labels(name)
            self.conclusion_consecutive_failures.labels(name)
            self.conclusion_last_success.labels(name)
        self.traces_concluded = Counter(
            "ta_traces_concluded_total",
            "Conclusions recorded (each revision counts once).",
            registry=r,
        )
        self.detection_lag = Histogram(
            "ta_conclusion_detection_lag_seconds",
            "Time from a trace becoming eligible (last activity + idle) to its conclusion.",
            buckets=(0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800),
            registry=r,
        )
        self.deliveries = Counter(
            "ta_deliveries_total",
            "Conclusion delivery attempts by outcome (delivered, retry, dead).",
            ["outcome"],
            registry=r,
        )
        self.delivery_latency = Histogram(
            "ta_delivery_duration_seconds",
            "Latency of one POST to the analyze endpoint.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.deliveries_pending = Gauge(
            "ta_deliveries_pending",
            "Deliveries waiting for a first or next attempt, retries included (refreshed each "
            "delivery pass).",
            registry=r,
        )
        self.deliveries_dead = Gauge(
            "ta_deliveries_dead",
            "Dead deliveries awaiting a redrive (refreshed each delivery pass).",
            registry=r,
        )
        # Scheduler.
        self.scheduler_skipped_runs = Counter(
            "ta_scheduler_skipped_runs_total",
            "Scheduled runs skipped because the same pass was still running (the job's previous "
            "run, or the pass asked for over the admin API), by job id.",
            # Not `job`: Prometheus reserves that label for the scrape target.
            ["job_id"],
            registry=r,
        )
        self.jobs = Gauge(
            "ta_jobs",
            "Background jobs (backfills) by status (refreshed each jobs pass and /readyz).",
            ["status"],
            registry=r,
        )
        self.job_rows_processed = Gauge(
            "ta_job_rows_processed",
            "Rows processed by the latest job of each kind.",
            ["kind"],
            registry=r,
        )
        self.job_rows_total = Gauge(
            "ta_job_rows_total",
            "Rows the latest job of each kind covers (counted at its snapshot).",
            ["kind"],
            registry=r,
        )
        self.job_rate = Gauge(
            "ta_job_rows_per_second",
            "Processing rate of the running job of each kind (0 when none runs).",
            ["kind"],
            registry=r,
        )
        # Rollups.
        self.rollup_dirty_buckets = Gauge(
            "ta_rollup_dirty_buckets",
            "(project, hour) rollup buckets changed since the watermark, awaiting a pass.",
            registry=r,
        )
        self.rollup_pass_duration = Histogram(
            "ta_rollup_pass_duration_seconds",
            "Duration of successful rollup passes.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.rollup_pass_failures = Counter(
            "ta_rollup_pass_failures_total",
            "Rollup passes that failed (their buckets stay dirty).",
            registry=r,
        )
        self.rollup_lag = Gauge(
            "ta_rollup_lag_seconds",
            "Now minus the rollup watermark (refreshed each pass and each rollup read).",
            registry=r,
        )
        self.rollup_read_cache = Counter(
            "ta_rollup_read_cache_total",
            "Rollup reads by how their answer was found: kept (hit), computed (miss), or "
            "computed on request (refresh: Cache-Control: no-cache).",
            ["outcome"],
            registry=r,
        )

    def observe_query(self, name: str, seconds: float) -> None:
        """A `ClickHouse` observer: one histogram sample per statement."""
        self.clickhouse_latency.labels(query=name).observe(seconds)
