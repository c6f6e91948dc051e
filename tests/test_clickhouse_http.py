"""The HTTP test double refuses what a ClickHouse server refuses, and serves the rest exactly.

These run in both modes (`http_url` always goes through the double): they are what makes
a green `TA_TEST_ENGINE=http` run mean "a server would have accepted every request".
"""

from __future__ import annotations

import gzip
import http.client
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import clickhouse_connect
import httpx
import pytest
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError
from clickhouse_connect.driver.external import ExternalData

from tests.clickhouse_http import ClickHouseHttpDouble, Limits

KIB = 1024


@pytest.fixture
def client(http_url: str) -> Iterator[Client]:
    """clickhouse-connect's HttpClient, built as service/clickhouse.py builds it."""
    base = httpx.URL(http_url)
    ch = clickhouse_connect.get_client(
        host=base.host,
        port=base.port,
        database="default",
        client_name="trace-analytics",
        autogenerate_session_id=False,
        tz_mode="aware",
    )
    yield ch
    ch.close()


@pytest.fixture
def raw(http_url: str) -> Iterator[httpx.Client]:
    """Plain HTTP to the double, to see statuses and headers as the wire carries them."""
    with httpx.Client(base_url=str(httpx.URL(http_url).copy_with(path="/"))) as http:
        yield http


def refusal(excinfo: pytest.ExceptionInfo[DatabaseError]) -> tuple[int | None, str]:
    return getattr(excinfo.value, "code", None), str(excinfo.value)


# The limits, as a server enforces them.


def test_a_150_kib_bind_parameter_is_refused_as_a_server_refuses_a_long_form_field(
    client: Client,
) -> None:
    keys = [f"key-{i:06d}" for i in range(150 * KIB // 14)]
    with pytest.raises(DatabaseError) as excinfo:
        client.query(
            "SELECT count() FROM numbers(1) WHERE toString(number) IN {k:Array(String)}",
            parameters={"k": keys},
        )
    code, message = refusal(excinfo)
    assert code == 1000
    assert "HTML Form Exception: Field value too long" in message


def test_parameters_under_the_field_limit_pass_even_when_they_add_up_over_it(
    client: Client,
) -> None:
    """The limit is per field: two 100 KiB parameters are fine, one 150 KiB one is not."""
    a = [f"a{i:07d}" for i in range(100 * KIB // 12)]
    b = [f"b{i:07d}" for i in range(100 * KIB // 12)]
    result = client.query(
        "SELECT length({a:Array(String)}) + length({b:Array(String)})",
        parameters={"a": a, "b": b},
    )
    assert result.result_rows == [(len(a) + len(b),)]


def test_a_form_field_of_exactly_128_kib_passes_and_one_byte_more_is_refused(
    raw: httpx.Client,
) -> None:
    def post(value: str) -> httpx.Response:
        files = {"query": (None, "SELECT length({v:String})"), "param_v": (None, value)}
        return raw.post("/", files=files)

    accepted = post("x" * (128 * KIB))
    assert accepted.status_code == 200, accepted.text
    assert accepted.text == f"{128 * KIB}\n"
    refused = post("x" * (128 * KIB + 1))
    assert refused.status_code == 500
    assert refused.headers["X-ClickHouse-Exception-Code"] == "1000"
    assert "Field value too long" in refused.text


def test_a_command_parameter_over_the_limit_is_refused_in_the_url_too(client: Client) -> None:
    """command() never form-encodes: its parameters ride in the URL, same field limit."""
    with pytest.raises(DatabaseError) as excinfo:
        client.command("SELECT length({v:String})", parameters={"v": "x" * (150 * KIB)})
    assert refusal(excinfo)[0] == 1000


def test_a_refused_request_leaves_its_kept_alive_connection_usable(http_url: str) -> None:
    """The refused request's body is read anyway, so the next request parses."""
    address = httpx.URL(http_url)
    connection = http.client.HTTPConnection(address.host, address.port)
    try:
        connection.request("POST", "/?param_v=" + "x" * (140 * KIB), body=b"SELECT {v:String}")
        refused = connection.getresponse()
        assert refused.status == 500
        assert refused.getheader("Connection") != "close"
        refused.read()
        connection.request("POST", "/", body=b"SELECT 1")
        assert connection.getresponse().read() == b"1\n"
    finally:
        connection.close()


def test_a_query_over_256_kib_is_refused_by_max_query_size(client: Client) -> None:
    literal = ", ".join(f"'{i:08d}'" for i in range(260 * KIB // 12))
    with pytest.raises(DatabaseError) as excinfo:
        client.query(f"SELECT length([{literal}])")
    code, message = refusal(excinfo)
    assert code == 62
    assert "Max query size exceeded" in message


def test_a_request_may_raise_max_query_size_as_on_a_server(client: Client) -> None:
    literal = ", ".join(f"'{i:08d}'" for i in range(260 * KIB // 12))
    result = client.query(f"SELECT length([{literal}])", settings={"max_query_size": 1024 * KIB})
    assert result.result_rows == [(260 * KIB // 12,)]


def test_insert_data_does_not_count_towards_max_query_size(client: Client) -> None:
    client.command("CREATE TABLE big (s String) ENGINE = MergeTree ORDER BY s")
    client.insert("big", [["x" * 1000] for _ in range(600)], column_names=["s"])
    assert client.command("SELECT count() FROM big") == 600


def post_to(http_url: str, target: str) -> tuple[int, dict[str, str]]:
    """POST to a raw request target (httpx refuses URLs over 64 KiB): status, headers."""
    address = httpx.URL(http_url)
    connection = http.client.HTTPConnection(address.host, address.port)
    try:
        connection.request("POST", target, body=b"")
        response = connection.getresponse()
        response.read()
        return response.status, dict(response.getheaders())
    finally:
        connection.close()


def test_a_uri_over_1_mib_gets_a_bare_400(http_url: str) -> None:
    # Over the URI limit, but every field under the field limit: the pad is split.
    pads = "&".join(f"param_p{i}=" + "x" * (100 * KIB) for i in range(11))
    status, headers = post_to(http_url, "/?query=SELECT+1&" + pads)
    assert status == 400
    assert "X-ClickHouse-Exception-Code" not in headers
    assert headers["Connection"] == "close"


def test_a_uri_of_exactly_1_mib_is_read_but_one_character_more_is_refused(
    http_url: str,
) -> None:
    """The URI limit counts the whole request target; its fields still meet the field limit."""
    prefix = "/?query=SELECT+1&param_pad="
    status, headers = post_to(http_url, prefix + "x" * (1024 * KIB - len(prefix)))
    assert status == 500  # read, then its 1 MiB field is refused
    assert headers["X-ClickHouse-Exception-Code"] == "1000"
    assert post_to(http_url, prefix + "x" * (1024 * KIB + 1 - len(prefix)))[0] == 400


def test_a_uri_over_1_mib_is_a_database_error_for_the_client(client: Client) -> None:
    """command() keeps its parameters in the URL: 11 parameters of 100 KiB pass the field
    limit one by one and the URI limit not at all."""
    names = [f"p{i}" for i in range(11)]
    sql = "SELECT " + " + ".join(f"length({{{n}:String}})" for n in names)
    with pytest.raises(DatabaseError, match="HTTP status 400"):
        client.command(sql, parameters={n: "x" * (100 * KIB) for n in names})
    assert (
        client.command(
            sql.replace(" + length({p10:String})", ""),
            parameters={n: "x" * (90 * KIB) for n in names[:10]},
        )
        == 10 * 90 * KIB
    )


def test_limits_are_configurable_for_the_double_but_default_to_the_server_s() -> None:
    assert Limits() == Limits(
        http_max_uri_size=1_048_576,
        http_max_field_name_size=131_072,
        http_max_field_value_size=131_072,
        max_query_size=262_144,
    )


# The protocol, served exactly.


def test_native_inserts_keep_every_type_exactly(client: Client) -> None:
    client.command(
        """CREATE TABLE typed (
            id UInt64, name LowCardinality(String), at DateTime64(6, 'UTC'),
            tags Map(String, String), maybe Nullable(Float64), pairs Array(Tuple(String, UInt8)),
            amount Decimal(18, 6), day Date
        ) ENGINE = MergeTree ORDER BY id"""
    )
    at = datetime(2026, 11, 22, 10, 0, 0, 123456, tzinfo=UTC)
    rows = [
        [2**64 - 1, "llm", at, {"k": "v"}, None, [("a", 1)], Decimal("0.000001"), at.date()],
        [0, "", at, {}, 1.5, [], Decimal("123456789.123456"), at.date()],
    ]
    columns = ["id", "name", "at", "tags", "maybe", "pairs", "amount", "day"]
    client.insert("typed", rows, column_names=columns)
    back = client.query("SELECT * FROM typed ORDER BY id DESC").result_rows
    assert [list(row) for row in back] == rows


def test_errors_carry_the_server_code_status_and_text(raw: httpx.Client, client: Client) -> None:
    response = raw.post("/", content=b"SELECT * FROM missing_table")
    assert response.status_code == 404
    assert response.headers["X-ClickHouse-Exception-Code"] == "60"
    assert "(UNKNOWN_TABLE)" in response.text
    with pytest.raises(DatabaseError) as excinfo:
        client.query("SELECT * FROM missing_table")
    assert refusal(excinfo)[0] == 60
    syntax = raw.post("/", content=b"SELEC 1")
    assert (syntax.status_code, syntax.headers["X-ClickHouse-Exception-Code"]) == (400, "62")


def test_an_unknown_url_setting_fails_like_on_a_server(raw: httpx.Client) -> None:
    response = raw.post("/", params={"no_such_setting": "1"}, content=b"SELECT 1")
    assert response.status_code == 404
    assert response.headers["X-ClickHouse-Exception-Code"] == "115"


def test_query_text_is_the_query_parameter_a_line_break_and_the_body(raw: httpx.Client) -> None:
    response = raw.post("/", params={"query": "SELECT 1 +"}, content=b"2")
    assert response.text == "3\n"
    assert response.headers["X-ClickHouse-Format"] == "TabSeparated"


def test_an_urlencoded_body_is_query_text_as_on_a_server(raw: httpx.Client) -> None:
    """HTTPHandler parses only multipart bodies as forms; `query=...` is then bad SQL."""
    response = raw.post(
        "/",
        content=b"query=SELECT+1",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 400
    assert response.headers["X-ClickHouse-Exception-Code"] == "62"


def test_compressed_bodies_and_responses(raw: httpx.Client) -> None:
    response = raw.post(
        "/",
        content=gzip.compress(b"SELECT 42"),
        headers={"Content-Encoding": "gzip", "Accept-Encoding": "gzip, deflate"},
    )
    assert response.headers["Content-Encoding"] == "gzip"
    assert response.text == "42\n"  # httpx decompressed it
    with pytest.raises(httpx.HTTPError):
        raw.post("/", content=b"SELECT 1", headers={"Content-Encoding": "rot13"}).raise_for_status()


def test_a_get_request_is_read_only(raw: httpx.Client) -> None:
    response = raw.get("/", params={"query": "CREATE TABLE nope (a UInt8) ENGINE = Memory"})
    assert response.headers["X-ClickHouse-Exception-Code"] == "164"  # READONLY
    assert raw.get("/ping").text == "Ok.\n"


def test_without_a_session_nothing_survives_a_request(client: Client) -> None:
    client.command("CREATE TEMPORARY TABLE scratch (a UInt8)")
    with pytest.raises(DatabaseError) as excinfo:
        client.query("SELECT * FROM scratch")
    assert refusal(excinfo)[0] == 60
    client.command("SET max_threads = 1")
    assert client.command("SELECT getSetting('max_threads')") != 1


def test_a_session_keeps_its_state_but_not_the_url_settings(http_url: str) -> None:
    base = httpx.URL(http_url)
    ch = clickhouse_connect.get_client(host=base.host, port=base.port, session_id="s1")
    try:
        ch.command("CREATE TEMPORARY TABLE scratch (a UInt8)")
        ch.command("INSERT INTO scratch VALUES (7)")
        assert ch.query("SELECT a FROM scratch").result_rows == [(7,)]
        assert ch.command("SELECT getSetting('max_threads')", settings={"max_threads": 3}) == 3
        assert ch.command("SELECT getSetting('max_threads')") != 3
    finally:
        ch.close()


def test_external_data_is_a_temporary_table_of_the_request(client: Client) -> None:
    data = ExternalData(
        data=b"p\tt1\np\tt2\n", file_name="wanted", structure="project String, trace String"
    )
    result = client.query("SELECT count() FROM wanted WHERE project = 'p'", external_data=data)
    assert result.result_rows == [(2,)]


def test_a_second_double_can_open_the_same_directory_after_the_first_stops(
    tmp_path: Path,
) -> None:
    with ClickHouseHttpDouble(tmp_path / "reuse") as first:
        httpx.post(first.url, content=b"CREATE TABLE kept (a UInt8) ENGINE = MergeTree ORDER BY a")
        httpx.post(first.url, content=b"INSERT INTO kept VALUES (1)")
    with ClickHouseHttpDouble(tmp_path / "reuse") as second:
        assert httpx.post(second.url, content=b"SELECT count() FROM kept").text == "1\n"
