"""A recording stub of a ClickHouse server's HTTP interface, for what chDB never shows.

It answers just enough for clickhouse-connect's HttpClient to connect (the handshake, a
`DESCRIBE TABLE`, inserts) and records every request's URL parameters and statement, so a
test can read the session id and the settings a role really sends on the wire. It executes
nothing: every other SELECT gets an empty result. It is not the HTTP-protocol test double
of issue 10 (which runs the statements on chDB); keep tests that need real answers there.
"""

from __future__ import annotations

import gzip
import threading
import urllib.parse
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Recorded:
    """One request as the stub saw it."""

    params: dict[str, str]
    statement: str

    @property
    def session_id(self) -> str | None:
        return self.params.get("session_id")


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _string(text: str) -> bytes:
    raw = text.encode()
    return _varint(len(raw)) + raw


def native_block(columns: Sequence[tuple[str, str, Sequence[Any]]]) -> bytes:
    """A Native-format block of String and UInt8 columns (all the stub ever answers)."""
    rows = len(columns[0][2]) if columns else 0
    out = bytearray(_varint(len(columns)) + _varint(rows))
    for name, type_name, values in columns:
        out += _string(name) + _string(type_name)
        for value in values:
            out += _string(value) if type_name == "String" else bytes([int(value)])
    return bytes(out)


def _decoded(body: bytes, encoding: str | None) -> bytes:
    if encoding == "lz4":
        import lz4.frame

        return bytes(lz4.frame.decompress(body))
    if encoding == "gzip":
        return gzip.decompress(body)
    return body


class StubClickHouse:
    """A stub server on 127.0.0.1 that reports `version` and records every request."""

    def __init__(self, version: str = "24.8.14.39") -> None:
        self.version = version
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://default:@{host!s}:{port}/analytics"

    def statements(self, prefix: str) -> list[Recorded]:
        """Recorded requests whose statement starts with `prefix`."""
        with self._lock:
            return [r for r in self.requests if r.statement.startswith(prefix)]

    def _record(self, recorded: Recorded) -> None:
        with self._lock:
            self.requests.append(recorded)

    def answer(self, statement: str) -> tuple[int, bytes]:
        """Status and body for one statement."""
        if statement.startswith("SELECT version(), timezone()"):
            return 200, f"{self.version}\tUTC\n".encode()
        if "FROM system.settings" in statement:
            return 200, native_block(
                [("name", "String", []), ("value", "String", []), ("readonly", "UInt8", [])]
            )
        if statement.startswith("SELECT 1 AS check"):
            return 500, b"Code: 1. DB::Exception: not supported by the stub. (UNSUPPORTED_METHOD)"
        if statement.startswith("SELECT version()"):
            return 200, native_block([("version()", "String", [self.version])])
        if statement.startswith("DESCRIBE TABLE"):
            names = ("name", "type", "default_type", "default_expression", "comment")
            values = {"name": "id", "type": "String"}
            columns = [(n, "String", [values.get(n, "")]) for n in names]
            columns += [("codec_expression", "String", [""]), ("ttl_expression", "String", [""])]
            return 200, native_block(columns)
        if statement.startswith("SELECT"):
            return 200, native_block([("1", "UInt8", [1])])
        return 200, b""

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                params = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
                body = self._body()
                if "query" in params:
                    statement = params["query"]
                else:
                    data = _decoded(body, self.headers.get("content-encoding"))
                    statement = data.decode("utf-8", errors="replace")
                lines = [ln for ln in statement.splitlines() if not ln.lstrip().startswith("--")]
                statement = "\n".join(lines).strip()
                if statement.startswith("INSERT"):
                    # A row insert's body is `INSERT ... FORMAT Native\n` then the data.
                    statement = statement.split("\n", 1)[0]
                stub._record(Recorded(params=params, statement=statement))
                status, answer = stub.answer(statement)
                self.send_response(status)
                if status != 200:
                    self.send_header("X-ClickHouse-Exception-Code", "1")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            do_GET = do_POST

            def _body(self) -> bytes:
                if self.headers.get("transfer-encoding", "").lower() != "chunked":
                    return self.rfile.read(int(self.headers.get("content-length") or 0))
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        self.rfile.readline()
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        return Handler

    @contextmanager
    def running(self) -> Iterator[StubClickHouse]:
        thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()
