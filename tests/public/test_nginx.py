"""deploy/nginx.conf.template, as deployed, in front of a real ASGI server: the public snapshot is
served from nginx's cache (one upstream request for many concurrent readers, 304s from the cache,
stale copies while the application is down), staff responses pass through uncached, websockets
pass through, and every response carries the security headers.

Needs Debian's nginx: without it the test skips, or fails under MIZUMORI_REQUIRE_SERVICES=1 (CI).
"""

from __future__ import annotations

import gzip
import os
import re
import signal
import socket
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from config.build import front_end_build
from tests.e2e.conftest import AsgiServer, free_port, server_environment
from tests.public.proxy import ROOT, access_log, nginx_config, nginx_in_front

pytestmark = pytest.mark.django_db(transaction=True)
TICK = 2
READERS = 50
SECURITY_HEADERS = dict(nginx_config.SECURITY_HEADERS)


def get(url: str, headers: dict | None = None):
    request = urllib.request.Request(url, headers={"Accept-Encoding": "gzip", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


@pytest.fixture
def app_and_proxy(stations, tmp_path):
    app = AsgiServer(
        port=free_port(),
        env={**server_environment(), "PUBLIC_SNAPSHOT_TICK_SECONDS": str(TICK)},
        log_dir=tmp_path,
        name="behind-nginx",
    )
    app.start().wait_until_up()
    try:
        with nginx_in_front(tmp_path, upstream=app.port) as (proxy, prefix):
            yield app, proxy, prefix
    finally:
        app.stop()


def test_nginx_caches_the_public_page_collapses_misses_and_serves_stale(app_and_proxy):
    app, proxy, prefix = app_and_proxy
    snapshot = f"{proxy}/api/v1/public/snapshot"

    status, headers, body = get(snapshot)
    assert status == 200 and headers["X-Cache-Status"] == "MISS"
    assert headers["Content-Encoding"] == "gzip" and headers["Cache-Control"].startswith(("public, max-age=1,", "public, max-age=2,"))
    for name, value in SECURITY_HEADERS.items():
        assert headers.get_all(name) == [value], name
    # The next readers get nginx's copy, whatever cookie or query they bring.
    for extra in ({}, {"Cookie": "sessionid=someone; csrftoken=x"}):
        again = get(snapshot, extra)
        assert again[0] == 200 and again[1]["X-Cache-Status"] == "HIT" and again[2] == body
        assert "Set-Cookie" not in again[1]
    busting = get(snapshot + "?x=1%27%20OR%201=1")
    assert busting[1]["X-Cache-Status"] == "HIT" and busting[2] == body
    # A reader who has it is told so by nginx.
    status, headers, _ = get(snapshot, {"If-None-Match": headers["ETag"]})
    assert status == 304

    # Staff pages and the API pass through, never stored.
    status, headers, _ = get(f"{proxy}/api/v1/stations")
    assert status == 200 and headers["Cache-Control"] == "private, no-store" and "X-Cache-Status" not in headers
    assert headers.get_all("X-Frame-Options") == ["DENY"]
    status, headers, page = get(f"{proxy}/hq/")  # redirected to the login page
    assert status == 200 and b'name="password"' in gzip.decompress(page)
    assert "no-store" in headers["Cache-Control"] and "X-Cache-Status" not in headers

    # The websocket handshake goes through.
    with socket.create_connection(("127.0.0.1", int(proxy.rsplit(":", 1)[1])), timeout=10) as ws:
        ws.sendall(
            b"GET /ws/live/?view=public HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: http://127.0.0.1\r\n"
            b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        assert ws.recv(1024).startswith(b"HTTP/1.1 101")

    # Many readers at once on a cold copy: one request reaches the application.
    basemap = f"{proxy}/public/basemap.js"
    with ThreadPoolExecutor(max_workers=READERS) as pool:
        results = list(pool.map(lambda _: get(basemap), range(READERS)))
    assert {status for status, _, _ in results} == {200} and len({body for _, _, body in results}) == 1
    statuses = [line.split("cache=")[1].split()[0] for line in access_log(prefix, "/public/basemap.js", at_least=READERS)]
    assert statuses.count("MISS") == 1 and len(statuses) == READERS, statuses

    # The application goes down: readers still get the last copy, after it expired.
    app.kill()
    time.sleep(TICK + 0.5)
    status, headers, stale = get(snapshot)
    assert status == 200 and headers["X-Cache-Status"] == "STALE" and stale == body
    status, headers, _ = get(f"{proxy}/api/v1/stations")
    assert status == 502  # nothing private is ever served from a cache


# --- staff are not crowded out by the public -------------------------------------------------------

ANONYMOUS_CONNECTIONS = 4


@pytest.fixture
def two_pools_and_proxy(stations, tmp_path):
    """As `make serve PROXY=1` runs it: a staff pool and a public pool behind nginx, with a small
    limit on the anonymous requests in flight so the test can reach it."""
    env = {**server_environment(), "PUBLIC_SNAPSHOT_TICK_SECONDS": str(TICK)}
    # One after the other: two starting at once on a busy machine can take longer than a start may.
    staff = AsgiServer(port=free_port(), env=env, log_dir=tmp_path, name="staff-pool").start().wait_until_up()
    public = AsgiServer(port=free_port(), env=env, log_dir=tmp_path, name="public-pool")
    try:
        public.start().wait_until_up()
        with nginx_in_front(
            tmp_path, upstream=staff.port, public_upstream=public.port, anonymous_connections=ANONYMOUS_CONNECTIONS
        ) as (proxy, prefix):
            yield staff, public, proxy, prefix
    finally:
        if public.process is not None and public.process.poll() is None:
            os.kill(public.process.pid, signal.SIGCONT)
        public.stop()
        staff.stop()


def pools(prefix: Path, path: str, at_least: int = 1) -> list[str]:
    return [line.rsplit("up=", 1)[1] for line in access_log(prefix, path, at_least=at_least)]


def test_the_nginx_template_knows_the_session_cookie_by_its_name(settings):
    # deploy/nginx.conf.template tells staff from the anonymous by this cookie.
    assert settings.SESSION_COOKIE_NAME == "sessionid"
    assert "$cookie_sessionid" in (ROOT / "deploy" / "nginx.conf.template").read_text()


def test_a_stalled_public_pool_leaves_staff_pages_and_the_cached_page_answering(two_pools_and_proxy, client, user_a):
    staff, public, proxy, prefix = two_pools_and_proxy
    client.force_login(user_a)
    session = {"Cookie": f"sessionid={client.cookies['sessionid'].value}"}
    snapshot = f"{proxy}/api/v1/public/snapshot"

    # The cache is filled by the public pool; the logged-in and gateways go to the staff pool.
    assert get(snapshot)[0] == 200 and get(snapshot)[1]["X-Cache-Status"] == "HIT"
    status, _, page = get(f"{proxy}/hq/", session)
    assert status == 200 and b"A-PRIVATE" in gzip.decompress(page)
    assert get(f"{proxy}/api/v1/stations")[0] == 200  # anonymous: the public pool
    assert pools(prefix, "/api/v1/public/snapshot")[0] == f"127.0.0.1:{public.port}"
    assert pools(prefix, "/hq/") == [f"127.0.0.1:{staff.port}"]
    assert pools(prefix, "/api/v1/stations") == [f"127.0.0.1:{public.port}"]

    # The public pool stops answering, as one swamped by readers would.
    os.kill(public.process.pid, signal.SIGSTOP)
    time.sleep(TICK + 0.5)
    with ThreadPoolExecutor(max_workers=ANONYMOUS_CONNECTIONS + 2) as pool:
        stuck = [pool.submit(get, f"{proxy}/api/v1/stations?n={n}") for n in range(ANONYMOUS_CONNECTIONS)]
        time.sleep(1)  # they are in flight, waiting for the public pool
        # Past the limit, the anonymous are told at once to come back later, not queued.
        status, headers, _ = get(f"{proxy}/api/v1/stations?n=over")
        assert status == 503 and headers.get_all("X-Frame-Options") == ["DENY"]
        # The readers of the public page get the cached copy meanwhile, without waiting.
        status, headers, body = get(snapshot)
        assert status == 200 and headers["X-Cache-Status"] in {"STALE", "UPDATING"} and body
        # Staff pages, logging in and gateways are answered by the staff pool as before.
        started = time.monotonic()
        status, _, page = get(f"{proxy}/hq/", session)
        assert status == 200 and b"A-PRIVATE" in gzip.decompress(page)
        assert get(f"{proxy}/accounts/login/")[0] == 200
        assert time.monotonic() - started < 8  # not behind the stuck ones (urllib gives up at 10)
        assert not any(future.done() for future in stuck)
        os.kill(public.process.pid, signal.SIGCONT)
        assert [future.result()[0] for future in stuck] == [200] * ANONYMOUS_CONNECTIONS
    assert set(pools(prefix, "/hq/", at_least=2)) == {f"127.0.0.1:{staff.port}"}
    assert pools(prefix, "/accounts/login/") == [f"127.0.0.1:{staff.port}"]


def test_the_cache_keys_know_every_language_and_the_base_maps_is_one_of_them(tmp_path, settings):
    """A shell or base map asked in a language nginx does not know would be kept under the default
    key and served to every other reader (a Chinese page to Japanese readers): every code of
    settings.LANGUAGES is mapped, and nothing else is."""
    config = nginx_config.render(listen="127.0.0.1:1", upstream="127.0.0.1:2", prefix=tmp_path).read_text()
    arg_map = config[config.index("map $arg_lang"):]
    arg_map = arg_map[: arg_map.index("}")]
    for code, _ in settings.LANGUAGES:
        assert f" {code} {code};" in arg_map, code
    assert len([line for line in arg_map.splitlines() if line.strip().endswith(";")]) == len(settings.LANGUAGES) + 1
    basemap = config[config.index("location = /public/basemap.js"):]
    assert "$mz_arg_lang" in basemap[: basemap.index("}")]


def test_every_cache_key_carries_the_front_end_build(tmp_path):
    """An nginx started with a new deploy keeps its copies apart from the previous deploy's (its cache
    directory outlives a restart): no shell naming old files, no old base map or service worker."""
    config = nginx_config.render(listen="127.0.0.1:1", upstream="127.0.0.1:2", prefix=tmp_path).read_text()
    keys = re.findall(r"proxy_cache_key (.*);", config)
    assert len(keys) == 4 and all(f"|{front_end_build()}|" in key for key in keys), keys
