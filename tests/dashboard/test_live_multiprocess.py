"""Production mode: two ASGI server processes on the real Redis channel layer and one database.

A reading posted to server 1 must reach a websocket client connected to server 2. This is what
breaks silently with the in-memory layer, so it only means something with REDIS_URL set (CI's
service run); the embedded run has no second process to reach by design.
"""

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import websockets
from django.conf import settings
from django.db import connection
from django.utils import timezone

from tenancy.services import ingest_token_create
from tests.conftest import make_station, make_town

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.django_db(transaction=True)


def require_redis():
    if settings.REDIS_URL:
        return
    if os.environ.get("MIZUMORI_REQUIRE_SERVICES") == "1" and os.environ.get("DATABASE_URL"):
        pytest.fail("REDIS_URL must be set when DATABASE_URL is: the service run tests the Redis layer")
    pytest.skip("needs REDIS_URL: cross-process delivery is a property of the Redis channel layer")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url_for_children() -> str:
    db = connection.settings_dict
    if connection.vendor == "postgresql":
        user = db.get("USER") or "postgres"
        return f"postgres://{user}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"
    return ""


def child_environment() -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": database_url_for_children(),
        "SQLITE_PATH": str(connection.settings_dict["NAME"]),
        "EVENTS_DRAIN": "workers",
    }


def start_server(port: int, tmp_path: Path, *, as_bin_serve: bool = False) -> subprocess.Popen:
    """daphne (`make demo`), or uvicorn with the websocket protocol `bin/serve` gives it, whose live
    frames go out through the shared-bytes path (config.websocket.SHARED_TEXT)."""
    log = open(tmp_path / f"daphne-{port}.log", "w")
    command = (
        ["-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1", "--port", str(port),
         "--ws", "config.websocket:WebSocketProtocol", "--lifespan", "on"]
        if as_bin_serve else ["-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "config.asgi:application"]
    )
    return subprocess.Popen(
        [sys.executable, *command], cwd=ROOT, env=child_environment(), stdout=log, stderr=subprocess.STDOUT,
    )


def start_drain_worker(tmp_path: Path) -> subprocess.Popen:
    """The production shape: neither server drains the change log; a separate worker publishes."""
    log = open(tmp_path / "drain.log", "w")
    return subprocess.Popen(
        [sys.executable, "manage.py", "drain_events"], cwd=ROOT, env=child_environment(), stdout=log,
        stderr=subprocess.STDOUT,
    )


def wait_until_up(port: int, process: subprocess.Popen, tmp_path: Path):
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"server on {port} exited: {(tmp_path / f'daphne-{port}.log').read_text()[-2000:]}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/stations", timeout=2)
            return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"server on {port} did not come up: {(tmp_path / f'daphne-{port}.log').read_text()[-2000:]}")


def test_a_reading_posted_to_one_server_reaches_a_client_of_the_other(tmp_path):
    require_redis()
    town = make_town("990001", "town-a", "town a")
    make_station(town, "MP-1")
    token = ingest_token_create(municipality=town)[1]
    ports = free_port(), free_port()
    # The client listens on a server as bin/serve runs it, with a compressed connection.
    servers = [start_server(ports[0], tmp_path), start_server(ports[1], tmp_path, as_bin_serve=True),
               start_drain_worker(tmp_path)]
    try:
        for port, server in zip(ports, servers[:2]):
            wait_until_up(port, server, tmp_path)
        message = asyncio.run(listen_on_second_while_posting_to_first(ports, token))
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(timeout=10)
    assert message["type"] == "stations"
    assert [f["properties"]["code"] for f in message["features"]] == ["MP-1"]
    assert message["features"][0]["properties"]["value"] == 3.75


async def listen_on_second_while_posting_to_first(ports, token):
    uri = f"ws://127.0.0.1:{ports[1]}/ws/live/"
    async with websockets.connect(uri, origin=f"http://127.0.0.1:{ports[1]}", compression="deflate") as ws:
        assert "server_no_context_takeover" in ws.response.headers["Sec-WebSocket-Extensions"]
        await ws.send(json.dumps({"type": "subscribe", "layers": ["river"]}))
        assert json.loads(await ws.recv())["type"] == "subscribed"
        assert json.loads(await ws.recv())["type"] == "snapshot"
        body = json.dumps(
            {"observations": [{"station": "MP-1", "observed_at": timezone.now().isoformat(), "value": 3.75}]}
        ).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{ports[0]}/api/v1/observations",
            data=body,
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        )
        reply = await asyncio.to_thread(lambda: json.load(urllib.request.urlopen(request, timeout=10)))
        assert reply == {"accepted": 1, "duplicates": 0, "rejected": []}
        return json.loads(await asyncio.wait_for(ws.recv(), timeout=10))


