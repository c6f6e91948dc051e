"""Every exception the service raises on purpose, in one tree.

ServiceError
 ├── ConfigError              a bad TA_* value; one line naming the variable (exit 2)
 ├── EngineUnavailable        ClickHouse could not be opened or reached (exit 2, /readyz 503)
 │    └── DirectoryInUse      another process holds the embedded data directory
 ├── CannotListen             `serve` could not bind its address (exit 2, before any work)
 ├── MigrationError           the schema and this build disagree (exit 2, /readyz 503)
 ├── JobFailed                a background job broke one of its own invariants
 ├── UsageError               a command line that asks for something impossible (exit 2)
 └── ClientError              the request is at fault; carries an HTTP status and a code
      ├── InvalidInput               400, `field: message`
      │    ├── InvalidBatch          400 invalid_batch       (POST /v1/ingest bodies)
      │    ├── InvalidParameter      400 invalid_parameter   (query and path parameters)
      │    ├── InvalidDefinition     400 invalid_definition  (duration definitions)
      │    └── InvalidBody           400 invalid_body        (other JSON bodies)
      ├── Unauthorized               401 unauthorized
      ├── ForbiddenProject           403 forbidden_project
      ├── AdminOnly                  403 admin_only          (an admin endpoint, a project key)
      ├── NotFound                   404 not_found
      ├── Conflict                   409 conflict
      ├── PayloadTooLarge            413 payload_too_large
      ├── UnsupportedMediaType       415 unsupported_media_type
      └── Overloaded                 503 overloaded, with `retry_after` seconds
           └── WriteFailed           503 write_failed: the engine refused a write; retry

`service.api.app` maps every `ClientError` to `{"error": {"code", "message"}}` with its
status in one exception handler, so code anywhere below the API just raises. The message of
an `InvalidInput` starts with the field or parameter at fault, e.g.
`observations[3].start_time: Input should be a valid datetime`.
"""

from __future__ import annotations

import math
from pathlib import Path

from pydantic import ValidationError


class ServiceError(Exception):
    """Root of every error the service raises on purpose."""


class ConfigError(ServiceError, ValueError):
    """A bad `TA_*` value; the message is one line that names the variable."""


class EngineUnavailable(ServiceError, RuntimeError):
    """ClickHouse could not be opened or reached; the message is one line for an operator."""


class DirectoryInUse(EngineUnavailable):
    """Another process holds the embedded data directory (`pid` when it recorded one)."""

    def __init__(self, message: str, *, path: Path, pid: int | None) -> None:
        super().__init__(message)
        self.path = path
        self.pid = pid


class CannotListen(ServiceError, RuntimeError):
    """`serve` could not bind its address (port in use, no permission); one line, exit 2."""


class MigrationError(ServiceError, RuntimeError):
    """The migrations on disk and in the database disagree; the message says how."""


class JobFailed(ServiceError, RuntimeError):
    """A job's own invariant broke (e.g. its cursor did not advance)."""


class UsageError(ServiceError, ValueError):
    """A command line that names something impossible; the message says which option."""


class ClientError(ServiceError):
    """An error the caller should see: an HTTP status, a stable code and a message."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(ClientError):
    """Something the caller sent is invalid; `field` names it (empty: the whole body)."""

    code = "invalid_input"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.reason = message


class InvalidBatch(InvalidInput):
    """An ingest batch failed validation; nothing of it was written."""

    code = "invalid_batch"


class InvalidParameter(InvalidInput):
    """A query or path parameter is wrong."""

    code = "invalid_parameter"


class InvalidDefinition(InvalidInput):
    """A duration definition failed validation."""

    code = "invalid_definition"


class InvalidBody(InvalidInput):
    """A JSON request body (other than ingest batches and definitions) failed validation."""

    code = "invalid_body"


class Unauthorized(ClientError):
    """No key, or a key that is not configured."""

    status = 401
    code = "unauthorized"


class ForbiddenProject(ClientError):
    """A project key tried to write or name another project's data."""

    status = 403
    code = "forbidden_project"


class AdminOnly(ClientError):
    """A project key called an endpoint that needs an admin key (`key=*`)."""

    status = 403
    code = "admin_only"


class NotFound(ClientError):
    """The resource does not exist, or belongs to a project the caller may not see."""

    status = 404
    code = "not_found"


class Conflict(ClientError):
    """The resource already exists."""

    status = 409
    code = "conflict"


class PayloadTooLarge(ClientError):
    """The body is over its size cap (before or after decompression)."""

    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(ClientError):
    """A Content-Type or Content-Encoding the endpoint does not take."""

    status = 415
    code = "unsupported_media_type"


class Overloaded(ClientError):
    """The service cannot take more work right now; retry after `retry_after` seconds."""

    status = 503
    code = "overloaded"

    def __init__(
        self, message: str = "the write path is busy; retry later", retry_after: float = 1.0
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    @property
    def retry_after_header(self) -> str:
        """`Retry-After` in whole seconds (at least 1), as HTTP wants it."""
        return str(max(1, math.ceil(self.retry_after)))


class WriteFailed(Overloaded):
    """The engine failed a write; nothing of the request is acknowledged and a retry is exact.

    A 503 with Retry-After rather than a 500, so SDKs and OTLP exporters retry it.
    """

    code = "write_failed"


def field_path(loc: tuple[int | str, ...]) -> str:
    """`("observations", 3, "start_time")` → `observations[3].start_time`."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def first_validation_error(
    exc: ValidationError, *, skip: frozenset[str] = frozenset()
) -> tuple[str, str]:
    """`(field path, message)` of pydantic's first error; the one formatter for every model.

    `skip` drops path parts that are not fields (a discriminated union's tag); a field-level
    validator that raised `FieldError` contributes its own, deeper field. Malformed JSON is
    reported against `body`.
    """
    error = exc.errors(include_url=False)[0]
    if error["type"] == "json_invalid":
        detail = str(error["msg"]).removeprefix("Invalid JSON: ")
        return "body", f"not valid JSON ({detail})"
    loc = tuple(part for part in error["loc"] if not (isinstance(part, str) and part in skip))
    message = str(error["msg"]).removeprefix("Value error, ")
    raised = (error.get("ctx") or {}).get("error")
    if isinstance(raised, FieldError):
        loc = (*loc, *raised.field.split("."))
        message = raised.reason
    return field_path(loc) or "body", message


class FieldError(ValueError):
    """Raised inside a pydantic validator to name a field deeper than the one validated."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
