"""Responses are compressed by Accept-Encoding: Brotli or gzip for data, padded gzip for pages."""

import asyncio
import gzip
from datetime import timedelta
from urllib.parse import urlencode

import brotli
import pytest
from django.http import HttpResponse, StreamingHttpResponse
from django.test import RequestFactory
from django.utils import timezone

from config.compression import CompressionMiddleware, accepted_encodings
from sensors.services import observation_ingest
from tests.conftest import response_bytes

DECOMPRESS = {"br": brotli.decompress, "gzip": gzip.decompress}


@pytest.fixture
def history(stations):
    """The query string of a fixed window holding 300 readings of A-PUBLIC."""
    now = timezone.now().replace(microsecond=0)
    observation_ingest(
        municipality=None,
        items=[{"station": "A-PUBLIC", "observed_at": now - timedelta(minutes=m), "value": 1 + m / 100} for m in range(300)],
        source="http",
    )
    return urlencode({"since": (now - timedelta(hours=6)).isoformat(), "until": now.isoformat()})


def body(response) -> bytes:
    return response_bytes(response)


@pytest.mark.parametrize("encoding", ["br", "gzip"])
@pytest.mark.parametrize(
    "path",
    ["/api/v1/stations", "/api/v1/stations/A-PUBLIC/observations?{window}",
     "/api/v1/stations/A-PUBLIC/observations?format=csv&{window}"],
)
def test_data_responses_decompress_to_the_same_bytes(client, history, encoding, path):
    path = path.format(window=history)
    plain = client.get(path)
    assert plain.status_code == 200 and not plain.has_header("Content-Encoding")
    compressed = client.get(path, HTTP_ACCEPT_ENCODING=f"{encoding}, identity;q=0.5")
    assert compressed["Content-Encoding"] == encoding
    assert "Accept-Encoding" in compressed["Vary"]
    assert compressed["Content-Type"] == plain["Content-Type"]
    raw, identity = body(compressed), body(plain)
    assert len(raw) < len(identity)
    assert DECOMPRESS[encoding](raw) == identity


def test_brotli_is_chosen_when_preferred_and_gzip_when_brotli_is_refused(client, history):
    path = "/api/v1/stations/A-PUBLIC/observations"
    assert client.get(path, HTTP_ACCEPT_ENCODING="gzip, deflate, br")["Content-Encoding"] == "br"
    assert client.get(path, HTTP_ACCEPT_ENCODING="gzip;q=1.0, br;q=0.5")["Content-Encoding"] == "gzip"
    assert client.get(path, HTTP_ACCEPT_ENCODING="gzip, br;q=0")["Content-Encoding"] == "gzip"


@pytest.mark.parametrize(
    "header",
    [None, "", "identity", "br;q=0, gzip;q=0", "*", "deflate", "x" * 100_000, ";;;,,q=,br;q=abc,gzip;q=-", "\x00br\x00",
     "brotli, gzipped, xgzip"],
)
def test_no_compression_unless_asked_for_by_name(client, history, header):
    extra = {} if header is None else {"HTTP_ACCEPT_ENCODING": header}
    response = client.get("/api/v1/stations/A-PUBLIC/observations", **extra)
    assert response.status_code == 200
    assert not response.has_header("Content-Encoding")
    assert response.json()["station"] == "A-PUBLIC"


def test_pages_get_padded_gzip_even_when_brotli_is_offered(client, history):
    # Pages carry CSRF tokens: only gzip with Django's random-length header padding (BREACH).
    response = client.get("/accounts/login/", HTTP_ACCEPT_ENCODING="br, gzip")
    assert response.status_code == 200
    assert response["Content-Encoding"] == "gzip"
    assert response.content[3] & gzip.FNAME  # the padding lives in the gzip header's file name
    page = gzip.decompress(response.content).decode()
    assert page.lstrip().lower().startswith("<!doctype html")
    assert not client.get("/accounts/login/", HTTP_ACCEPT_ENCODING="br").has_header("Content-Encoding")


def run(response_factory, accept="br"):
    request = RequestFactory().get("/api/x", HTTP_ACCEPT_ENCODING=accept)
    return CompressionMiddleware(lambda request: response_factory())(request)


@pytest.mark.parametrize("content_type", ["application/pdf", "image/png", "application/zip", "application/octet-stream"])
def test_already_compressed_formats_are_left_alone(content_type):
    response = run(lambda: HttpResponse(b"%PDF" + b"a" * 5000, content_type=content_type))
    assert not response.has_header("Content-Encoding") and response.content == b"%PDF" + b"a" * 5000


def test_short_and_already_encoded_responses_are_left_alone():
    assert not run(lambda: HttpResponse(b"{}", content_type="application/json")).has_header("Content-Encoding")
    encoded = HttpResponse(b"x" * 1000, content_type="application/json")
    encoded["Content-Encoding"] = "gzip"
    assert run(lambda: encoded).content == b"x" * 1000


@pytest.mark.parametrize("content_type", ["application/geo+json", "application/cap+xml", "text/csv; charset=utf-8",
                                          "application/atom+xml", "application/json"])
def test_data_formats_get_brotli_and_a_weak_etag(content_type):
    def respond():
        response = HttpResponse(b'{"a": 1}' * 500, content_type=content_type)
        response["ETag"] = '"v1"'
        return response

    response = run(respond)
    assert response["Content-Encoding"] == "br" and response["ETag"] == 'W/"v1"'
    assert response["Content-Length"] == str(len(response.content))
    assert brotli.decompress(response.content) == b'{"a": 1}' * 500


def test_async_streams_are_compressed_chunk_by_chunk():
    async def rows():
        for i in range(2000):
            yield f"S-1,2026-11-22T09:{i % 60:02d}:00+09:00,{i / 7!r},ok\r\n"

    expected = "".join(f"S-1,2026-11-22T09:{i % 60:02d}:00+09:00,{i / 7!r},ok\r\n" for i in range(2000)).encode()
    for accept, decompress in (("br", brotli.decompress), ("gzip", gzip.decompress)):
        response = run(lambda: StreamingHttpResponse(rows(), content_type="text/csv"), accept)
        assert response["Content-Encoding"] == accept

        async def collect(response=response):
            return b"".join([chunk async for chunk in response.streaming_content])

        assert decompress(asyncio.run(collect())) == expected


def test_accept_encoding_parsing():
    assert accepted_encodings("gzip, deflate, br;q=0.5, zstd;q=0") == {"gzip": 1.0, "deflate": 1.0, "br": 0.5, "zstd": 0.0}
    assert accepted_encodings("BR ; Q = 0.9") == {"br": 0.9}
    assert accepted_encodings("br;q=1e999999, gzip;q=nan;x") == {}
