"""CLI commands sent to the running `serve` that holds the embedded data directory.

chDB lets one process open a data directory. When a CLI command finds the directory held
(`DirectoryInUse`), it looks for the address file `serve` writes next to the lock
(`service.server.ADDRESS_FILE`); if the pid there is the lock holder's and the service at
that address confirms the pid and the directory, the command goes through that service's
HTTP API (`service.api.admin`) and prints what it would have printed itself.

The CLI authenticates with TA_ADMIN_KEY, else the first `key=*` entry of TA_API_KEYS (the
same environment as `serve`). Keys are never printed or logged.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from service.errors import DirectoryInUse, EngineUnavailable
from service.server import read_address
from service.settings import Settings

log = logging.getLogger(__name__)

CONNECT_SECONDS = 5.0
READ_SECONDS = 60.0


class Rejected(Exception):
    """The service answered 4xx to a request (the caller decides what that means)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class RunningServe:
    """A `serve` on this host that holds the embedded directory; talks to its admin API."""

    def __init__(
        self, busy: DirectoryInUse, url: str, key: str | None, client: httpx.Client
    ) -> None:
        self.busy = busy
        self.url = url
        self.client = client
        self._headers = {"authorization": f"Bearer {key}"} if key else {}
        # GET /v1/admin/schema as answered when the CLI attached (pid, database, schema).
        self.hello: dict[str, Any] = {}

    @property
    def who(self) -> str:
        return f"serve (pid {self.busy.pid}) at {self.url}"

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params or None)

    def post(
        self,
        path: str,
        *,
        json: Any = None,
        content: bytes | None = None,
        params: dict[str, Any] | None = None,
        slow: bool = False,
    ) -> Any:
        """POST; `slow` lifts the read timeout (a pass or a whole history may take minutes)."""
        return self.request("POST", path, json=json, content=content, params=params, slow=slow)

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        content: bytes | None = None,
        params: dict[str, Any] | None = None,
        slow: bool = False,
    ) -> Any:
        timeout = httpx.Timeout(
            READ_SECONDS, connect=CONNECT_SECONDS, read=None if slow else READ_SECONDS
        )
        headers = dict(self._headers)
        if content is not None:
            headers["content-type"] = "application/json"
        try:
            response = self.client.request(
                method,
                self.url + path,
                json=json,
                content=content,
                params=params,
                headers=headers,
                timeout=timeout,
            )
        except httpx.HTTPError as exc:
            raise EngineUnavailable(
                f"{self.who} holds {self.busy.path} but did not answer: {_cause(exc)}"
            ) from None
        body = _json(response)
        error = body.get("error") if isinstance(body, dict) else None
        code = str(error.get("code", "")) if isinstance(error, dict) else ""
        message = str(error.get("message", "")) if isinstance(error, dict) else response.text[:200]
        if response.status_code == 401 and not self._headers:
            raise EngineUnavailable(
                f"{self.who} holds {self.busy.path} and requires a key, and the CLI has no "
                "admin key: set TA_ADMIN_KEY, or run with serve's TA_API_KEYS (its key=* entry)"
            )
        if response.status_code == 401:
            raise EngineUnavailable(
                f"{self.who} holds {self.busy.path} and refused the CLI's admin key: set "
                "TA_ADMIN_KEY to one of serve's admin keys"
            )
        if response.status_code == 403 and code == "admin_only":
            raise EngineUnavailable(
                f"{self.who} holds {self.busy.path} and needs an admin key, not a project "
                "key: set TA_ADMIN_KEY"
            )
        if 400 <= response.status_code < 500:
            raise Rejected(response.status_code, code, message)
        if response.status_code >= 500:
            raise EngineUnavailable(
                f"{self.who} failed ({response.status_code}): {message or 'see its log'}"
            )
        return body


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return {}


def _cause(exc: BaseException) -> str:
    if isinstance(exc, httpx.ConnectError):
        return "connection refused"
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


@contextmanager
def running_serve(busy: DirectoryInUse, settings: Settings) -> Iterator[RunningServe | None]:
    """The `serve` holding `busy.path`, confirmed by its own answer, or None (not a serve)."""
    address = read_address(busy.path)
    if address is None or busy.pid is None or address.pid != busy.pid:
        yield None
        return
    with httpx.Client() as client:
        remote = RunningServe(busy, address.url, settings.cli_admin_key(), client)
        try:
            hello = remote.get("/v1/admin/schema")
        except Rejected:
            yield None
            return
        if hello.get("pid") != busy.pid or hello.get("database") != f"chdb://{busy.path}":
            yield None
            return
        log.info(
            "the data directory is served by a running serve: sending the command there",
            extra={"pid": busy.pid, "url": address.url},
        )
        remote.hello = hello
        yield remote
