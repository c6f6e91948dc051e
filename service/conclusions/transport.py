"""An httpx transport that holds a whole attempt to one deadline, not each socket read.

httpx timeouts apply to each socket operation: a receiver that trickles one byte a second
never trips a 2-second read timeout and can hold an attempt for as long as it likes. Here,
`attempt_deadline(seconds)` sets a deadline for the requests the current thread makes. Every
socket operation under it (connect, TLS handshake, each write, each read) waits at most
until that deadline and fails with the usual httpx timeout once it has passed, so an attempt
ends within its budget plus one operation's scheduling slack. Only the DNS lookup inside
`connect` is not covered (the OS bounds it).

The sync client does all of a request's I/O in the calling thread, which is why a
context-local deadline reaches every operation of that request and of no other one. The
transport itself is httpcore's connection pool with a wrapped network backend, mapped to
httpx's exception types, so keep-alive and pooling behave as with `httpx.HTTPTransport`.
httpx ignores HTTP_PROXY and friends once a transport is given, so `environment_proxy`
reads them (and NO_PROXY) for the one URL delivery talks to, and the transport goes
through that proxy with the same deadline.
"""

from __future__ import annotations

import contextlib
import ssl
import time
import urllib.request
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from service.errors import ConfigError

_DEADLINE: ContextVar[float | None] = ContextVar("ta_attempt_deadline", default=None)
# Writes are cut into pieces this big so that each socket send gets a fresh, shorter
# timeout; one piece fits a socket buffer, so a send of it rarely blocks at all.
_WRITE_PIECE = 16 * 1024


@contextlib.contextmanager
def attempt_deadline(seconds: float) -> Iterator[None]:
    """Requests made by this thread inside the block end within `seconds` in total."""
    token = _DEADLINE.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def _bounded(timeout: float | None, expired: type[Exception]) -> float | None:
    """`timeout`, shortened to what is left of the attempt; raises `expired` when none is."""
    deadline = _DEADLINE.get()
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise expired("the attempt's deadline passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _bounded(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        for start in range(0, len(buffer), _WRITE_PIECE):
            piece = buffer[start : start + _WRITE_PIECE]
            self._inner.write(piece, _bounded(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._inner.start_tls(
            ssl_context, server_hostname, _bounded(timeout, httpcore.ConnectTimeout)
        )
        return _DeadlineStream(stream)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._inner.connect_tcp(
            host,
            port,
            _bounded(timeout, httpcore.ConnectTimeout),
            local_address=local_address,
            socket_options=socket_options,
        )
        return _DeadlineStream(stream)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._inner.connect_unix_socket(
            path, _bounded(timeout, httpcore.ConnectTimeout), socket_options=socket_options
        )
        return _DeadlineStream(stream)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


# httpcore's exceptions as httpx's, most specific first (subclasses before their bases).
_EXCEPTIONS: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
)


@contextlib.contextmanager
def _as_httpx_errors() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        for source, target in _EXCEPTIONS:
            if isinstance(exc, source):
                raise target(str(exc)) from exc
        raise


class _ResponseStream(httpx.SyncByteStream):
    def __init__(self, inner: Iterable[bytes]) -> None:
        self._inner = inner

    def __iter__(self) -> Iterator[bytes]:
        with _as_httpx_errors():
            yield from self._inner

    def close(self) -> None:
        close = getattr(self._inner, "close", None)
        if close is not None:
            close()


def environment_proxy(url: str) -> str | None:
    """The proxy the environment asks for when calling `url` (HTTP(S)_PROXY, ALL_PROXY and
    NO_PROXY, as httpx and urllib read them), or None to connect directly."""
    parts = urlsplit(url)
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    if not proxy.startswith(("http://", "https://")):
        raise ConfigError(
            f"{parts.scheme}_proxy / all_proxy: delivery supports http:// and https:// proxies "
            f"only (got {urlsplit(proxy).scheme or proxy!r})"
        )
    return proxy


class DeadlineTransport(httpx.BaseTransport):
    """HTTP(S) connections, keep-alive pooled, bounded per attempt (see module doc);
    through `proxy` when one is given (an http:// or https:// proxy URL)."""

    def __init__(self, limits: httpx.Limits, proxy: str | None = None) -> None:
        pool: dict[str, Any] = {
            "ssl_context": httpx.create_ssl_context(),
            "max_connections": limits.max_connections,
            "max_keepalive_connections": limits.max_keepalive_connections,
            "keepalive_expiry": limits.keepalive_expiry,
            "network_backend": _DeadlineBackend(),
        }
        self._pool: httpcore.ConnectionPool
        if proxy is None:
            self._pool = httpcore.ConnectionPool(**pool)
        else:
            via = httpx.Proxy(proxy)
            self._pool = httpcore.HTTPProxy(
                proxy_url=httpcore.URL(
                    scheme=via.url.raw_scheme,
                    host=via.url.raw_host,
                    port=via.url.port,
                    target=via.url.raw_path,
                ),
                proxy_auth=via.raw_auth,
                proxy_headers=via.headers.raw,
                proxy_ssl_context=via.ssl_context,
                **pool,
            )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.SyncByteStream)
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _as_httpx_errors():
            response = self._pool.handle_request(core_request)
        assert isinstance(response.stream, Iterable)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(response.stream),
            extensions=response.extensions,
        )

    def close(self) -> None:
        self._pool.close()
