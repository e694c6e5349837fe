"""Browser tests of the live map: a real ASGI server in a subprocess, Chromium, and guards.

pytest-django's `live_server` is a threaded WSGI server and does not speak websockets, so the live
tests run daphne on `config.asgi:application` against the test database. With the embedded
in-memory channel layer a reading reaches browsers only if it is ingested in the server's
process, so tests post readings to the server's HTTP API, as a sensor gateway would, and never
call the ingestion service themselves. With REDIS_URL / DATABASE_URL set (CI's service run) the
server uses Redis and PostgreSQL like production.

Rows a test creates must be committed before the server can read them: the live tests use
`django_db(transaction=True)` and create their data in function fixtures requested before the
browser (while Playwright's loop runs in the test's thread, Django refuses database calls).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import datetime
from datetime import timezone as dt_timezone
from pathlib import Path

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
# Playwright's waits: short, so a broken live layer fails in seconds rather than minutes.
PAGE_TIMEOUT_MS = int(os.environ.get("E2E_PAGE_TIMEOUT_MS", "10000"))
# A server start imports the whole project: on a loaded 2-core machine that alone can take 30 s;
# E2E_SERVER_START_SECONDS raises it further on a machine shared by parallel runs.
SERVER_START_SECONDS = int(os.environ.get("E2E_SERVER_START_SECONDS", "90"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url_for_children() -> str:
    """The test database as the server process must see it ("" means: SQLite at SQLITE_PATH)."""
    db = connection.settings_dict
    if connection.vendor == "postgresql":
        user = db.get("USER") or "postgres"
        password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
        return f"postgres://{user}{password}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"
    return ""



@pytest.fixture(autouse=True)
def server_drains_the_change_log(settings):
    """What this test process writes (readings, shares) is left in the change log for the server
    under test, which drains it in-process as the embedded default does; draining it here would
    publish to this process's channel layer, which no browser listens to."""
    settings.EVENTS_DRAIN = "workers"

@functools.cache
def collected_static_root() -> str:
    """The servers' STATIC_ROOT: production's content-hashed files and manifest (tests/server_settings.py),
    collected once per test process into a directory of its own, removed when the process ends."""
    root = tempfile.mkdtemp(prefix="mizumori-static-")
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.server_settings", "STATIC_ROOT": root}
    result = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "--verbosity", "0"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return root


def server_environment() -> dict[str, str]:
    return {
        **os.environ,
        # Production's settings, reading the fast password hashes the tests write.
        "DJANGO_SETTINGS_MODULE": "tests.server_settings",
        "STATIC_ROOT": collected_static_root(),
        "DATABASE_URL": database_url_for_children(),
        "SQLITE_PATH": str(connection.settings_dict["NAME"]),
        # The server drains the change log itself (alerts, live publishing), with Redis too.
        "EVENTS_DRAIN": "in-process",
        # No tile server: nothing but this server may be contacted (and there is no internet).
        "MAP_TILES_URL": "",
        # Our own channel-layer prefix on a shared Redis, so another test run's messages stay out.
        "CHANNEL_PREFIX": f"mizumori-e2e-{os.getpid()}",
        "CACHE_PREFIX": f"mizumori-e2e-{os.getpid()}",
        # The public snapshot is rebuilt every second (a test's data shows without waiting out a
        # production tick), and the machine's load average, busy with other tests, is not saturation.
        "PUBLIC_SNAPSHOT_TICK_SECONDS": "1",
        "PUBLIC_BASEMAP_SECONDS": "1",
        "PUBLIC_MINIMAL_CPU_LOAD": "1000000",
        "LOG_LEVEL": "WARNING",
    }


class AsgiServer:
    """daphne serving config.asgi:application on one port; can be killed and started again there."""

    def __init__(self, *, port: int, env: dict[str, str], log_dir: Path, name: str = "server"):
        self.port = port
        self.env = env
        self.log_path = log_dir / f"daphne-{name}-{port}.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "AsgiServer":
        """Start without waiting (see wait_until_up), so a test can do other things meanwhile."""
        log = open(self.log_path, "a")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port), "config.asgi:application"],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()
        return self

    def wait_until_up(self) -> "AsgiServer":
        """Wait for an answer; a server that exits, answers with an error or never answers is
        stopped (no orphan left listening) and fails the test with its log."""
        deadline = time.monotonic() + SERVER_START_SECONDS
        problem = "did not come up"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                problem = "exited"
                break
            try:
                urllib.request.urlopen(f"{self.url}/api/v1/stations", timeout=2).close()
                return self
            except urllib.error.HTTPError as exc:
                problem = f"answered {exc.code}"
                break
            except OSError:
                time.sleep(0.1)
        self.stop()
        pytest.fail(f"ASGI server on {self.port} {problem}:\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL: the server dies as in a crash, its websockets cut without a closing handshake."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else "(no log)"

    def post_readings(self, token: str, readings: list[tuple[str, float]]) -> dict:
        """POST /api/v1/observations as a gateway would: [(station code, value), ...] observed now."""
        observed_at = datetime.now(dt_timezone.utc).isoformat()
        observations = [{"station": code, "observed_at": observed_at, "value": value} for code, value in readings]
        body = json.dumps({"observations": observations}).encode()
        request = urllib.request.Request(
            f"{self.url}/api/v1/observations",
            data=body,
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            reply = json.load(response)
        assert reply["accepted"] == len(readings) and not reply["rejected"], reply
        return reply


@pytest.fixture(scope="package")
def asgi_server_process(django_db_setup, tmp_path_factory):
    """One daphne for the browser tests (starting one takes seconds). Stopped when they end: it
    drains the change log of the test database in-process, and would take events that later tests
    leave for their own workers."""
    if not shutil.which(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is not installed")
    server = AsgiServer(port=free_port(), env=server_environment(), log_dir=tmp_path_factory.mktemp("asgi"))
    try:
        server.start().wait_until_up()
        yield server
    finally:
        # Before the test database is dropped: PostgreSQL refuses while the server is connected.
        server.stop()


@pytest.fixture
def asgi_server(asgi_server_process):
    """The session's server, running: a test may kill it and start it again on the same port, and
    if it failed before doing so the next test still gets a live server."""
    if asgi_server_process.process.poll() is not None:
        asgi_server_process.start().wait_until_up()
    return asgi_server_process


@pytest.fixture
def second_server(asgi_server, tmp_path_factory):
    """Another ASGI process on the same database and replay log (and, with Redis, the same channel
    layer), as a production deployment runs several. Started, not yet waited for."""
    server = AsgiServer(port=free_port(), env=asgi_server.env, log_dir=tmp_path_factory.mktemp("asgi"), name="second")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def public_server(asgi_server, tmp_path_factory, request):
    """Another ASGI process on the same database whose public page is set by the test's
    `public_env` marker (e.g. PUBLIC_PAGE_MODE=minimal); up before the test runs. The session's
    server is stopped meanwhile (the next test's `asgi_server` starts it again): each drains the
    change log in-process, and with the in-memory channel layer a change it took would reach only
    its own browsers."""
    asgi_server.stop()
    marker = request.node.get_closest_marker("public_env")
    env = {**asgi_server.env, **(marker.kwargs if marker else {})}
    server = AsgiServer(port=free_port(), env=env, log_dir=tmp_path_factory.mktemp("asgi"), name="public")
    server.start().wait_until_up()
    yield server
    server.stop()


# Playwright evaluates a predicate that is a function once; a bare expression it evaluates again on
# every poll with eval(), which our Content-Security-Policy (no 'unsafe-eval') refuses after the
# first poll: such a wait passes only when its condition already holds, so it fails by timing.
FUNCTION_PREDICATE = re.compile(r"\s*(async\s+)?(function\b|\([^()]*\)\s*=>|\w+\s*=>)")


def _function_predicates_only(wait_for_function):
    def guarded(expression, **kwargs):
        assert FUNCTION_PREDICATE.match(expression), (
            f"wait_for_function needs a function, e.g. '() => ...', not a bare expression: {expression[:80]!r}"
        )
        return wait_for_function(expression, **kwargs)

    return guarded


class Browser:
    """Chromium with guarded pages: any request to another host, console error or page error is a
    problem the test reports at its end (`assert_clean`)."""

    def __init__(self, playwright, base_url: str):
        self.base_url = base_url
        self.ws_base = base_url.replace("http://", "ws://", 1)
        self.browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        self.problems: list[str] = []
        self.expected_console: list[re.Pattern] = []

    def new_page(self, *, width: int = 1280, height: int = 900, **context_options):
        """A page in its own browser context (its own cookies: logged in or anonymous);
        `context_options` go to Playwright's new_context (e.g. geolocation, permissions)."""
        context = self.browser.new_context(viewport={"width": width, "height": height}, **context_options)
        context.set_default_timeout(PAGE_TIMEOUT_MS)
        context.route("**/*", self._only_our_server)
        page = context.new_page()
        page.on("request", self._check_request)
        page.on("websocket", self._check_websocket)
        page.on("console", self._check_console)
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        page.wait_for_function = _function_predicates_only(page.wait_for_function)
        return page

    def expect_console_errors(self, pattern: str) -> None:
        """Console errors matching `pattern` are expected from now on (e.g. while the server is down)."""
        self.expected_console.append(re.compile(pattern))

    def _only_our_server(self, route):
        if route.request.url.startswith(self.base_url + "/"):
            route.continue_()
        else:
            route.abort()  # recorded by _check_request; never let it leave the machine

    def _check_request(self, request):
        if not request.url.startswith(self.base_url + "/"):
            self.problems.append(f"request to another host: {request.url}")

    def _check_websocket(self, websocket):
        if not websocket.url.startswith(self.ws_base + "/"):
            self.problems.append(f"websocket to another host: {websocket.url}")

    def _check_console(self, message):
        if message.type != "error":
            return
        if any(pattern.search(message.text) for pattern in self.expected_console):
            return
        self.problems.append(f"console error: {message.text}")

    def assert_clean(self) -> None:
        assert self.problems == []

    def close(self) -> None:
        self.browser.close()


def sign_in(page, base_url: str, credentials: tuple[str, str], next_path: str | None = None,
            timeout: float | None = None):
    """Log in through the login form. With `next_path` the page ends there (`?next=`); without, it
    ends wherever the login sends it. `timeout` (ms) waits longer for the landing page than the
    page's default, for a password hash slower than that on a loaded machine."""
    page.goto(f"{base_url}/accounts/login/" + (f"?next={next_path}" if next_path else ""))
    page.fill("#id_username", credentials[0])
    page.fill("#id_password", credentials[1])
    if next_path:
        page.click("form.mz-form button[type=submit]", no_wait_after=timeout is not None)
        page.wait_for_url(f"{base_url}{next_path}", timeout=timeout)
    else:
        with page.expect_navigation():
            page.click("form.mz-form button[type=submit]")
    return page


@contextlib.contextmanager
def chromium_for(base_url: str):
    """A guarded Chromium (`Browser`) that may reach `base_url` only; closed on exit."""
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        chromium = Browser(playwright, base_url)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def browser(asgi_server):
    """Request it after the fixtures that write the database (see the module docstring)."""
    with chromium_for(asgi_server.url) as chromium:
        yield chromium
