"""ClickHouse access: one client factory (embedded chDB or a server) and named queries.

Every statement the service runs lives in `queries/` and is loaded by name; values reach
SQL only as server-side parameters (`{name:Type}`). Every query carries
`max_execution_time` so nothing runs unbounded.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from service.settings import Settings

log = logging.getLogger(__name__)

QueryObserver = Callable[[str, float], None]


class EngineUnavailable(RuntimeError):
    """ClickHouse could not be opened or reached; the message is one line for an operator."""


@dataclass(frozen=True)
class Target:
    """Where the data lives, parsed from TA_CLICKHOUSE_URL (never logged with its password)."""

    embedded_path: Path | None
    url: str

    @property
    def display(self) -> str:
        if self.embedded_path is not None:
            return f"chdb://{self.embedded_path}"
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{host}{port}{parts.path}"


def parse_target(url: str) -> Target:
    """Split TA_CLICKHOUSE_URL into an embedded directory or a server URL."""
    if url.startswith("chdb://"):
        raw = url.removeprefix("chdb://") or "./data"
        return Target(embedded_path=Path(raw).expanduser().resolve(), url=url)
    return Target(embedded_path=None, url=url)


@cache
def _queries_root() -> Path:
    packaged = resources.files("service") / "queries"
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parent.parent / "queries"


def queries_root() -> Path:
    """The folder holding every .sql file (inside the wheel, or the source checkout)."""
    return _queries_root()


# `{{rollups/measured}}` in a query file (outside comment lines) stands for that file's
# text, its leading comment lines dropped: one definition of a subquery or expression list
# shared by several statements.
_INCLUDE = re.compile(r"\{\{([a-z0-9_/]+)\}\}")


@cache
def load_query(name: str) -> str:
    """The text of `queries/<name>.sql`, with `{{other/name}}` includes expanded."""
    path = _queries_root() / f"{name}.sql"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KeyError(f"no query named {name!r} under {_queries_root()}") from None
    lines = [
        line
        if line.lstrip().startswith("--")
        else _INCLUDE.sub(lambda match: _fragment(match.group(1), name), line)
        for line in text.splitlines()
    ]
    return "\n".join(lines) + ("\n" if text.endswith("\n") else "")


def _fragment(name: str, included_by: str) -> str:
    if name == included_by:
        raise KeyError(f"query {name!r} includes itself")
    lines = load_query(name).splitlines()
    while lines and lines[0].lstrip().startswith("--"):
        lines.pop(0)
    return "\n".join(lines).strip()


class _EmbeddedLock:
    """An advisory lock on an embedded data directory, shared by clients in this process.

    chDB lets one process at a time open a directory; a second process would fail deep in
    the engine with an unhelpful message. Holding our own lock file lets us say which
    directory is busy, and by whom, before touching the engine.
    """

    _held: ClassVar[dict[Path, tuple[int, int]]] = {}
    _guard: ClassVar[threading.Lock] = threading.Lock()

    @classmethod
    def acquire(cls, path: Path) -> None:
        with cls._guard:
            if path in cls._held:
                fd, count = cls._held[path]
                cls._held[path] = (fd, count + 1)
                return
            path.mkdir(parents=True, exist_ok=True)
            lock_file = path / ".trace-analytics.lock"
            fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise EngineUnavailable(
                    f"embedded ClickHouse data directory {path} is in use by another process "
                    f"(pid {holder}); stop it, or set TA_CLICKHOUSE_URL to another chdb:// "
                    "directory or a ClickHouse server"
                ) from None
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode())
            cls._held[path] = (fd, 1)

    @classmethod
    def release(cls, path: Path) -> None:
        with cls._guard:
            if path not in cls._held:
                return
            fd, count = cls._held[path]
            if count > 1:
                cls._held[path] = (fd, count - 1)
                return
            del cls._held[path]
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


class ClickHouse:
    """A thin layer over a clickhouse-connect client: named queries, timing, settings."""

    def __init__(
        self,
        client: Client,
        target: Target,
        *,
        cluster: str | None = None,
        query_timeout_seconds: float = 30.0,
    ) -> None:
        self.client = client
        self.target = target
        self.cluster = cluster
        self.database: str = client.database or "default"
        self._settings = {"max_execution_time": query_timeout_seconds}
        self._observers: list[QueryObserver] = []
        self._closed = False

    @property
    def embedded(self) -> bool:
        return self.target.embedded_path is not None

    def add_observer(self, observer: QueryObserver) -> None:
        """Call `observer(query_name, seconds)` after every query (metrics)."""
        self._observers.append(observer)

    @contextmanager
    def _timed(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - started
            for observer in self._observers:
                observer(name, elapsed)

    def query_rows(
        self, name: str, parameters: dict[str, Any] | None = None, *, sql: str | None = None
    ) -> list[tuple[Any, ...]]:
        """Rows of the named query (or of `sql`, timed under `name`)."""
        text = sql if sql is not None else load_query(name)
        with self._timed(name):
            result = self.client.query(text, parameters=parameters, settings=self._settings)
        return [tuple(row) for row in result.result_rows]

    def query_dicts(
        self, name: str, parameters: dict[str, Any] | None = None, *, sql: str | None = None
    ) -> list[dict[str, Any]]:
        """Rows of the named query as dicts keyed by column name."""
        text = sql if sql is not None else load_query(name)
        with self._timed(name):
            result = self.client.query(text, parameters=parameters, settings=self._settings)
        columns = result.column_names
        return [dict(zip(columns, row, strict=True)) for row in result.result_rows]

    def command(
        self, name: str, parameters: dict[str, Any] | None = None, *, sql: str | None = None
    ) -> None:
        """Run a statement that returns no rows (INSERT ... SELECT, DDL)."""
        text = sql if sql is not None else load_query(name)
        with self._timed(name):
            self.client.command(text, parameters=parameters, settings=self._settings)

    def insert(
        self, table: str, columns: Sequence[str], data: Sequence[Sequence[Any]], *, by_column: bool
    ) -> None:
        """Insert rows (or columns when `by_column`) into `table`."""
        with self._timed(f"insert:{table}"):
            self.client.insert(
                table,
                data,
                column_names=list(columns),
                column_oriented=by_column,
                settings=self._settings,
            )

    def ping(self) -> bool:
        """True when the engine answers a trivial query."""
        try:
            self.query_rows("ping", sql="SELECT 1")
        except (ClickHouseError, OSError):
            return False
        return True

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.client.close()
        if self.target.embedded_path is not None:
            _EmbeddedLock.release(self.target.embedded_path)


def connect(settings: Settings) -> ClickHouse:
    """Open ClickHouse as TA_CLICKHOUSE_URL says; raises `EngineUnavailable` with one line."""
    target = parse_target(settings.clickhouse_url)
    if target.embedded_path is not None:
        return _connect_embedded(target, settings)
    return _connect_server(target, settings)


def _connect_embedded(target: Target, settings: Settings) -> ClickHouse:
    path = target.embedded_path
    assert path is not None
    _EmbeddedLock.acquire(path)
    try:
        client = clickhouse_connect.get_client(dsn=f"chdb://{path}", tz_mode="aware")
    except ClickHouseError as exc:
        _EmbeddedLock.release(path)
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise EngineUnavailable(
            f"could not open embedded ClickHouse at {path}: {first_line}"
        ) from None
    return ClickHouse(
        client,
        target,
        cluster=settings.clickhouse_cluster,
        query_timeout_seconds=settings.query_timeout_seconds,
    )


def _connect_server(target: Target, settings: Settings) -> ClickHouse:
    parts = urlsplit(target.url)
    database = parts.path.strip("/") or "default"
    try:
        client = clickhouse_connect.get_client(
            host=parts.hostname or "localhost",
            port=parts.port or (8443 if parts.scheme == "https" else 8123),
            username=unquote(parts.username or "default"),
            password=unquote(parts.password or ""),
            database=database,
            secure=parts.scheme == "https",
            client_name="trace-analytics",
            autogenerate_session_id=False,
            tz_mode="aware",
        )
    except (ClickHouseError, OSError) as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise EngineUnavailable(
            f"could not reach ClickHouse at {target.display}: {first_line}"
        ) from None
    return ClickHouse(
        client,
        target,
        cluster=settings.clickhouse_cluster,
        query_timeout_seconds=settings.query_timeout_seconds,
    )
