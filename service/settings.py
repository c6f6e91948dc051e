"""Settings: the only place that reads the environment (prefix `TA_`)."""

from __future__ import annotations

import ipaddress
import re
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.errors import ConfigError

EMBEDDED_DEFAULT_URL = "chdb://./data"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Settings(BaseSettings):
    """Every threshold of the service, read from `TA_*` environment variables."""

    model_config = SettingsConfigDict(env_prefix="TA_", extra="ignore", frozen=True)

    # Engine
    clickhouse_url: str = Field(
        EMBEDDED_DEFAULT_URL,
        description="chdb://<dir> for embedded chDB, or http(s)://user:pass@host:8123/db.",
    )
    clickhouse_cluster: str | None = Field(
        None, description="Cluster name: migrations use ON CLUSTER and Replicated engines."
    )
    query_timeout_seconds: float = Field(
        30.0,
        gt=0,
        description="max_execution_time sent with every ClickHouse statement; a server's "
        "answer is awaited this long plus 5 s.",
    )
    clickhouse_connect_timeout_seconds: float = Field(
        5.0, gt=0, description="How long connecting to a ClickHouse server may take."
    )
    api_connections: int = Field(
        4,
        ge=1,
        le=64,
        description="Engine connections API requests share (embedded: statements at once).",
    )

    # Conclusion detection
    idle_seconds: int = Field(60, ge=1, description="Quiet time after which a trace concludes.")
    check_interval_seconds: float = Field(
        10.0, gt=0, description="How often the conclusion detector runs."
    )
    check_batch_limit: int = Field(
        5000, ge=1, description="Most traces one detection pass concludes; the rest wait."
    )
    shard_index: int = Field(0, ge=0, description="This replica's shard of conclusion work.")
    shard_count: int = Field(1, ge=1, description="How many replicas split conclusion work.")

    # Delivery to the analyze endpoint
    analyze_url: str | None = Field(
        None, description="Where conclusions are POSTed; unset records without delivering."
    )
    analyze_concurrency: int = Field(16, ge=1, description="Deliveries in flight at once.")
    analyze_timeout_seconds: float = Field(
        10.0, gt=0, le=600, description="Deadline for one delivery attempt, start to end."
    )
    analyze_retry_window_seconds: float = Field(
        86_400.0,
        ge=1,
        le=30 * 86_400,
        description="How long a failing delivery is retried, from its first attempt.",
    )
    analyze_max_attempts: int | None = Field(
        None, ge=1, description="Optional cap on attempts (unset: the retry window decides)."
    )
    analyze_batch_size: int = Field(
        1, ge=1, description="Conclusions per POST; above 1 the body is a JSON array."
    )
    webhook_secret: SecretStr | None = Field(
        None, description="Standard Webhooks secret (whsec_...); signs every delivery."
    )

    # Rollups
    rollup_interval_seconds: float = Field(
        30.0, gt=0, description="How often the rollup pass runs (on shard 0 only)."
    )
    rollup_read_from_raw: bool = Field(
        False, description="Safety switch: serve /v1/usage and /v1/latency from raw rows."
    )
    rollup_read_cache_mb: int = Field(
        64,
        ge=0,
        le=65536,
        description="Memory for /v1/usage and /v1/latency answers kept until the ledger or "
        "the watermark changes; 0 turns the cache off.",
    )
    max_range_days: int = Field(400, ge=1, description="Longest from..to range a read API accepts.")

    # Process
    scheduler_enabled: bool = Field(
        True, description="Kill switch for every scheduled job (detection, delivery, rollups)."
    )
    api_keys: SecretStr | None = Field(
        None, description="Comma-separated key=project pairs; key=* is an admin key."
    )
    host: str | None = Field(
        None, description="Bind address; 127.0.0.1 when no API keys are set, else 0.0.0.0."
    )
    port: int = Field(
        8080, ge=0, le=65535, description="Bind port; 0 picks a free one (see the log line)."
    )
    admin_key: SecretStr | None = Field(
        None,
        description="Admin key the CLI sends to a running `serve`; default: the first key=* "
        "of TA_API_KEYS.",
    )
    http_max_connections: int = Field(
        1000,
        ge=1,
        le=100_000,
        description="Open client connections `serve` keeps; more get a 503 and are closed.",
    )
    http_keepalive_seconds: int = Field(
        5, ge=1, le=300, description="How long a connection may sit idle before a request."
    )
    http_header_timeout_seconds: int = Field(
        10, ge=1, le=300, description="Time a client has to send a request's headers."
    )
    http_body_timeout_seconds: int = Field(
        60, ge=1, le=3600, description="Time a client has to send a request's body."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Log level."
    )
    ingest_max_bytes: int = Field(
        10 * 1024 * 1024,
        ge=1024,
        description="Largest ingest body (/v1/ingest, OTLP), also once decompressed (413 above).",
    )
    ingest_retry_after_seconds: float = Field(
        1.0,
        gt=0,
        le=30,
        description=(
            "Least Retry-After of an overloaded (503) ingest answer; longer when the queue "
            "needs longer to drain (at most 30 s)."
        ),
    )
    ingest_linger_ms: float = Field(
        10.0,
        ge=0,
        le=1000,
        description="How long the ingest writer waits for more requests to join a group insert.",
    )
    ingest_max_queue_rows: int = Field(
        200_000,
        ge=1,
        description="Rows waiting for the group insert before ingest answers 503 + Retry-After.",
    )
    ingest_max_group_rows: int = Field(
        50_000, ge=1, description="Most rows one group insert writes (whole requests)."
    )

    # Backfill jobs
    backfill_batch_size: int = Field(
        500, ge=1, le=100_000, description="Traces per chunk of a durations backfill."
    )
    backfill_pause_seconds: float = Field(
        0.2, ge=0, description="Pause between backfill chunks, yielding the engine to readers."
    )
    jobs_interval_seconds: float = Field(
        5.0, gt=0, description="How often the scheduler starts or resumes queued backfill jobs."
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("clickhouse_url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if not value.startswith(("chdb://", "http://", "https://")):
            raise ValueError("must start with chdb://, http:// or https://")
        return value

    @field_validator("clickhouse_cluster")
    @classmethod
    def _cluster_identifier(cls, value: str | None) -> str | None:
        if value is not None and not _IDENTIFIER.match(value):
            raise ValueError("must be a plain identifier (letters, digits, underscore)")
        return value

    @field_validator("analyze_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        assert value is not None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("analyze_max_attempts", mode="before")
    @classmethod
    def _unset_when_empty(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("webhook_secret")
    @classmethod
    def _standard_webhooks_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        check_webhook_secret(value.get_secret_value())
        return value

    @field_validator("api_keys")
    @classmethod
    def _key_pairs(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        parse_api_keys(value.get_secret_value())
        return value

    @field_validator("admin_key")
    @classmethod
    def _optional_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        return SecretStr(value.get_secret_value().strip())

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.shard_index >= self.shard_count:
            raise ValueError("TA_SHARD_INDEX must be below TA_SHARD_COUNT")
        if self.api_keys is None and self.host is not None and not _is_loopback(self.host):
            raise ValueError(
                "TA_HOST must be a loopback address while TA_API_KEYS is unset "
                "(set API keys to listen on other interfaces)"
            )
        return self

    @property
    def embedded(self) -> bool:
        """True when the engine is embedded chDB."""
        return self.clickhouse_url.startswith("chdb://")

    @property
    def bind_host(self) -> str:
        """Where `serve` listens."""
        if self.host is not None:
            return self.host
        return "0.0.0.0" if self.api_keys is not None else "127.0.0.1"

    def cli_admin_key(self) -> str | None:
        """The key the CLI presents to a running `serve`: TA_ADMIN_KEY, else the first `*` key."""
        if self.admin_key is not None:
            return self.admin_key.get_secret_value()
        return next((key for key, project in self.api_key_map().items() if project == "*"), None)

    def api_key_map(self) -> dict[str, str]:
        """`{key: project or "*"}` from TA_API_KEYS (empty when auth is off)."""
        if self.api_keys is None:
            return {}
        return parse_api_keys(self.api_keys.get_secret_value())


def parse_api_keys(raw: str) -> dict[str, str]:
    """Parse `k1=acme,k0=*`; the error never repeats a key."""
    keys: dict[str, str] = {}
    positions: dict[str, int] = {}
    for position, pair in enumerate(p.strip() for p in raw.split(",")):
        if not pair:
            continue
        key, sep, project = pair.partition("=")
        if not sep or not key.strip() or not project.strip():
            raise ValueError(f"entry {position + 1} is not key=project (or key=*)")
        key = key.strip()
        if key in keys:
            raise ValueError(
                f"entry {position + 1} repeats the key of entry {positions[key] + 1}; "
                "every key must be unique"
            )
        keys[key], positions[key] = project.strip(), position
    if not keys:
        raise ValueError("no key=project pairs found")
    return keys


_BASE64 = re.compile(r"^[A-Za-z0-9+/]+={0,2}$")


def check_webhook_secret(raw: str) -> None:
    """Raise ValueError unless `raw` is a Standard Webhooks secret: `whsec_` + base64 key.

    Stricter than the `standardwebhooks` package, which skips characters that are not
    base64 and so would sign with a different key than the receiver holds. The message
    never repeats the secret.
    """
    from standardwebhooks import Webhook

    key = raw.strip().removeprefix("whsec_")
    if not _BASE64.match(key):
        raise ValueError("must be whsec_ followed by a base64 key (Standard Webhooks)")
    try:
        Webhook(raw.strip())
    except Exception:
        raise ValueError(
            "must be whsec_ followed by a base64 key (Standard Webhooks); this one does not decode"
        ) from None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment; a bad value raises a one-line `ConfigError`."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from None


def describe_validation_error(exc: ValidationError) -> str:
    """One line naming the first bad variable, never echoing a secret."""
    error = exc.errors()[0]
    field = str(error["loc"][0]) if error["loc"] else ""
    message = str(error["msg"]).removeprefix("Value error, ")
    if not field:
        return message
    variable = f"TA_{field.upper()}"
    if field in ("api_keys", "webhook_secret", "admin_key"):
        return f"{variable}: {message}"
    value = error.get("input")
    shown = f" (got {value!r})" if isinstance(value, str | int | float) else ""
    return f"{variable}: {message}{shown}"
