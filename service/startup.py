"""Opening the engine for a command: one line when it fails, and nothing printed before it.

ClickHouse failures reach us wrapped three deep (clickhouse-connect → urllib3 → the socket
error), and both libraries log a warning with a long repr before raising. While the engine
is being opened those warnings are held back, and the failure is reported as one line that
names the server and the cause found at the bottom of the chain: `could not reach
ClickHouse at http://db:8123/traces: connection refused`.
"""

from __future__ import annotations

import logging
import re
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager

from clickhouse_connect.driver.exceptions import ClickHouseError

from service.clickhouse import ClickHouse, connect, parse_target
from service.errors import EngineUnavailable
from service.migrations import apply, require_current
from service.settings import Settings

_QUIET_WHILE_OPENING = ("clickhouse_connect", "urllib3")
_HTTP_STATUS = re.compile(r"HTTP status (\d{3})")


@contextmanager
def quiet(*names: str) -> Iterator[None]:
    """Hold these loggers to ERROR inside the block."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(max(logger.getEffectiveLevel(), logging.ERROR))
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def open_engine(settings: Settings, *, prepare: bool = True) -> ClickHouse:
    """Connect and, with `prepare`, make sure the schema fits (embedded: migrate it)."""
    display = parse_target(settings.clickhouse_url).display
    with quiet(*_QUIET_WHILE_OPENING):
        try:
            ch = connect(settings)
        except EngineUnavailable as exc:
            if settings.embedded or exc.__context__ is None:
                raise
            raise EngineUnavailable(
                f"could not reach ClickHouse at {display}: {describe_cause(exc.__context__)}"
            ) from None
        try:
            if prepare and ch.embedded:
                apply(ch)
            elif prepare:
                require_current(ch)
        except (ClickHouseError, OSError) as exc:
            ch.close()
            raise EngineUnavailable(
                f"ClickHouse at {display} failed: {describe_cause(exc)}"
            ) from None
        except BaseException:
            ch.close()
            raise
    return ch


def describe_cause(exc: BaseException) -> str:
    """The root cause of a connection failure in a few words (no reprs, no URLs)."""
    chain = _chain(exc)
    for error in chain:
        if isinstance(error, ConnectionRefusedError):
            return "connection refused"
        if isinstance(error, socket.gaierror):
            return f"cannot resolve the host name ({error.strerror or error})"
        if isinstance(error, TimeoutError) or "Timeout" in type(error).__name__:
            return "timed out"
        if isinstance(error, ssl.SSLError):
            return f"TLS error ({error.reason or error})"
        if isinstance(error, ConnectionResetError):
            return "connection reset by the server"
    for error in chain:
        text = str(error)
        if "DB::Exception:" in text:
            return text.split("DB::Exception:", 1)[1].strip().splitlines()[0][:200]
    for error in chain:
        status = _HTTP_STATUS.search(str(error))
        if status:
            return f"HTTP {status.group(1)} (is that a ClickHouse HTTP endpoint?)"
    for error in chain:
        if isinstance(error, OSError) and error.strerror:
            return error.strerror.lower()
    first = str(chain[-1]).strip().splitlines()[0] if str(chain[-1]).strip() else ""
    first = re.sub(r"\s*\(for url [^)]*\)", "", first)
    return first[:200] or type(chain[-1]).__name__


def _chain(exc: BaseException) -> list[BaseException]:
    """`exc` and what it wraps, outermost first (causes, contexts, urllib3's `reason`)."""
    found: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in found:
        found.append(current)
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException):
            current = reason
        else:
            current = current.__cause__ or current.__context__
    return found
