"""A test double of ClickHouse's HTTP interface that executes on embedded chDB.

This is NOT a ClickHouse server. It speaks enough of the HTTP protocol for
clickhouse-connect's `HttpClient` (the client the service uses for `http://` URLs) to work
unchanged, so the whole suite can run over the server code path (`TA_TEST_ENGINE=http`),
and it refuses, with the server's status and error text, the requests a server refuses
because of their size. What a real server adds (users, grants, quotas, replication,
clusters, a query log, progress headers) is not here; every statement runs on the chDB
engine of this process, which is the same ClickHouse code, only embedded.

Implemented, as ClickHouse's `HTTPHandler` does it (src/Server/HTTPHandler.cpp,
HTTP/HTMLForm.cpp, HTTP/HTTPServerRequest.cpp, HTTP/exceptionCodeToHTTPStatus.cpp):

- the query text: the `query` URL parameter, a line break and the request body; for a
  `multipart/form-data` body, the `query` fields instead (URL first, then form). Like a
  server, a `application/x-www-form-urlencoded` body is query text, never parsed as a form;
- `param_<name>` bind parameters from the URL and from form fields (the first one wins);
  external data (a multipart part with a filename, with `<name>_structure` or
  `<name>_types` and `<name>_format`) as a temporary table of that request;
- `database`, `default_format`, `query_id` (or the `X-ClickHouse-Database`, `-Format`,
  `-Query-Id` headers), `session_id` / `session_timeout` / `session_check` /
  `close_session`; every other URL parameter is a setting of that request (an unknown one
  fails as on a server, UNKNOWN_SETTING → 404); a GET request is `readonly=2`. Settings
  chDB changes from the server's defaults in a way a statement notices (`implicit_select`,
  `allow_introspection_functions`) are put back to the server's for every request;
- request bodies compressed as `Content-Encoding` says (gzip, deflate, zstd, lz4, xz, bz2,
  br when `brotli` is installed); `Transfer-Encoding: chunked`; 411 for a POST with neither
  length nor chunks;
- `INSERT ... FORMAT <fmt>` followed by data (clickhouse-connect's Native blocks, possibly
  compressed): the data goes to chDB byte for byte through a streaming insert
  (`Connection.send_insert`), so every type arrives as the client wrote it (DateTime64 with
  a zone, Nullable, LowCardinality, Map, Array, Tuple, UInt64 ...);
- results in the format the statement names (clickhouse-connect appends `FORMAT Native`)
  or `default_format` (TabSeparated), compressed when `enable_http_compression` is on and
  `Accept-Encoding` allows it (the server's preference order: zstd, br, lz4, gzip, deflate,
  xz, bz2); headers `X-ClickHouse-Query-Id`, `-Format`, `-Timezone`, `-Summary`;
- errors: the status of `exceptionCodeToHTTPStatus`, the code in
  `X-ClickHouse-Exception-Code`, the exception text (chDB's, which is ClickHouse's) as
  the body, so clickhouse-connect raises its usual `DatabaseError` with `.code` set; the
  refused request's body is read anyway, so a kept-alive connection stays usable;
- concurrency: one thread per connection, and every request on its own chDB connection
  to the one directory, so requests run side by side as on a server;
- sessions: without `session_id` every request runs on a fresh chDB connection that is
  closed afterwards, so nothing (`SET`, `USE`, temporary tables) survives a request, as on
  a server; with one, requests share a connection, one at a time (a concurrent request
  gets SESSION_IS_LOCKED), URL settings and `database` apply to that request only, and
  the session expires `session_timeout` seconds (default 60, at most 3600) after its
  last request.

The limits it ENFORCES, at ClickHouse's defaults, because the service must never send
what a server refuses:

- `http_max_uri_size` (1 MiB): a longer request URI gets a bare `400 Bad Request` with
  `Connection: close` and no exception code (Poco's MessageException in
  HTTPServerConnection). Unlike a server, the double reads the rest of the request first,
  so the client reliably sees the 400 instead of a reset connection;
- `http_max_field_value_size` / `http_max_field_name_size` (128 KiB each): a URL
  parameter or form field over the limit (counted as sent: percent-encoded in the URL, raw
  bytes in a form) gets `500` with `X-ClickHouse-Exception-Code: 1000` and `Poco::Exception.
  Code: 1000, e.code() = 0, HTML Form Exception: Field value too long`. clickhouse-connect
  moves bind parameters over 4 KiB into form fields, so a key list bound as one parameter
  hits this at about 128 KiB; `command()` keeps its parameters in the URL, where the same
  limit applies;
- `max_query_size` (256 KiB): chDB's own parser enforces it (the double sets it on every
  connection), so the text the parser sees (without INSERT data, without bound values) is
  refused as on a server: `Code: 62 ... Max query size exceeded` (SYNTAX_ERROR → 400). Like
  on a server, a request may raise it with a `max_query_size` URL parameter.

Not implemented (a request needing them gets NOT_IMPLEMENTED, 501, naming the double):
ClickHouse's own block compression (`compress=1`, `decompress=1`). Ignored: users and
passwords (anything is accepted), `client_protocol_version` (results are Native as for a
client that sent none: no BlockInfo; clickhouse-connect's probe then falls back to that
mode, which servers support too), progress headers, `buffer_size` and
`wait_end_of_query` (every result is buffered whole, so an error is always an HTTP error,
never a half-sent stream). Not served: `FORMAT Arrow` results (chDB's Python API turns
them into pyarrow tables), `snappy` bodies. The timezone is chDB's (`timezone()` here).

chDB opens one data directory per process: the double keeps one anchor connection open on
its directory from `start()` to `stop()`, and the code under test must talk to it only
over HTTP. Run it standalone for a benchmark with `python -m tests.clickhouse_http DIR`.
"""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import re
import signal
import socket
import sys
import threading
import time
import traceback
import uuid
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from email.message import Message
from http.client import HTTPMessage, parse_headers
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import unquote_plus

import chdb
import lz4.frame

if sys.version_info >= (3, 14):
    from compression import zstd
else:
    from backports import zstd

try:
    import brotli
except ImportError:
    brotli = None

DISPLAY_NAME = "clickhouse-http-test-double"


@dataclass(frozen=True)
class Limits:
    """A server's request limits, at ClickHouse's defaults."""

    http_max_uri_size: int = 1024 * 1024
    http_max_field_name_size: int = 128 * 1024
    http_max_field_value_size: int = 128 * 1024
    max_query_size: int = 256 * 1024
    default_session_timeout: int = 60
    max_session_timeout: int = 3600


# URL parameters that are not settings (HTTPHandler's reserved_param_names, plus the ones it
# consumes before looking at settings).
RESERVED_PARAMS = frozenset(
    """compress decompress user password quota_key query_id stacktrace role buffer_size
    wait_end_of_query session_id session_timeout session_check client_protocol_version
    close_session database default_format query""".split()
)
EXTERNAL_DATA_SUFFIXES = ("_format", "_types", "_structure")

# Settings chDB changes from ClickHouse's defaults in ways a statement can notice; every
# request starts from the server's values (a request may still change them).
SERVER_DEFAULTS = {"implicit_select": "0", "allow_introspection_functions": "0"}

# exceptionCodeToHTTPStatus, by the error's name (chDB's messages end with it); others: 500.
_STATUS_BY_ERROR: dict[str, int] = {
    name: status
    for status, names in [
        (401, "REQUIRED_PASSWORD"),
        (
            403,
            "UNKNOWN_USER WRONG_PASSWORD AUTHENTICATION_FAILED SET_NON_GRANTED_ROLE ACCESS_DENIED",
        ),
        (
            400,
            """BAD_ARGUMENTS CANNOT_COMPILE_REGEXP CANNOT_PARSE_TEXT CANNOT_PARSE_ESCAPE_SEQUENCE
            CANNOT_PARSE_QUOTED_STRING CANNOT_PARSE_DATE CANNOT_PARSE_DATETIME CANNOT_PARSE_NUMBER
            CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING CANNOT_PARSE_IPV4 CANNOT_PARSE_IPV6
            CANNOT_PARSE_UUID CANNOT_PARSE_INPUT_ASSERTION_FAILED DUPLICATE_COLUMN ILLEGAL_COLUMN
            UNKNOWN_ELEMENT_IN_AST UNKNOWN_TYPE_OF_AST_NODE THERE_IS_NO_COLUMN TOO_DEEP_AST
            TOO_BIG_AST UNEXPECTED_AST_STRUCTURE SYNTAX_ERROR INCORRECT_DATA TYPE_MISMATCH
            VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE""",
        ),
        (
            404,
            """UNKNOWN_TABLE UNKNOWN_FUNCTION UNKNOWN_IDENTIFIER UNKNOWN_TYPE UNKNOWN_STORAGE
            UNKNOWN_DATABASE UNKNOWN_SETTING UNKNOWN_DIRECTION_OF_SORTING UNKNOWN_AGGREGATE_FUNCTION
            UNKNOWN_FORMAT UNKNOWN_DATABASE_ENGINE UNKNOWN_TYPE_OF_QUERY UNKNOWN_ROLE""",
        ),
        (413, "QUERY_IS_TOO_LARGE"),
        (501, "NOT_IMPLEMENTED"),
        (503, "SOCKET_TIMEOUT CANNOT_OPEN_FILE CANNOT_SCHEDULE_TASK"),
        (411, "HTTP_LENGTH_REQUIRED"),
        (408, "TIMEOUT_EXCEEDED"),
        (415, "UNSUPPORTED_MEDIA_TYPE"),
    ]
    for name in names.split()
}

# Error codes the double raises itself (src/Common/ErrorCodes.cpp).
BAD_ARGUMENTS = (36, "BAD_ARGUMENTS")
UNKNOWN_SETTING = (115, "UNKNOWN_SETTING")
NOT_IMPLEMENTED = (48, "NOT_IMPLEMENTED")
QUERY_WITH_SAME_ID_IS_ALREADY_RUNNING = (216, "QUERY_WITH_SAME_ID_IS_ALREADY_RUNNING")
SESSION_NOT_FOUND = (372, "SESSION_NOT_FOUND")
SESSION_IS_LOCKED = (373, "SESSION_IS_LOCKED")
INVALID_SESSION_TIMEOUT = (374, "INVALID_SESSION_TIMEOUT")
HTTP_LENGTH_REQUIRED = (381, "HTTP_LENGTH_REQUIRED")
POCO_EXCEPTION = 1000

_CODE_RE = re.compile(r"Code: (\d+)\.")
_NAME_RE = re.compile(r"\(([A-Z][A-Z0-9_]+)\)\s*$")
_SETTING_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TRAILING_FORMAT_RE = re.compile(r"\bFORMAT\s+(\w+)[\s;]*$", re.IGNORECASE)
# INSERT INTO [TABLE] t [(columns)] [SETTINGS ...] FORMAT <name>, then the data.
_INSERT_WITH_DATA_RE = re.compile(
    rb"^\s*INSERT\s+INTO\s+(?:TABLE\s+)?[\w.`\"]+\s*(?:\([^()]*\))?\s*"
    rb"(?:SETTINGS\s[^()]*?)?\bFORMAT\s+(\w+)",
    re.IGNORECASE | re.DOTALL,
)
_CONTENT_TYPES = {
    "Native": "application/octet-stream",
    "RowBinary": "application/octet-stream",
    "JSON": "application/json; charset=UTF-8",
    "JSONEachRow": "application/x-ndjson; charset=UTF-8",
}


class Refused(Exception):
    """A request answered with an error: status, `X-ClickHouse-Exception-Code`, body text."""

    def __init__(self, status: int, text: str, code: int | None = None) -> None:
        super().__init__(text)
        self.status = status
        self.text = text
        self.code = code

    @classmethod
    def exception(cls, error: tuple[int, str], message: str) -> Refused:
        """A `DB::Exception` as the server formats it."""
        code, name = error
        return cls.engine(f"Code: {code}. DB::Exception: {message}. ({name})")

    @classmethod
    def engine(cls, message: str) -> Refused:
        """An error raised by chDB (ClickHouse's text: `Code: N. DB::Exception: ... (NAME)`)."""
        start = message.find("Code: ")
        text = message[start:].strip() if start >= 0 else message.strip()
        code_match = _CODE_RE.search(text)
        name_match = _NAME_RE.search(text)
        status = _STATUS_BY_ERROR.get(name_match.group(1), 500) if name_match else 500
        code = int(code_match.group(1)) if code_match else None
        return cls(status, f"{text} (version {chdb.engine_version})", code)

    @classmethod
    def html_form(cls, message: str) -> Refused:
        """Poco's HTMLFormException, as HTTPHandler reports it (code 1000, status 500)."""
        return cls(
            500,
            f"Poco::Exception. Code: {POCO_EXCEPTION}, e.code() = 0, HTML Form Exception: "
            f"{message} (version {chdb.engine_version})",
            POCO_EXCEPTION,
        )


def _not_implemented(what: str) -> Refused:
    return Refused.exception(NOT_IMPLEMENTED, f"{what} is not implemented by the HTTP test double")


# --- the request as the server reads it ----------------------------------------------------


@dataclass(frozen=True)
class ExternalTable:
    """A multipart part with a filename: a temporary table of the request."""

    name: str
    data: bytes


@dataclass
class Request:
    """One HTTP request, decoded: URL parameters, form fields, files, body, headers."""

    method: str
    headers: HTTPMessage
    url_params: list[tuple[str, str]]
    form_fields: list[tuple[str, str]] = field(default_factory=list)
    files: list[ExternalTable] = field(default_factory=list)
    body: bytes = b""
    multipart: bool = False

    def param(self, name: str, default: str = "") -> str:
        """The first value of a URL parameter."""
        return next((v for k, v in self.url_params if k == name), default)

    @property
    def query_text(self) -> bytes:
        """What the parser sees, before any INSERT data: HTTPHandler's getQuery()."""
        if self.multipart:
            parts = [v for k, v in (*self.url_params, *self.form_fields) if k == "query"]
            return "".join(parts).encode()
        query = self.param("query")
        return (query + "\n").encode() + self.body if query else self.body

    @property
    def bind_params(self) -> dict[str, str]:
        """`param_<name>` values by name; the first one wins (URL before form)."""
        bound: dict[str, str] = {}
        for key, value in (*self.url_params, *self.form_fields):
            if key.startswith("param_"):
                bound.setdefault(key.removeprefix("param_"), value)
        return bound

    @property
    def settings(self) -> dict[str, str]:
        """Every URL parameter that is not reserved is a setting of this request."""
        found: dict[str, str] = {}
        for key, value in self.url_params:
            if not key or key in RESERVED_PARAMS or key.startswith("param_"):
                continue
            if self.multipart and key.endswith(EXTERNAL_DATA_SUFFIXES):
                continue
            found[key] = value
        return found

    @property
    def database(self) -> str:
        return self.headers.get("X-ClickHouse-Database") or self.param("database")

    @property
    def default_format(self) -> str:
        return (
            self.headers.get("X-ClickHouse-Format")
            or self.param("default_format")
            or "TabSeparated"
        )

    @property
    def query_id(self) -> str:
        return self.param("query_id") or self.headers.get("X-ClickHouse-Query-Id") or ""

    def external_structure(self, table: str) -> tuple[str, str]:
        """The column list and format of an external table, from the URL parameters."""
        fmt = self.param(f"{table}_format", "TabSeparated")
        structure = self.param(f"{table}_structure")
        if structure:
            return structure, fmt
        types = _split_top_level(self.param(f"{table}_types"))
        if not types:
            raise Refused.exception(
                BAD_ARGUMENTS,
                f"Neither structure nor types have not been provided for external table {table}",
            )
        return ", ".join(f"_{i} {t}" for i, t in enumerate(types, start=1)), fmt


def _split_top_level(types: str) -> list[str]:
    """`String, Tuple(String, UInt8)` → its two types (commas inside brackets stay)."""
    out: list[str] = []
    depth = 0
    current = ""
    for ch in types:
        if ch == "," and depth == 0:
            out.append(current.strip())
            current = ""
            continue
        depth += ch == "("
        depth -= ch == ")"
        current += ch
    if current.strip():
        out.append(current.strip())
    return out


def parse_url_params(raw_query: str, limits: Limits) -> list[tuple[str, str]]:
    """HTMLForm::readQuery: `&`-separated `name=value`, sizes checked before decoding."""
    params: list[tuple[str, str]] = []
    if not raw_query:
        return params
    for part in raw_query.split("&"):
        name, _, value = part.partition("=")
        if len(name) > limits.http_max_field_name_size:
            raise Refused.html_form("Field name too long")
        if len(value) > limits.http_max_field_value_size:
            raise Refused.html_form("Field value too long")
        params.append((unquote_plus(name), unquote_plus(value)))
    return params


def parse_multipart(
    body: bytes, boundary: str, limits: Limits
) -> tuple[list[tuple[str, str]], list[ExternalTable]]:
    """HTMLForm::readMultipart: fields (sizes checked) and files (external tables)."""
    delimiter = b"--" + boundary.encode()
    start = body.find(delimiter)
    if not boundary or start < 0:
        raise Refused.html_form("No boundary line found")
    fields: list[tuple[str, str]] = []
    files: list[ExternalTable] = []
    position = start + len(delimiter)
    while not body.startswith(b"--", position):
        head_start = body.find(b"\r\n", position) + 2
        head_end = body.find(b"\r\n\r\n", head_start)
        end = body.find(b"\r\n" + delimiter, head_end + 4)
        if head_start < 2 or head_end < 0 or end < 0:
            raise Refused.exception(
                (33, "CANNOT_READ_ALL_DATA"),
                "Unexpected EOF, did not find the last boundary while parsing a multipart "
                "HTTP request",
            )
        headers = Message()
        for line in body[head_start:head_end].decode("latin-1").split("\r\n"):
            key, _, value = line.partition(":")
            headers[key.strip()] = value.strip()
        name = str(headers.get_param("name", "", header="content-disposition"))
        filename = headers.get_param("filename", None, header="content-disposition")
        content = body[head_end + 4 : end]
        if filename is not None:
            files.append(ExternalTable(name, content))
        else:
            if len(name) > limits.http_max_field_name_size:
                raise Refused.html_form("Field name too long")
            if len(content) > limits.http_max_field_value_size:
                raise Refused.html_form("Field value too long")
            fields.append((name, content.decode("utf-8", errors="replace")))
        position = end + 2 + len(delimiter)
    return fields, files


def decompress(body: bytes, encoding: str) -> bytes:
    """The request body as `Content-Encoding` says (chooseCompressionMethod's names)."""
    method = encoding.strip().lower()
    if method in ("", "none", "identity"):
        return body
    if method == "gzip":
        return gzip.decompress(body)
    if method == "deflate":
        return zlib.decompress(body)
    if method == "zstd":
        return zstd.decompress(body)
    if method == "lz4":
        return _lz4_frames(body)
    if method == "xz":
        return lzma.decompress(body)
    if method == "bz2":
        return bz2.decompress(body)
    if method == "br" and brotli is not None:
        return bytes(brotli.decompress(body))
    if method in ("br", "snappy"):
        raise _not_implemented(f"Content-Encoding {method}")
    raise Refused.exception(
        BAD_ARGUMENTS,
        f"Unknown compression method '{encoding}'. Only 'auto', 'none', 'gzip', 'deflate', "
        "'br', 'xz', 'zstd', 'lz4', 'bz2', 'snappy' are supported as compression methods",
    )


def _lz4_frames(body: bytes) -> bytes:
    """clickhouse-connect compresses each insert block as its own LZ4 frame."""
    out = bytearray()
    rest = body
    while rest:
        decompressor = lz4.frame.LZ4FrameDecompressor()
        out += decompressor.decompress(rest)
        rest = decompressor.unused_data
    return bytes(out)


def compress(body: bytes, accept_encoding: str) -> tuple[bytes, str]:
    """chooseHTTPCompressionMethod: the first of the server's preferences the client takes."""
    accepted = accept_encoding.lower()
    encoders: list[tuple[str, Callable[[bytes], bytes] | None]] = [
        ("zstd", zstd.compress),
        ("br", brotli.compress if brotli is not None else None),
        ("lz4", lz4.frame.compress),
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("xz", lzma.compress),
        ("bz2", bz2.compress),
    ]
    for name, encode in encoders:
        if name in accepted and encode is not None:
            return encode(body), name
    return body, ""


# --- execution on chDB ---------------------------------------------------------------------


@dataclass
class Result:
    """A successful answer: body, output format (if the statement has one), statistics."""

    body: bytes
    fmt: str | None
    summary: dict[str, str]


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _identifier(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def _run(
    conn: Any, sql: str, fmt: str = "TabSeparated", params: dict[str, str] | None = None
) -> Any:
    try:
        return conn.query(sql, fmt, params=params or {})
    except Exception as exc:  # chDB raises its own error types with ClickHouse's text
        raise Refused.engine(str(exc)) from None


def _statistics(result: Any, *, written: tuple[int, int] | None = None) -> dict[str, str]:
    def number(name: str) -> int:
        with suppress(Exception):
            return int(getattr(result, name)())
        return 0

    rows_written, bytes_written = written or (number("rows_written"), number("bytes_written"))
    return {
        "read_rows": str(number("rows_read")),
        "read_bytes": str(number("bytes_read")),
        "written_rows": str(rows_written),
        "written_bytes": str(bytes_written),
        "total_rows_to_read": "0",
        "result_rows": "0",
        "result_bytes": "0",
        "elapsed_ns": str(int(float(getattr(result, "elapsed", lambda: 0)() or 0) * 1e9)),
    }


class Session:
    """A `session_id`: one chDB connection, used by one request at a time."""

    def __init__(self, conn: Any, timeout: int) -> None:
        self.conn = conn
        self.timeout = timeout
        self.lock = threading.Lock()
        self.expires_at = time.monotonic() + timeout


class Engine:
    """chDB on one data directory, reached by the handler threads.

    An anchor connection keeps the engine (and the directory) open for the double's life;
    each sessionless request opens its own connection, so requests run side by side as on a
    server, and closes it, so no request leaves state behind for the next one.
    """

    def __init__(self, data_path: Path, limits: Limits) -> None:
        self.data_path = data_path
        self.limits = limits
        data_path.mkdir(parents=True, exist_ok=True)
        self._anchor = chdb.connect(str(data_path))
        row = _run(
            self._anchor,
            "SELECT timezone(), value FROM system.settings WHERE name = 'enable_http_compression'",
        )
        self.timezone, compression = row.bytes().decode().rstrip("\n").split("\t")
        self.http_compression_default = compression == "1"
        self._sessions: dict[str, Session] = {}
        self._running: set[str] = set()
        self._guard = threading.Lock()

    def close(self) -> None:
        with self._guard:
            sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            with session.lock:
                session.conn.close()
        self._anchor.close()

    @contextmanager
    def connection(self, request: Request) -> Iterator[tuple[Any, bool]]:
        """The request's connection: a fresh one, or its session's (then True)."""
        session_id = request.param("session_id")
        if not session_id:
            conn = chdb.connect(str(self.data_path))
            try:
                yield conn, False
            finally:
                conn.close()
            return
        session = self._session(session_id, request)
        if not session.lock.acquire(blocking=False):
            raise Refused.exception(
                SESSION_IS_LOCKED, f"Session {session_id} is locked by a concurrent client"
            )
        try:
            yield session.conn, True
        finally:
            session.expires_at = time.monotonic() + session.timeout
            session.lock.release()
            if request.param("close_session") in ("1", "true"):
                self._drop_session(session_id)

    def _session(self, session_id: str, request: Request) -> Session:
        timeout = self._session_timeout(request.param("session_timeout"))
        self._reap_expired()
        with self._guard:
            session = self._sessions.get(session_id)
            if session is None:
                if request.param("session_check") in ("1", "true"):
                    raise Refused.exception(SESSION_NOT_FOUND, f"Session {session_id} not found")
                session = Session(chdb.connect(str(self.data_path)), timeout)
                self._sessions[session_id] = session
            session.timeout = timeout
            return session

    def _session_timeout(self, raw: str) -> int:
        if not raw:
            return self.limits.default_session_timeout
        if not raw.isdigit():
            raise Refused.exception(INVALID_SESSION_TIMEOUT, f"Invalid session timeout: '{raw}'")
        if int(raw) > self.limits.max_session_timeout:
            raise Refused.exception(
                INVALID_SESSION_TIMEOUT,
                f"Session timeout '{raw}' is larger than max_session_timeout: "
                f"{self.limits.max_session_timeout}. Maximum session timeout could be "
                "modified in configuration file.",
            )
        return int(raw)

    def _reap_expired(self) -> None:
        now = time.monotonic()
        with self._guard:
            expired = [k for k, s in self._sessions.items() if s.expires_at < now]
        for session_id in expired:
            self._drop_session(session_id)

    def _drop_session(self, session_id: str) -> None:
        with self._guard:
            session = self._sessions.pop(session_id, None)
        if session is not None and session.lock.acquire(blocking=False):
            session.conn.close()
            session.lock.release()

    @contextmanager
    def running(self, query_id: str) -> Iterator[str]:
        """Register the query id; a second query with the same id is refused meanwhile."""
        query_id = query_id or str(uuid.uuid4())
        with self._guard:
            if query_id in self._running:
                raise Refused.exception(
                    QUERY_WITH_SAME_ID_IS_ALREADY_RUNNING,
                    f"Query with id = {query_id} is already running.",
                )
            self._running.add(query_id)
        try:
            yield query_id
        finally:
            with self._guard:
                self._running.discard(query_id)

    def execute(self, request: Request) -> Result:
        """Run the request's statement as a server would, on the right connection."""
        settings = {**SERVER_DEFAULTS, "max_query_size": str(self.limits.max_query_size)}
        if request.method == "GET":
            settings["readonly"] = "2"
        settings.update(request.settings)
        with self.connection(request) as (conn, in_session):
            scope = _restore_after(conn, settings) if in_session else _nothing()
            with scope:
                if request.database and (in_session or request.database != "default"):
                    _run(conn, f"USE {_identifier(request.database)}")
                _apply_settings(conn, settings)
                tables = [self._load_external(conn, request, t) for t in request.files]
                try:
                    return self._statement(conn, request)
                finally:
                    for table in tables if in_session else []:
                        _run(conn, f"DROP TEMPORARY TABLE IF EXISTS {_identifier(table)}")

    def _load_external(self, conn: Any, request: Request, table: ExternalTable) -> str:
        structure, fmt = request.external_structure(table.name)
        _run(
            conn, f"CREATE TEMPORARY TABLE {_identifier(table.name)} ({structure}) ENGINE = Memory"
        )
        _insert(conn, f"INSERT INTO {_identifier(table.name)}", fmt, table.data)
        return table.name

    def _statement(self, conn: Any, request: Request) -> Result:
        text = request.query_text
        insert = _INSERT_WITH_DATA_RE.match(text)
        if insert is not None:
            head = text[: insert.start(1)].decode("utf-8", errors="replace")
            head = re.sub(r"\sFORMAT\s*$", "", head, flags=re.IGNORECASE)
            written = _insert(
                conn, head, insert.group(1).decode(), _insert_data(text, insert.end())
            )
            return Result(b"", None, _statistics(None, written=written))
        sql = text.decode("utf-8", errors="replace")
        params = request.bind_params
        named = _TRAILING_FORMAT_RE.search(sql)
        if named is not None:
            result = _run(conn, sql, named.group(1), params)
            return Result(result.bytes() or b"", named.group(1), _statistics(result))
        fmt = request.default_format
        if fmt in ("TabSeparated", "TSV"):
            # A statement with an output sends X-ClickHouse-Format even when it has no rows;
            # with names, such a statement always prints a line, a DDL or INSERT prints none.
            result = _run(conn, sql, "TabSeparatedWithNames", params)
            body = result.bytes() or b""
            if not body:
                return Result(b"", None, _statistics(result))
            return Result(body[body.index(b"\n") + 1 :], fmt, _statistics(result))
        result = _run(conn, sql, fmt, params)
        body = result.bytes() or b""
        return Result(body, fmt if body else None, _statistics(result))


def _insert_data(text: bytes, format_end: int) -> bytes:
    """ParserInsertQuery: data starts after the first line break after the format name,
    or after the blanks when there is none."""
    position = format_end
    while position < len(text) and text[position : position + 1] in (b" ", b"\t", b"\r"):
        position += 1
    if text[position : position + 1] == b"\n":
        position += 1
    return text[position:]


def _insert(conn: Any, head: str, fmt: str, data: bytes) -> tuple[int, int]:
    """Stream `data` in `fmt` into the statement `INSERT INTO ...` (no FORMAT clause)."""
    try:
        with conn.send_insert(head, fmt) as inserter:
            if data:
                inserter.append(data)
            done = inserter.finish()
    except Exception as exc:
        raise Refused.engine(str(exc)) from None
    return int(done.rows_written), int(done.bytes_written)


def _apply_settings(conn: Any, settings: dict[str, str]) -> None:
    for name in settings:
        if not _SETTING_NAME_RE.match(name):
            raise Refused.exception(UNKNOWN_SETTING, f"Unknown setting '{name}'")
    if settings:
        _run(conn, "SET " + ", ".join(f"{k} = {_quote(v)}" for k, v in settings.items()))


@contextmanager
def _restore_after(conn: Any, settings: dict[str, str]) -> Iterator[None]:
    """In a session, URL settings and `database` belong to one request: put them back."""
    names = ", ".join(_quote(name) for name in settings if _SETTING_NAME_RE.match(name))
    query = (
        f"SELECT name, value, changed FROM system.settings WHERE name IN ({names or _quote('')})"
    )
    rows = _run(conn, query, "JSONEachRow").bytes()
    database = _run(conn, "SELECT currentDatabase()").bytes().decode().strip()
    try:
        yield
    finally:
        for line in rows.splitlines():
            row = json.loads(line)
            value = _quote(row["value"]) if row["changed"] else "DEFAULT"
            with suppress(Refused):
                _run(conn, f"SET {row['name']} = {value}")
        with suppress(Refused):
            _run(conn, f"USE {_identifier(database)}")


@contextmanager
def _nothing() -> Iterator[None]:
    yield


# --- HTTP ----------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body leave in two writes: without TCP_NODELAY each response would wait
    # for the client's delayed ACK (~40 ms a request).
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, add=True)

    def finish(self) -> None:
        with suppress(OSError):
            super().finish()
        self.server.track(self.connection, add=False)

    def handle(self) -> None:
        """A client that goes away mid-request is not an error of the double."""
        with suppress(ConnectionError):
            super().handle()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the suite's output is the tests'."""

    def handle_one_request(self) -> None:
        """BaseHTTPRequestHandler's, with HTTPServerRequest::readRequest's URI limit."""
        limit = self.server.limits.http_max_uri_size
        line = self.rfile.readline(limit + 64)
        if not line:
            self.close_connection = True
            return
        parts = line.split(b" ")
        too_long = not line.endswith(b"\n") or (len(parts) > 1 and len(parts[1]) > limit)
        if too_long:
            self._refuse_uri(line)
            return
        self.raw_requestline = line
        self._body: bytes | None = None
        if not self.parse_request():
            return
        if self.command not in ("GET", "POST", "HEAD"):
            self.send_error(501)
            return
        self._respond()
        self.wfile.flush()

    def _refuse_uri(self, line: bytes) -> None:
        """A bare 400 and a closed connection; the rest of the request is read first."""
        while not line.endswith(b"\n"):
            line = self.rfile.readline(1 << 20)
            if not line:
                break
        self._body = None
        with suppress(Exception):
            self.headers = parse_headers(self.rfile)
            self._read_body()
        self.close_connection = True
        self.wfile.write(
            b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
        )
        self.wfile.flush()

    def _respond(self) -> None:
        try:
            body, headers = self._serve()
            self._send(200, body, headers)
        except Refused as refused:
            with suppress(Exception):
                self._read_body()  # the next request on this connection starts after it
            headers = {"Content-Type": "text/plain; charset=UTF-8"}
            if refused.code is not None:
                headers["X-ClickHouse-Exception-Code"] = str(refused.code)
            self._send(refused.status, (refused.text + "\n").encode(), headers)
        except Exception:  # a bug of the double: say so, loudly, as a 500 without a code
            text = "HTTP test double internal error\n" + traceback.format_exc()
            self._send(500, text.encode(), {"Content-Type": "text/plain; charset=UTF-8"})

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("X-ClickHouse-Server-Display-Name", DISPLAY_NAME)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _serve(self) -> tuple[bytes, dict[str, str]]:
        path, _, raw_query = self.path.partition("?")
        limits = self.server.limits
        url_params = parse_url_params(raw_query, limits)
        request = Request(self.command, self.headers, url_params)
        if self.command in ("GET", "HEAD") and (
            path == "/ping" or (path == "/" and not request.param("query"))
        ):
            self._read_body()
            return b"Ok.\n", {"Content-Type": "text/html; charset=UTF-8"}
        body = self._read_body()
        if request.param("compress") in ("1", "true") or request.param("decompress") in (
            "1",
            "true",
        ):
            raise _not_implemented("ClickHouse block compression (compress=1, decompress=1)")
        if self.headers.get_content_type() == "multipart/form-data":
            request.multipart = True
            boundary = str(self.headers.get_param("boundary", ""))
            request.form_fields, request.files = parse_multipart(body, boundary, limits)
        else:
            request.body = decompress(body, self.headers.get("Content-Encoding", ""))
        engine = self.server.engine
        with engine.running(request.query_id) as query_id:
            result = engine.execute(request)
        headers = {
            "X-ClickHouse-Query-Id": query_id,
            "X-ClickHouse-Timezone": request.settings.get("session_timezone") or engine.timezone,
            "X-ClickHouse-Summary": json.dumps(result.summary, separators=(",", ":")),
            "Content-Type": _CONTENT_TYPES.get(
                result.fmt or "", "text/tab-separated-values; charset=UTF-8"
            ),
        }
        if result.fmt:
            headers["X-ClickHouse-Format"] = result.fmt
        payload = result.body
        wanted = request.settings.get("enable_http_compression")
        compression_on = (
            engine.http_compression_default if wanted is None else wanted in ("1", "true")
        )
        if compression_on and self.headers.get("Accept-Encoding"):
            payload, encoding = compress(payload, self.headers["Accept-Encoding"])
            if encoding:
                headers["Content-Encoding"] = encoding
        return payload, headers

    def _read_body(self) -> bytes:
        """The request body, read once (an error answer reads it too, like the server)."""
        if self._body is None:
            self._body = self._read_body_once()
        return self._body

    def _read_body_once(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return _read_chunked(self.rfile)
        length = self.headers.get("Content-Length")
        if length is not None:
            return self.rfile.read(int(length))
        if self.command == "POST":
            raise Refused.exception(
                HTTP_LENGTH_REQUIRED,
                "The Transfer-Encoding is not chunked and there is no Content-Length header "
                "for POST request",
            )
        return b""


def _read_chunked(stream: BinaryIO) -> bytes:
    out = bytearray()
    while True:
        size = int(stream.readline().split(b";")[0].strip() or b"0", 16)
        if size == 0:
            while stream.readline() not in (b"\r\n", b"\n", b""):
                pass
            return bytes(out)
        out += stream.read(size)
        stream.readline()


class _Server(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.limits = engine.limits
        self._open: set[socket.socket] = set()
        self._open_guard = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def track(self, sock: socket.socket, *, add: bool) -> None:
        with self._open_guard:
            (self._open.add if add else self._open.discard)(sock)

    def close_connections(self) -> None:
        """Wake the handler threads waiting for a next keep-alive request."""
        with self._open_guard:
            for sock in self._open:
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


class ClickHouseHttpDouble:
    """The double on 127.0.0.1 and a random port, over `data_path`; a context manager."""

    def __init__(self, data_path: Path, limits: Limits | None = None) -> None:
        self.data_path = Path(data_path)
        self.limits = limits or Limits()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """`http://127.0.0.1:<port>` (append `/<database>` for TA_CLICKHOUSE_URL)."""
        if self._server is None:
            raise RuntimeError("the HTTP test double is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> ClickHouseHttpDouble:
        engine = Engine(self.data_path, self.limits)
        self._server = _Server(engine)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="clickhouse-http-double", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, end every connection and request, close chDB (frees the directory)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()  # joins the handler threads
        if self._thread is not None:
            self._thread.join()
        server.engine.close()

    def __enter__(self) -> ClickHouseHttpDouble:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str]) -> int:
    """`python -m tests.clickhouse_http DIR`: serve DIR until SIGINT/SIGTERM (for benchmarks)."""
    if len(argv) != 1:
        print("usage: python -m tests.clickhouse_http DATA_DIR", file=sys.stderr)
        return 2
    stopping = threading.Event()
    with ClickHouseHttpDouble(Path(argv[0])) as double:
        # After chDB started: the engine installs its own handlers, which would swallow these.
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stopping.set())
        print(f"TA_CLICKHOUSE_URL={double.url}/default", flush=True)
        stopping.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
