"""Chunked request bodies (Transfer-Encoding: chunked, no Content-Length) at the ASGI level, as
daphne or uvicorn hand them to the application: read like any other body, with the same limits,
and a body above REQUEST_MAX_BODY_BYTES refused without reading on (issue 10 item 7)."""

from __future__ import annotations

import gc
import json
from datetime import datetime, timedelta, timezone

import pytest
import pytest_asyncio
from asgiref.sync import sync_to_async
from asgiref.testing import ApplicationCommunicator
from django.db import connections

from config.asgi import application
from sensors.models import Observation

T0 = datetime(2026, 11, 21, 12, 0, tzinfo=timezone.utc)
JST = timezone(timedelta(hours=9))

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


@pytest_asyncio.fixture(autouse=True)
async def close_the_handler_threads_connections(settings):
    """The application's views (and the tests' async ORM calls) run on asgiref's sync thread; its
    connections must be closed there, or PostgreSQL keeps the test database busy at teardown.
    These tests are about reading bodies: no change-log handler runs after ingestion."""
    settings.EVENTS_DRAIN = "workers"
    yield
    await sync_to_async(connections.close_all)()
    # Django's ASGI handler runs each request's view on a thread of its own (ThreadSensitiveContext);
    # that thread is gone, and its connection closes when the object is collected.
    gc.collect()


def scope(token: str, content_type: str, *, headers=()) -> dict:
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": "/api/v1/observations", "raw_path": b"/api/v1/observations", "root_path": "", "query_string": b"",
        "headers": [
            (b"host", b"localhost"), (b"authorization", f"Bearer {token}".encode()),
            (b"content-type", content_type.encode()), *headers,
        ],
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000),
    }


CHUNKED = ((b"transfer-encoding", b"chunked"),)


async def exchange(request_scope: dict, chunks) -> tuple[int, dict, int]:
    """(status, JSON body, how many body messages the application took) for a body sent in `chunks`."""
    communicator = ApplicationCommunicator(application, request_scope)
    taken = 0
    chunks = list(chunks)
    for index, chunk in enumerate(chunks):
        await communicator.send_input({"type": "http.request", "body": chunk, "more_body": index < len(chunks) - 1})
    start = await communicator.receive_output(timeout=30)
    body = b""
    while True:
        message = await communicator.receive_output(timeout=30)
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break
    taken = len(chunks) - communicator.input_queue.qsize()
    await communicator.wait(timeout=5)
    return start["status"], json.loads(body), taken


def readings(count: int, minutes: int = 0) -> list[dict]:
    return [{"station": "A-PUBLIC", "observed_at": (T0 + timedelta(minutes=minutes + m)).astimezone(JST).isoformat(),
             "value": 1.0 + m / 100} for m in range(count)]


def split(data: bytes, size: int) -> list[bytes]:
    return [data[start : start + size] for start in range(0, len(data), size)] or [b""]


async def test_a_chunked_json_body_is_read(stations, token_a):
    data = json.dumps({"observations": readings(50)}).encode()
    status, reply, _ = await exchange(scope(token_a, "application/json", headers=CHUNKED), split(data, 97))
    assert (status, reply) == (200, {"accepted": 50, "duplicates": 0, "rejected": []})
    assert await Observation.objects.filter(station__code="A-PUBLIC").acount() == 50


async def test_a_chunked_csv_body_is_read(stations, token_a):
    rows = "".join(f"{item['station']},{item['observed_at']},{item['value']}\n" for item in readings(5))
    status, reply, _ = await exchange(
        scope(token_a, "text/csv", headers=CHUNKED), split(("station,observed_at,value\n" + rows).encode(), 10)
    )
    assert (status, reply["accepted"]) == (200, 5)


async def test_an_empty_chunked_body_says_so(stations, token_a):
    status, reply, _ = await exchange(scope(token_a, "application/json", headers=CHUNKED), [b""])
    assert (status, reply["detail"]) == (400, 'Empty body; send {"observations": [...]} or CSV.')


async def test_a_chunked_body_over_the_ingest_limit_is_413(stations, token_a, settings):
    settings.INGEST_MAX_BODY_BYTES = 1000
    data = json.dumps({"observations": readings(50)}).encode()
    status, reply, _ = await exchange(scope(token_a, "application/json", headers=CHUNKED), split(data, 300))
    assert (status, reply["detail"]) == (413, "Request body exceeds 1000 bytes; split the batch.")
    assert not await Observation.objects.aexists()


async def test_a_chunked_body_over_the_server_limit_is_refused_without_reading_on(stations, token_a, settings):
    settings.REQUEST_MAX_BODY_BYTES = 10_000
    status, reply, taken = await exchange(
        scope(token_a, "application/json", headers=CHUNKED), [b"[" * 1000] * 200
    )
    assert (status, reply["detail"]) == (413, "Request body exceeds 10000 bytes; split the batch.")
    assert taken == 11  # stopped at the first chunk over the limit; 189 never read
    assert not await Observation.objects.aexists()


async def test_a_declared_length_over_the_server_limit_is_refused_before_reading(stations, token_a, settings):
    settings.REQUEST_MAX_BODY_BYTES = 10_000
    headers = ((b"content-length", b"20000"),)
    status, _, taken = await exchange(scope(token_a, "application/json", headers=headers), [b"{" * 10_000, b"}" * 10_000])
    assert status == 413 and taken == 0


# --- a real daphne -----------------------------------------------------------------------------


@pytest.fixture
def daphne(tmp_path):
    from tests.e2e.conftest import AsgiServer, free_port, server_environment

    env = {**server_environment(), "INGEST_MAX_BODY_BYTES": "4000", "REQUEST_MAX_BODY_BYTES": "20000"}
    server = AsgiServer(port=free_port(), env=env, log_dir=tmp_path)
    try:
        yield server.start().wait_until_up()
    finally:
        server.stop()


def post_chunked(port: int, token: str, chunks) -> tuple[int, dict]:
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("POST", "/api/v1/observations", body=iter(chunks), encode_chunked=True,
                           headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


async def test_daphne_accepts_chunked_bodies_within_the_limits(stations, token_a, daphne):
    data = json.dumps({"observations": readings(10)}).encode()
    assert len(data) < 4000
    status, reply = await sync_to_async(post_chunked)(daphne.port, token_a, split(data, 100))
    assert (status, reply["accepted"]) == (200, 10), reply
    over_ingest = json.dumps({"observations": readings(60, minutes=100)}).encode()
    assert 4000 < len(over_ingest) < 20000
    status, reply = await sync_to_async(post_chunked)(daphne.port, token_a, split(over_ingest, 500))
    assert (status, reply["detail"]) == (413, "Request body exceeds 4000 bytes; split the batch.")
    status, reply = await sync_to_async(post_chunked)(daphne.port, token_a, [b" " * 1000] * 30)
    assert (status, reply["detail"]) == (413, "Request body exceeds 20000 bytes; split the batch.")
    assert await Observation.objects.acount() == 10
