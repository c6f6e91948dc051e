"""ClickHouse access: one client factory (embedded chDB or a server), roles, named queries.

Every statement the service runs lives in `queries/` and is loaded by name; values reach
SQL only as server-side parameters (`{name:Type}`). Every statement carries
`max_execution_time` so nothing runs unbounded, and runs on the engine of a role
(`ClickHouse.role`, `service.engine_roles`) so background work never queues API reads.
On a server, connecting is bounded too: TA_CLICKHOUSE_CONNECT_TIMEOUT_SECONDS to connect,
TA_QUERY_TIMEOUT_SECONDS plus a margin to answer.
"""

from __future__ import annotations

import fcntl
import logging
import math
import os
import queue
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache, partial
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar, TypeVar
from urllib.parse import unquote, urlsplit

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError
from clickhouse_connect.driver.httputil import check_env_proxy, get_pool_manager
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)

from service.engine_roles import ADMIN, API, ROLES, StatementSettings, statement_settings
from service.engine_version import version_problem
from service.errors import DirectoryInUse, EngineUnavailable, Overloaded
from service.settings import Settings

log = logging.getLogger(__name__)

QueryObserver = Callable[[str, float], None]


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


# Every key list a statement binds is cut to this size. clickhouse-connect sends a bind
# parameter above 4 KiB as an HTTP form field, and a ClickHouse server refuses form fields
# above `http_max_field_value_size` (128 KiB by default): 64 KiB of key text leaves room for
# quoting and escaping whatever the ids hold.
MAX_KEYS_PER_STATEMENT = 1000
MAX_KEY_BYTES_PER_STATEMENT = 64 * 1024

K = TypeVar("K", bound=tuple[str, ...])


def key_chunks(keys: Sequence[K]) -> Iterator[list[K]]:
    """`keys` in order, cut so no statement binds more than the bounds above."""
    chunk: list[K] = []
    size = 0
    for key in keys:
        weight = sum(len(part.encode()) + 8 for part in key)
        if chunk and (
            len(chunk) >= MAX_KEYS_PER_STATEMENT or size + weight > MAX_KEY_BYTES_PER_STATEMENT
        ):
            yield chunk
            chunk, size = [], 0
        chunk.append(key)
        size += weight
    if chunk:
        yield chunk


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
                raise DirectoryInUse(
                    f"embedded ClickHouse data directory {path} is in use by another process "
                    f"(pid {holder}); stop it, or set TA_CLICKHOUSE_URL to another chdb:// "
                    "directory or a ClickHouse server",
                    path=path,
                    pid=int(holder) if holder.isdigit() else None,
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


class _Connections:
    """The clients one role runs statements on, checked out one statement at a time.

    Embedded: up to `size` chDB connections, opened when first needed (chDB runs one
    statement at a time per connection, so `size` is the role's parallelism). On a server
    the HTTP client is thread-safe: `shared` hands the same client to every caller.
    """

    def __init__(self, opener: Callable[[], Client], size: int, *, shared: bool = False) -> None:
        self._opener = opener
        self._size = size
        self._shared = shared
        self._idle: queue.LifoQueue[Client] = queue.LifoQueue()
        self._opened: list[Client] = []
        self._lock = threading.Lock()
        self._closed = False

    @property
    def opened(self) -> int:
        """How many clients this role has opened so far."""
        return len(self._opened)

    def _open(self) -> Client:
        client = self._opener()
        self._opened.append(client)
        return client

    def adopt(self, client: Client) -> None:
        """Take `client`, opened elsewhere, as this role's first connection."""
        with self._lock:
            self._opened.append(client)
        if not self._shared:
            self._idle.put(client)

    @contextmanager
    def client(self, wait_seconds: float) -> Iterator[Client]:
        """A client for one statement; waits up to `wait_seconds` when all are busy."""
        if self._shared:
            with self._lock:
                if self._closed:
                    raise EngineUnavailable("the ClickHouse connection is closed")
                client = self._opened[0] if self._opened else self._open()
            yield client
            return
        client = self._checkout(wait_seconds)
        try:
            yield client
        finally:
            self._idle.put(client)

    def _checkout(self, wait_seconds: float) -> Client:
        if self._closed:
            raise EngineUnavailable("the ClickHouse connection is closed")
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            if self._closed:
                raise EngineUnavailable("the ClickHouse connection is closed")
            if len(self._opened) < self._size:
                return self._open()
        try:
            return self._idle.get(timeout=wait_seconds)
        except queue.Empty:
            raise Overloaded(
                f"all {self._size} ClickHouse connections of this role stayed busy for "
                f"{wait_seconds:g} s",
                retry_after=1.0,
            ) from None

    def close(self) -> None:
        with self._lock:
            self._closed = True
            opened, self._opened = self._opened, []
        while not self._idle.empty():
            self._idle.get_nowait()
        for client in opened:
            client.close()


class _Family:
    """What an engine and its roles share: target, limits, observers, the opened roles."""

    def __init__(
        self,
        target: Target,
        settings: Settings,
        open_client: Callable[[str | None], Client],
        *,
        on_close: Callable[[], None],
    ) -> None:
        self.target = target
        self.cluster = settings.clickhouse_cluster
        self.timeout = settings.query_timeout_seconds
        self.api_connections = settings.api_connections
        self.open_client = open_client
        self.on_close = on_close
        self.observers: list[QueryObserver] = []
        self.roles: dict[str, ClickHouse] = {}
        self.lock = threading.Lock()
        self.closed = False

    @property
    def server(self) -> bool:
        return self.target.embedded_path is None

    def settings_for(self, role: str) -> StatementSettings:
        return statement_settings(
            role, server=self.server, cluster=self.cluster, timeout_seconds=self.timeout
        )


class ClickHouse:
    """A thin layer over clickhouse-connect: named queries, timing, settings, engine roles.

    `connect()` returns the `admin` engine; `role(name)` returns the engine of another role
    (see `service.engine_roles`): its own connections in embedded mode, the same pooled HTTP
    client (or, for background roles, a client with its own server session) on a server.
    Every role shares the target, the statement time bound and the observers, and closes
    with the engine that `connect()` returned.
    """

    def __init__(
        self,
        family: _Family,
        role: str,
        connections: _Connections,
        database: str,
    ) -> None:
        self._family = family
        self.role_name = role
        self._connections = connections
        self._settings = family.settings_for(role)
        self.target = family.target
        self.cluster = family.cluster
        self.database = database

    @property
    def embedded(self) -> bool:
        return self.target.embedded_path is not None

    @property
    def statement_settings(self) -> StatementSettings:
        """The settings this role sends (see `service.engine_roles`)."""
        return self._settings

    @property
    def connections_opened(self) -> int:
        """How many engine connections (clients) this role has opened so far."""
        return self._connections.opened

    def role(self, name: str) -> ClickHouse:
        """The engine of role `name`, opened on first use and cached (one per name)."""
        family = self._family
        if name == ADMIN:
            return family.roles[ADMIN]
        with family.lock:
            if family.closed:
                raise EngineUnavailable("the ClickHouse connection is closed")
            found = family.roles.get(name)
            if found is not None:
                return found
            settings = family.settings_for(name)
            if family.server and not settings.session:
                # The HTTP client is thread-safe and pooled: share the admin engine's.
                connections = family.roles[ADMIN]._connections
            else:
                size = family.api_connections if name == API and not family.server else 1
                session = _session_id(name) if settings.session else None
                # Not shared, even on a server: a session runs one statement at a time, and a
                # second one sent meanwhile would be refused (SESSION_IS_LOCKED).
                connections = _Connections(partial(family.open_client, session), size)
            engine = ClickHouse(family, name, connections, self.database)
            family.roles[name] = engine
            return engine

    def add_observer(self, observer: QueryObserver) -> None:
        """Call `observer(query_name, seconds)` after every query of every role (metrics)."""
        self._family.observers.append(observer)

    @contextmanager
    def _statement(self, name: str) -> Iterator[Client]:
        started = time.perf_counter()
        try:
            with self._connections.client(self._family.timeout + READ_TIMEOUT_MARGIN_SECONDS) as c:
                yield c
        finally:
            elapsed = time.perf_counter() - started
            for observer in self._family.observers:
                observer(name, elapsed)

    def query_rows(
        self, name: str, parameters: dict[str, Any] | None = None, *, sql: str | None = None
    ) -> list[tuple[Any, ...]]:
        """Rows of the named query (or of `sql`, timed under `name`)."""
        text = sql if sql is not None else load_query(name)
        with self._statement(name) as client:
            result = client.query(text, parameters=parameters, settings=self._settings.for_query())
        return [tuple(row) for row in result.result_rows]

    def query_dicts(
        self, name: str, parameters: dict[str, Any] | None = None, *, sql: str | None = None
    ) -> list[dict[str, Any]]:
        """Rows of the named query as dicts keyed by column name."""
        text = sql if sql is not None else load_query(name)
        with self._statement(name) as client:
            result = client.query(text, parameters=parameters, settings=self._settings.for_query())
        columns = result.column_names
        return [dict(zip(columns, row, strict=True)) for row in result.result_rows]

    def command(
        self, name: str, parameters: dict[str, Any] | None = None, *, sql: str | None = None
    ) -> None:
        """Run a statement that returns no rows (INSERT ... SELECT, DDL)."""
        text = sql if sql is not None else load_query(name)
        with self._statement(name) as client:
            client.command(text, parameters=parameters, settings=self._settings.for_command(text))

    def insert(
        self, table: str, columns: Sequence[str], data: Sequence[Sequence[Any]], *, by_column: bool
    ) -> None:
        """Insert rows (or columns when `by_column`) into `table`."""
        with self._statement(f"insert:{table}") as client:
            client.insert(
                table,
                data,
                column_names=list(columns),
                column_oriented=by_column,
                settings=self._settings.for_insert(table),
            )

    def ping(self) -> bool:
        """True when the engine answers a trivial query."""
        try:
            self.query_rows("ping", sql="SELECT 1")
        except (ClickHouseError, OSError, EngineUnavailable, Overloaded):
            return False
        return True

    def close(self) -> None:
        """Close every role's connections; only the engine `connect()` returned does this.

        A role's engine belongs to that engine: closing it alone is a no-op, so code handed
        a role can't close the connections other roles are using.
        """
        if self.role_name != ADMIN:
            return
        family = self._family
        with family.lock:
            if family.closed:
                return
            family.closed = True
            engines = list(family.roles.values())
        closed: set[int] = set()
        # Roles first, the admin engine (whose connection opened the engine) last.
        for engine in sorted(engines, key=lambda e: e.role_name == ADMIN):
            if id(engine._connections) not in closed:
                closed.add(id(engine._connections))
                engine._connections.close()
        family.on_close()


# The client waits this long past the statement bound before giving up on an answer, so the
# server's own "timeout exceeded" error arrives first and is the one reported.
READ_TIMEOUT_MARGIN_SECONDS = 5.0


def connect(settings: Settings) -> ClickHouse:
    """Open ClickHouse as TA_CLICKHOUSE_URL says; raises `EngineUnavailable` with one line.

    Refuses an engine older than the oldest supported version (`service.engine_version`).
    """
    target = parse_target(settings.clickhouse_url)
    if target.embedded_path is not None:
        ch = _connect_embedded(target, settings)
    else:
        ch = _connect_server(target, settings)
    try:
        _require_supported_version(ch)
    except BaseException:
        ch.close()
        raise
    return ch


def _require_supported_version(ch: ClickHouse) -> None:
    try:
        [(found,)] = ch.query_rows("schema/server_version")
    except ClickHouseError as exc:
        cause = describe_error(exc)
        raise EngineUnavailable(
            f"could not read the version of ClickHouse at {ch.target.display}: {cause}"
        ) from None
    problem = version_problem(str(found))
    if problem is not None:
        raise EngineUnavailable(f"ClickHouse at {ch.target.display} {problem}")


def _start_family(
    target: Target,
    settings: Settings,
    open_client: Callable[[str | None], Client],
    first: Client,
    on_close: Callable[[], None],
) -> ClickHouse:
    family = _Family(target, settings, open_client, on_close=on_close)
    connections = _Connections(partial(open_client, None), 1, shared=family.server)
    connections.adopt(first)
    admin = ClickHouse(family, ADMIN, connections, first.database or "default")
    family.roles[ADMIN] = admin
    return admin


def _connect_embedded(target: Target, settings: Settings) -> ClickHouse:
    path = target.embedded_path
    assert path is not None
    try:  # an optional extra: a server-only install does not ship the embedded engine
        import chdb  # noqa: F401
    except ImportError:
        raise EngineUnavailable(
            f"{target.display} needs the embedded engine, which is not installed: "
            "pip install 'trace-analytics[embedded]' (or set TA_CLICKHOUSE_URL to a server)"
        ) from None
    _EmbeddedLock.acquire(path)

    def open_client(session: str | None) -> Client:
        # A chDB connection has no server session: each is its own already.
        return clickhouse_connect.get_client(dsn=f"chdb://{path}", tz_mode="aware")

    try:
        first = open_client(None)
    except ClickHouseError as exc:
        _EmbeddedLock.release(path)
        raise EngineUnavailable(
            f"could not open embedded ClickHouse at {path}: {describe_error(exc)}"
        ) from None
    return _start_family(target, settings, open_client, first, lambda: _EmbeddedLock.release(path))


def _connect_server(target: Target, settings: Settings) -> ClickHouse:
    parts = urlsplit(target.url)
    secure = parts.scheme == "https"
    host = parts.hostname or "localhost"
    port = parts.port or (8443 if secure else 8123)
    proxy = check_env_proxy("https" if secure else "http", host, port)
    # One keep-alive pool for every role: the API's connections plus one per other role.
    size = settings.api_connections + len(ROLES)
    if proxy is None:
        pool = get_pool_manager(maxsize=size)
    elif secure:
        pool = get_pool_manager(maxsize=size, https_proxy=proxy)
    else:
        pool = get_pool_manager(maxsize=size, http_proxy=proxy)
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "username": unquote(parts.username or "default"),
        "password": unquote(parts.password or ""),
        "database": parts.path.strip("/") or "default",
        "secure": secure,
        "client_name": "trace-analytics",
        "autogenerate_session_id": False,
        "tz_mode": "aware",
        "pool_mgr": pool,
        "connect_timeout": math.ceil(settings.clickhouse_connect_timeout_seconds),
        "send_receive_timeout": math.ceil(
            settings.query_timeout_seconds + READ_TIMEOUT_MARGIN_SECONDS
        ),
    }
    _quiet_transport_warnings()

    def open_client(session: str | None) -> Client:
        try:
            return clickhouse_connect.get_client(**options, session_id=session)
        except (ClickHouseError, OSError) as exc:
            raise EngineUnavailable(
                f"could not reach ClickHouse at {target.display}: {describe_error(exc, options)}"
            ) from None

    try:
        first = open_client(None)
    except EngineUnavailable:
        pool.clear()
        raise
    return _start_family(target, settings, open_client, first, pool.clear)


def describe_error(exc: BaseException, options: Mapping[str, Any] | None = None) -> str:
    """The cause of a connection or statement failure in a few words (no urllib3 repr)."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(chain) < 10:
        chain.append(current)
        current = current.__cause__ or current.__context__
    options = options or {}

    def found(kind: type[BaseException]) -> BaseException | None:
        return next((link for link in chain if isinstance(link, kind)), None)

    if found(NameResolutionError):
        return "host name not found"
    if found(ConnectionRefusedError):
        return "connection refused"
    if found(ReadTimeoutError):
        waited = options.get("send_receive_timeout")
        within = f" within {waited} s" if waited else ""
        return (
            f"no answer{within} (read timeout: TA_QUERY_TIMEOUT_SECONDS + "
            f"{READ_TIMEOUT_MARGIN_SECONDS:g} s)"
        )
    # urllib3's NewConnectionError subclasses ConnectTimeoutError: any other OSError.
    if found(NewConnectionError):
        system = [e for e in chain if isinstance(e, OSError) and not isinstance(e, HTTPError)]
        return (
            f"could not connect ({system[0].strerror or system[0]})"
            if system
            else "could not connect"
        )
    if found(ConnectTimeoutError):
        waited = options.get("connect_timeout")
        within = f" within {waited:g} s" if waited else ""
        return f"could not connect{within} (TA_CLICKHOUSE_CONNECT_TIMEOUT_SECONDS)"
    tls = found(SSLError)
    if tls is not None:
        return f"TLS error ({_first_line(tls)})"
    if found(ProtocolError):
        return "the server closed the connection without an answer"
    code = _SERVER_ERROR.search(str(exc))
    if code is not None:
        return f"{code.group(2)} (code {code.group(1)})"
    status = next((m for m in map(_HTTP_STATUS.search, map(str, chain)) if m), None)
    if status is not None:
        return f"HTTP {status.group(1)} (is that a ClickHouse HTTP endpoint?)"
    return _first_line(exc)


# "Code: 516. DB::Exception: default: Authentication failed: ... (AUTHENTICATION_FAILED)
# (version 24.8.1.1)" -> the message and the code, without the name and version trailers.
_SERVER_ERROR = re.compile(
    r"Code: (\d+)\. DB::Exception: (.*?)\.?(?: \(\w+\))?(?: \(version .*\))?\s*$", re.M
)


_HTTP_STATUS = re.compile(r"HTTP status (\d{3})")


def _session_id(role: str) -> str:
    """A server session id that names the role (visible in system.query_log)."""
    return f"trace-analytics-{role}-{uuid.uuid4().hex[:12]}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class _DropTransportNoise(logging.Filter):
    """Drops transport chatter logged on the way to an exception we report in one line.

    clickhouse-connect logs a bare warning before raising every transport error, and
    urllib3 one for each connection retry; the error itself reaches the caller and is
    reported once (at start-up, as the command's one line).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        return not (
            message == "Unexpected Http Driver Exception"
            or message.startswith("Retrying (%r) after connection broken")
        )


_NOISY_LOGGERS = ("clickhouse_connect.driver._backend.http_sync", "urllib3.connectionpool")


def _quiet_transport_warnings() -> None:
    for name in _NOISY_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropTransportNoise) for f in logger.filters):
            logger.addFilter(_DropTransportNoise())
