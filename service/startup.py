"""Opening the engine for a command: one line when it fails, and nothing printed before it.

ClickHouse failures reach us wrapped three deep (clickhouse-connect → urllib3 → the socket
error), and both libraries log a warning with a long repr before raising. While the engine
is being opened those warnings are held back; `connect` reports a failure as one line that
names the server and the cause at the bottom of the chain (`service.clickhouse.
describe_error`): `could not reach ClickHouse at http://db:8123/traces: connection refused`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from clickhouse_connect.driver.exceptions import ClickHouseError

from service.clickhouse import ClickHouse, connect, describe_error, parse_target
from service.errors import EngineUnavailable
from service.migrations import apply, require_current
from service.settings import Settings

_QUIET_WHILE_OPENING = ("clickhouse_connect", "urllib3")


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
        ch = connect(settings)  # its failures are already one line (EngineUnavailable)
        try:
            if prepare and ch.embedded:
                apply(ch)
            elif prepare:
                require_current(ch)
        except (ClickHouseError, OSError) as exc:
            ch.close()
            raise EngineUnavailable(
                f"ClickHouse at {display} failed: {describe_error(exc)}"
            ) from None
        except BaseException:
            ch.close()
            raise
    return ch
