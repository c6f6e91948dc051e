"""Request bodies: Content-Encoding on /v1/ingest, the cap on the inflated size, and 415s."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable

import orjson
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from service.api.content import BodyDecoder, DecodedTooLarge, body_decoder, media_type, zstd
from service.clickhouse import ClickHouse
from service.errors import UnsupportedMediaType
from tests.conftest import observation, trace

BATCH = orjson.dumps({"traces": [trace()], "observations": [observation()]})


def written(ch: ClickHouse) -> int:
    return int(ch.query_rows("t", sql="SELECT count() FROM observations")[0][0])


def raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


@pytest.mark.parametrize(
    ("encoding", "body"),
    [
        ("gzip", gzip.compress(BATCH)),
        ("x-gzip", gzip.compress(BATCH)),
        ("deflate", zlib.compress(BATCH)),
        ("deflate", raw_deflate(BATCH)),
        ("zstd", zstd.compress(BATCH)),
        ("identity", BATCH),
        ("gzip", gzip.compress(BATCH[:20]) + gzip.compress(BATCH[20:])),  # two members
    ],
)
def test_ingest_accepts_compressed_bodies(
    client: TestClient, clickhouse: ClickHouse, encoding: str, body: bytes
) -> None:
    response = client.post(
        "/v1/ingest",
        content=body,
        headers={"content-type": "application/json", "content-encoding": encoding},
    )
    assert response.status_code == 202, response.text
    assert written(clickhouse) == 1


def test_a_gzip_bomb_on_ingest_is_413_and_writes_nothing(
    make_app: Callable[..., Starlette], clickhouse: ClickHouse
) -> None:
    bomb = gzip.compress(b" " * (32 * 1024 * 1024), compresslevel=9)
    with TestClient(make_app(ingest_max_bytes=64 * 1024)) as client:
        response = client.post("/v1/ingest", content=bomb, headers={"content-encoding": "gzip"})
    assert response.status_code == 413
    assert response.json()["error"] == {
        "code": "payload_too_large",
        "message": "body exceeds 65536 bytes once decompressed (gzip) (TA_INGEST_MAX_BYTES)",
    }
    assert written(clickhouse) == 0


def test_the_decoder_never_inflates_more_than_one_byte_past_the_cap() -> None:
    """The bound that keeps a bomb from costing memory: each step asks for room + 1 bytes."""
    limit = 4096
    bomb = gzip.compress(b"\x00" * (8 * 1024 * 1024))
    decoder = BodyDecoder("gzip", limit)
    pieces: list[bytes] = []

    def feed_in_chunks() -> None:
        for start in range(0, len(bomb), 1024):
            pieces.append(decoder.feed(bomb[start : start + 1024]))

    with pytest.raises(DecodedTooLarge):
        feed_in_chunks()
    assert sum(map(len, pieces)) <= limit
    assert decoder._produced == limit + 1


@pytest.mark.parametrize(
    ("encoding", "body", "message"),
    [
        ("gzip", gzip.compress(BATCH)[:-12], "body: not valid gzip data (the compressed stream"),
        ("gzip", b"this is not gzip", "body: not valid gzip data (Error -3"),
        ("zstd", b"\x28\xb5\x2f\xfd garbage", "body: not valid zstd data"),
        ("gzip", gzip.compress(BATCH) + b"trailing junk", "body: not valid gzip data"),
    ],
)
def test_a_corrupt_compressed_body_is_400(
    client: TestClient, clickhouse: ClickHouse, encoding: str, body: bytes, message: str
) -> None:
    response = client.post("/v1/ingest", content=body, headers={"content-encoding": encoding})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_body"
    assert response.json()["error"]["message"].startswith(message), response.text
    assert written(clickhouse) == 0


def test_an_unsupported_encoding_on_ingest_is_415_naming_it_never_invalid_json(
    client: TestClient,
) -> None:
    response = client.post("/v1/ingest", content=BATCH, headers={"content-encoding": "br"})
    assert response.status_code == 415
    assert response.json()["error"] == {
        "code": "unsupported_media_type",
        "message": "Content-Encoding: 'br' is not supported "
        "(use one of gzip, deflate, zstd, identity)",
    }
    stacked = client.post("/v1/ingest", content=BATCH, headers={"content-encoding": "gzip, zstd"})
    assert stacked.status_code == 415


@pytest.mark.parametrize(
    "content_type", ["application/x-protobuf", "text/plain", "application/x-www-form-urlencoded"]
)
def test_ingest_refuses_other_content_types_with_415(
    client: TestClient, clickhouse: ClickHouse, content_type: str
) -> None:
    response = client.post("/v1/ingest", content=BATCH, headers={"content-type": content_type})
    assert response.status_code == 415
    assert response.json()["error"] == {
        "code": "unsupported_media_type",
        "message": f"Content-Type: {content_type!r} is not accepted here (use application/json)",
    }
    assert written(clickhouse) == 0


def test_json_with_parameters_and_a_missing_content_type_are_accepted(client: TestClient) -> None:
    headers = {"content-type": "Application/JSON; charset=utf-8"}
    assert client.post("/v1/ingest", content=BATCH, headers=headers).status_code == 202
    assert client.post("/v1/ingest", content=BATCH).status_code == 202


def test_content_negotiation_helpers() -> None:
    assert media_type(" application/json ; charset=utf-8") == "application/json"
    assert media_type("") is None
    assert media_type(None) is None
    assert body_decoder(None, 10) is None
    assert body_decoder("identity", 10) is None
    decoder = body_decoder("GZIP", 10)
    assert decoder is not None
    assert decoder.encoding == "gzip"
    with pytest.raises(UnsupportedMediaType) as raised:
        body_decoder("compress", 10)
    assert raised.value.status == 415
