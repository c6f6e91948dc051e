"""The HTTP server around the app: bind before any work, bounded connections, an address file.

`serve` binds its port first, so a port in use is one line and exit 2 before anything is
migrated or scheduled. Uvicorn then serves on that socket with `GuardedProtocol`, which adds
what uvicorn leaves open: uvicorn closes a connection that idles *after* a response
(`timeout_keep_alive`) but not one that never sends a byte, never finishes its headers or
trickles its body, and it accepts connections until the process runs out of file
descriptors — at which point every request and every scheduled ClickHouse call fails with
EMFILE. Here:

- a connection must start a request within TA_HTTP_KEEPALIVE_SECONDS of opening (and,
  through uvicorn, of its previous response), send its headers within
  TA_HTTP_HEADER_TIMEOUT_SECONDS (else 408) in at most `MAX_HEADER_BYTES` (else 431), and
  its body within TA_HTTP_BODY_TIMEOUT_SECONDS of the headers (else it is closed);
- at most TA_HTTP_MAX_CONNECTIONS are open; one more is answered `503` with `Retry-After`
  and closed, and a flood beyond that is closed without an answer. The limit is also
  capped to the open-file limit minus `FD_RESERVE`, so ClickHouse and the scheduler always
  have descriptors left.

With the embedded engine, `serve` also writes where it listens next to the data
directory's lock file (`ADDRESS_FILE`), so CLI commands started while it runs can send
their work to its admin API instead of failing on the busy directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, ClassVar

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service.errors import CannotListen
from service.metrics import Metrics
from service.settings import Settings

log = logging.getLogger(__name__)

# Descriptors kept free for ClickHouse (an embedded engine opens its part files, a server
# its HTTP pool), the scheduler and the log: the connection limit never eats into them.
FD_RESERVE = 256
# Largest request line plus headers; larger is a 431 (uvicorn's h11 parser gets the same).
MAX_HEADER_BYTES = 64 * 1024
# Connections over the limit that still get a 503 answer; beyond these they are just closed.
REFUSED_IN_FLIGHT = 64
# How long an answered over-limit connection may stay open for its client to read the 503.
REFUSE_LINGER_SECONDS = 1.0
WARN_EVERY_SECONDS = 10.0
ADDRESS_FILE = ".trace-analytics.serve"


# Binding.


@dataclass(frozen=True)
class Listener:
    """A bound, listening socket and where clients reach it."""

    sock: socket.socket
    host: str
    port: int

    @property
    def url(self) -> str:
        """The base URL a client on this host uses (loopback for a wildcard bind)."""
        host = connect_host(self.host)
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"


def connect_host(bind_host: str) -> str:
    """Where a local client connects to reach `bind_host` (a wildcard means loopback)."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(bind_host, bind_host)


def bind(host: str, port: int, backlog: int = 2048) -> Listener:
    """Bind and listen on host:port (port 0: any free port); `CannotListen` with one line."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise CannotListen(f"cannot listen on {host}:{port}: {exc.strerror} (TA_HOST)") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise CannotListen(f"cannot listen on {host}:{port}: {_bind_reason(exc)}") from None
    sock.set_inheritable(False)
    return Listener(sock=sock, host=host, port=int(sock.getsockname()[1]))


def _bind_reason(exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return "address already in use (another process listens there; stop it or set TA_PORT)"
    if exc.errno == errno.EACCES:
        return "permission denied (ports below 1024 need privileges; set TA_PORT)"
    if exc.errno == errno.EADDRNOTAVAIL:
        return "address not available on this host (set TA_HOST)"
    return exc.strerror or type(exc).__name__


# File descriptors and the connection limit.


def raise_fd_limit() -> int | None:
    """Raise the soft open-file limit to the hard one; the soft limit after (None: unlimited)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        with contextlib.suppress(ValueError, OSError):  # e.g. macOS caps at OPEN_MAX
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return None if soft == resource.RLIM_INFINITY else int(soft)


def connection_limit(configured: int, fd_limit: int | None) -> int:
    """TA_HTTP_MAX_CONNECTIONS, capped so `FD_RESERVE` descriptors always stay free."""
    if fd_limit is None:
        return configured
    return max(1, min(configured, fd_limit - FD_RESERVE))


@dataclass(frozen=True)
class ConnectionLimits:
    """What one client connection may take (from the TA_HTTP_* settings)."""

    max_connections: int
    keepalive_seconds: float
    header_timeout_seconds: float
    body_timeout_seconds: float
    max_header_bytes: int = MAX_HEADER_BYTES

    @classmethod
    def from_settings(cls, settings: Settings, fd_limit: int | None) -> ConnectionLimits:
        return cls(
            max_connections=connection_limit(settings.http_max_connections, fd_limit),
            keepalive_seconds=settings.http_keepalive_seconds,
            header_timeout_seconds=settings.http_header_timeout_seconds,
            body_timeout_seconds=settings.http_body_timeout_seconds,
        )


class ConnectionWatch:
    """Connection metrics, and a warning at most every few seconds while clients are refused."""

    def __init__(self, metrics: Metrics | None, clock: Callable[[], float] = time.monotonic):
        self.metrics = metrics
        self.clock = clock
        self._refused_since_warning = 0
        self._last_warning = float("-inf")

    def open_now(self, count: int) -> None:
        if self.metrics is not None:
            self.metrics.http_connections.set(count)

    def dropped(self, reason: str, limit: int | None = None) -> None:
        if self.metrics is not None:
            self.metrics.http_connections_dropped.labels(reason).inc()
        if reason != "over_limit":
            log.debug("connection closed", extra={"reason": reason})
            return
        self._refused_since_warning += 1
        now = self.clock()
        if now - self._last_warning >= WARN_EVERY_SECONDS:
            log.warning(
                "connection limit reached: new connections get a 503",
                extra={"limit": limit, "refused": self._refused_since_warning},
            )
            self._last_warning, self._refused_since_warning = now, 0


def _response(status: str, code: str, message: str, extra: str = "") -> bytes:
    body = orjson.dumps({"error": {"code": code, "message": message}})
    head = (
        f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\n{extra}"
        f"connection: close\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


_OVER_LIMIT = _response(
    "503 Service Unavailable",
    "overloaded",
    "too many open connections (TA_HTTP_MAX_CONNECTIONS); retry shortly",
    "retry-after: 1\r\n",
)
_HEADER_TIMEOUT = _response(
    "408 Request Timeout",
    "request_timeout",
    "request headers not received in time (TA_HTTP_HEADER_TIMEOUT_SECONDS)",
)
_HEADERS_TOO_LARGE = _response(
    "431 Request Header Fields Too Large",
    "headers_too_large",
    f"request line and headers exceed {MAX_HEADER_BYTES} bytes",
)


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline on every phase and a connection limit.

    One timer per connection: idle until a request starts, then the header deadline, then
    the body deadline; it stops when the request is complete (the app's own time is bounded
    by its query timeouts), and uvicorn's keep-alive timer takes over after the response.
    Configure with `guarded_protocol`, which fills the class attributes.
    """

    limits: ClassVar[ConnectionLimits]
    watch: ClassVar[ConnectionWatch]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._reading_headers = False
        self._header_bytes = 0
        self._refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        open_now = len(self.connections)
        if open_now > self.limits.max_connections:
            self._refuse(open_now)
            return
        self.watch.open_now(open_now)
        self._arm(self.limits.keepalive_seconds, self._idle_expired)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)
        self.watch.open_now(len(self.connections))

    def eof_received(self) -> None:
        if self._refused:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # the 503 is on its way; the request is not read
        super().data_received(data)
        if self._reading_headers and not self.transport.is_closing():
            self._header_bytes += len(data)
            if self._header_bytes > self.limits.max_header_bytes:
                self._reject(_HEADERS_TOO_LARGE, "headers_too_large")

    # httptools parser callbacks (uvicorn's, extended).

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading_headers = True
        self._header_bytes = 0
        self._arm(self.limits.header_timeout_seconds, self._headers_expired)

    def on_headers_complete(self) -> None:
        self._reading_headers = False
        self._arm(self.limits.body_timeout_seconds, self._body_expired)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    # Deadlines.

    def _arm(self, seconds: float, callback: Callable[[], None]) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, callback)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _idle_expired(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.watch.dropped("idle")
            self.transport.close()

    def _headers_expired(self) -> None:
        self._deadline = None
        self._reject(_HEADER_TIMEOUT, "header_timeout")

    def _body_expired(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            # The app may be reading the body: closing makes it see a disconnect.
            self.watch.dropped("body_timeout")
            self.transport.close()

    def _reject(self, response: bytes, reason: str) -> None:
        self._disarm()
        self._reading_headers = False
        if self.transport.is_closing():
            return
        self.watch.dropped(reason)
        self.transport.write(response)
        self.transport.close()

    def _refuse(self, open_now: int) -> None:
        """Answer 503 and close, without reading the request (there is no room for it)."""
        self._refused = True
        self.watch.dropped("over_limit", self.limits.max_connections)
        if open_now > self.limits.max_connections + REFUSED_IN_FLIGHT:
            self.transport.abort()
            return
        self.transport.write(_OVER_LIMIT)
        # Half-close: the client still sends its request and reads the 503, where a full
        # close would answer its request with a reset and lose the response.
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self._arm(REFUSE_LINGER_SECONDS, self.transport.close)


def guarded_protocol(limits: ConnectionLimits, watch: ConnectionWatch) -> type[GuardedProtocol]:
    """A protocol class for uvicorn's `http=` option, bound to these limits."""
    return type("ServiceHttpProtocol", (GuardedProtocol,), {"limits": limits, "watch": watch})


def serve(app: Any, listener: Listener, settings: Settings, metrics: Metrics | None) -> None:
    """Run uvicorn on the bound socket until SIGINT/SIGTERM (graceful, 30 s at most)."""
    import uvicorn

    fd_limit = raise_fd_limit()
    limits = ConnectionLimits.from_settings(settings, fd_limit)
    if limits.max_connections < settings.http_max_connections:
        log.warning(
            "connection limit lowered to fit the open-file limit",
            extra={
                "configured": settings.http_max_connections,
                "limit": limits.max_connections,
                "open_file_limit": fd_limit,
                "reserved": FD_RESERVE,
            },
        )
    config = uvicorn.Config(
        app,
        http=guarded_protocol(limits, ConnectionWatch(metrics)),
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_keep_alive=settings.http_keepalive_seconds,
        timeout_graceful_shutdown=30,
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
    )
    # uvicorn shuts down gracefully on SIGTERM and then raises the signal again for the
    # handler it found. With the default one the process would die right there, before the
    # caller's cleanup (the address file, the engine); this one ends `serve` normally.
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _stop_after_shutdown) if main_thread else None
    try:
        uvicorn.Server(config).run(sockets=[listener.sock])
    except _Terminated:
        log.info("stopped by SIGTERM")
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)


class _Terminated(BaseException):
    """SIGTERM, once uvicorn has finished its graceful shutdown."""


def _stop_after_shutdown(signum: int, frame: FrameType | None) -> None:
    raise _Terminated


# The address file: where an embedded `serve` listens, for CLI commands run beside it.


@dataclass(frozen=True)
class ServeAddress:
    """What a running `serve` wrote next to its data directory's lock file."""

    pid: int
    url: str


def address_path(data_dir: Path) -> Path:
    return data_dir / ADDRESS_FILE


def write_address(data_dir: Path, listener: Listener) -> Path:
    """Record this process's pid and URL beside the lock (atomically)."""
    path = address_path(data_dir)
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    temporary.write_bytes(orjson.dumps({"pid": os.getpid(), "url": listener.url}))
    temporary.replace(path)
    return path


def remove_address(data_dir: Path) -> None:
    """Remove the address file if it is still this process's."""
    found = read_address(data_dir)
    if found is not None and found.pid == os.getpid():
        with contextlib.suppress(FileNotFoundError):
            address_path(data_dir).unlink()


def read_address(data_dir: Path) -> ServeAddress | None:
    """The address a `serve` recorded for this directory, or None (absent or unreadable)."""
    try:
        raw = orjson.loads(address_path(data_dir).read_bytes())
        return ServeAddress(pid=int(raw["pid"]), url=str(raw["url"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
