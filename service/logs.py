"""Structured logs: one JSON object per line, level from TA_LOG_LEVEL, no secrets.

Every line is `{"ts", "level", "logger", "event", ...}` plus the call's `extra={}` fields
(`trace_id`, `project_id`, `attempt`, ...). Two filters sit on the handler, so they see
every record whichever logger emitted it:

- `RequestIdFilter` adds `request_id` to every line emitted while a request is handled. The
  request middleware sets `request_id_var`; Starlette copies the context into its thread
  pool, so whatever a sync endpoint logs is tagged too.
- `RedactingFilter` replaces the configured secrets (API keys, webhook secret, ClickHouse
  password) with `***` in the message, the extra fields and the traceback, in case one
  ever reaches a log call (an exception message quoting a URL, say).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit

import orjson

from service.settings import Settings
from service.times import format_time

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}
# Extras other libraries attach for their own console formatters, not events: uvicorn's
# `color_message` is the message again with ANSI escapes.
_NOT_FIELDS = _STANDARD | {"color_message"}

REDACTED = "***"
# Shorter values would mask ordinary words in every line; nobody should use such a key.
MIN_SECRET_LENGTH = 4

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)


@contextmanager
def request_context(request_id: str) -> Iterator[None]:
    """Tag every log line emitted inside the block (and threads it starts) with `request_id`."""
    token = request_id_var.set(request_id)
    try:
        yield
    finally:
        request_id_var.reset(token)


class RequestIdFilter(logging.Filter):
    """Adds the current request's id to a record that has none."""

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = request_id_var.get()
        if request_id is not None and getattr(record, "request_id", None) is None:
            record.request_id = request_id
        return True


class RedactingFilter(logging.Filter):
    """Masks each configured secret wherever it appears in a record."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        # Longest first, so a secret that contains another is masked whole.
        unique = {s for s in secrets if len(s) >= MIN_SECRET_LENGTH}
        self._secrets = sorted(unique, key=len, reverse=True)

    def redact(self, text: str) -> str:
        """`text` with every secret replaced by `***`."""
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        message = record.getMessage()
        clean = self.redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        for key, value in list(record.__dict__.items()):
            if key not in _STANDARD and not key.startswith("_"):
                record.__dict__[key] = self._scrub(value)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True

    def _scrub(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, list | tuple | set | frozenset):
            return [self._scrub(item) for item in value]
        if isinstance(value, dict):
            return {key: self._scrub(item) for key, item in value.items()}
        if value is None or isinstance(value, bool | int | float):
            return value
        text = str(value)
        clean = self.redact(text)
        return clean if clean != text else value


def secret_values(settings: Settings) -> list[str]:
    """Every secret in the configuration: API keys, webhook secret, ClickHouse password."""
    secrets = list(settings.api_key_map())
    if settings.admin_key is not None:
        secrets.append(settings.admin_key.get_secret_value())
    if settings.webhook_secret is not None:
        webhook = settings.webhook_secret.get_secret_value()
        secrets += [webhook, webhook.removeprefix("whsec_")]
    password = urlsplit(settings.clickhouse_url).password
    if password:
        secrets += [password, unquote(password)]
    return secrets


class JsonFormatter(logging.Formatter):
    """`{"ts", "level", "logger", "event", ...extra}`; extra fields come from `extra={}`."""

    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, Any] = {
            "ts": format_time(datetime.fromtimestamp(record.created, UTC)),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _NOT_FIELDS and not key.startswith("_"):
                event[key] = value
        if record.exc_text:
            event["exception"] = record.exc_text
        elif record.exc_info:
            event["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            event["stack"] = record.stack_info
        return orjson.dumps(event, default=str).decode()


class _ServiceHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Our stderr handler, marked so reconfiguring replaces it and leaves others alone."""


def build_handler(secrets: Iterable[str] = (), stream: Any = None) -> logging.Handler:
    """A handler writing JSON lines, tagging request ids and masking `secrets`."""
    handler = _ServiceHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    handler.addFilter(RedactingFilter(secrets))
    return handler


def configure_logging(level: str, secrets: Iterable[str] = ()) -> None:
    """Send every logger's events to stderr as JSON lines at `level`, masking `secrets`."""
    handler = build_handler(secrets)
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if not isinstance(h, _ServiceHandler)]
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    quiet = max(logging.getLevelName(level), logging.WARNING)
    logging.getLogger("apscheduler").setLevel(quiet)
    # httpx logs every request URL at INFO; an analyze URL may carry a token in its query.
    logging.getLogger("httpx").setLevel(quiet)
    logging.getLogger("httpcore").setLevel(quiet)
    # urllib3 (under clickhouse-connect) warns before each retry, quoting a long repr; the
    # failure itself is reported once, by whoever called ClickHouse.
    logging.getLogger("urllib3").setLevel(max(logging.getLevelName(level), logging.ERROR))
