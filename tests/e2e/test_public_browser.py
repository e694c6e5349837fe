"""The public page in Chromium when the server tells it to poll, and in minimal mode (issue 17):
it keeps updating without a websocket, minimal mode loads no map library and still lists the
raised stations and the open shelters with the server's notice, and HQ stays live beside it, also
while a bounded run of the load benchmark's readers polls through nginx.

Screenshots go to test-artifacts/ (public-poll.png, public-minimal.png, public-under-load.png).
"""

import asyncio
import sys
import threading
import time
from types import SimpleNamespace

import pytest

from tests.e2e.conftest import ARTIFACTS, chromium_for
from tests.e2e import test_live_browser
from tests.e2e.test_live_browser import LIVE, MARKER_HAS, PRIVATE_CODE, PUBLIC_CODE, SHELTER_CODE, open_hq, wait_for_reading
from tests.public.proxy import ROOT, access_log, nginx_in_front

sys.path.insert(0, str(ROOT / "bench"))
import public_load  # noqa: E402  (bench/public_load.py: the benchmark's own readers)

region = test_live_browser.region  # the fixture: town A's gauges, shelter, gateway token and operator

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def browser(public_server):
    """Chromium guarded to the public_server (tests/e2e/conftest.py `browser` is for asgi_server)."""
    with chromium_for(public_server.url) as chromium:
        yield chromium


def open_public(browser, server):
    page = browser.new_page()
    sockets = []
    page.on("websocket", lambda socket: sockets.append(socket.url))
    page.goto(f"{server.url}/")
    page.wait_for_selector(LIVE)
    return page, sockets


@pytest.mark.public_env(PUBLIC_LIVE_TRANSPORT="poll")
def test_a_polling_reader_keeps_up_without_a_socket_and_hq_stays_live(public_server, region, browser):
    public, sockets = open_public(browser, public_server)
    hq = open_hq(browser, public_server)
    assert public.get_attribute("#mz-public-map", "data-live-transport") == "poll"
    assert public.get_attribute("#mz-public-map", "data-public-mode") == "map"
    assert public.evaluate(MARKER_HAS, [PUBLIC_CODE, ">–<"])
    assert PRIVATE_CODE not in public.content()

    public_server.post_readings(region["token"], [(PUBLIC_CODE, 3.6)])
    public_server.post_readings(region["token"], [(PUBLIC_CODE, 4.0)])
    wait_for_reading(public, PUBLIC_CODE, "L4", "4.00 m")
    wait_for_reading(hq, PUBLIC_CODE, "L4", "4.00 m")
    public.wait_for_function("() => document.getElementById('mz-notices').textContent.includes('E2E-PUB')")

    assert sockets == []  # every update came by conditional GET of the snapshot
    public.screenshot(path=str(ARTIFACTS / "public-poll.png"))
    browser.assert_clean()


@pytest.fixture
def shelter_open(region):
    from geo.models import Shelter

    Shelter.objects.filter(code=SHELTER_CODE).update(status=Shelter.Status.OPEN)


@pytest.mark.public_env(PUBLIC_PAGE_MODE="minimal")
def test_minimal_mode_lists_what_matters_without_a_map_and_keeps_updating(public_server, shelter_open, region, browser):
    public, sockets = open_public(browser, public_server)

    assert public.get_attribute("#mz-public-map", "data-public-mode") == "minimal"
    assert public.evaluate("typeof window.L") == "undefined"  # no map library
    assert public.locator(".leaflet-container").count() == 0
    notice = public.locator("#mz-public-notice")
    assert notice.is_visible() and "簡易表示" in notice.text_content()
    public.locator("#mz-public-shelters", has_text="水守小学校").wait_for()
    assert "現在、警戒レベル2以上の観測所はありません。" in public.locator("#mz-notices").text_content()

    public_server.post_readings(region["token"], [(PUBLIC_CODE, 3.6)])
    public.locator("#mz-notices", has_text="E2E-PUB").wait_for()
    assert "警戒レベル3相当" in public.locator("#mz-notices").text_content()
    assert PRIVATE_CODE not in public.content()
    assert sockets == []
    public.screenshot(path=str(ARTIFACTS / "public-minimal.png"), full_page=True)
    browser.assert_clean()


# The benchmark's readers, bounded: enough to keep nginx and the test's own client busy on a shared
# 2-core machine, few enough for the test process to drive them beside Chromium.
LOAD_READERS = 200
LOAD_SECONDS = 25


@pytest.fixture
def proxied(public_server, tmp_path):
    """nginx (deploy/nginx.conf.template) in front of the public_server, as deployed."""
    with nginx_in_front(tmp_path, upstream=public_server.port) as (url, prefix):
        yield SimpleNamespace(url=url, prefix=prefix)


@pytest.fixture
def proxied_browser(proxied):
    """Chromium guarded to nginx in front of the public_server."""
    with chromium_for(proxied.url) as chromium:
        yield chromium


@pytest.mark.public_env(PUBLIC_LIVE_TRANSPORT="poll")
def test_hq_stays_live_while_the_load_benchmark_polls_through_the_proxy(public_server, region, proxied, proxied_browser):
    hq = open_hq(proxied_browser, proxied)
    public, sockets = open_public(proxied_browser, proxied)
    assert public.get_attribute("#mz-public-map", "data-live-transport") == "poll"

    stats: dict = {}
    load = threading.Thread(target=lambda: stats.update(asyncio.run(public_load.run_readers(
        proxied.url, LOAD_READERS, interval=1.0, duration=LOAD_SECONDS, probe_every=10, probe_code=PUBLIC_CODE))))
    started = time.monotonic()
    load.start()
    try:
        time.sleep(3)  # every reader has made its first request
        public_server.post_readings(region["token"], [(PUBLIC_CODE, 3.6)])
        public_server.post_readings(region["token"], [(PUBLIC_CODE, 4.0)])
        wait_for_reading(hq, PUBLIC_CODE, "L4", "4.00 m")  # the staff board, over its websocket
        wait_for_reading(public, PUBLIC_CODE, "L4", "4.00 m")  # the public page, polling through nginx
        assert load.is_alive(), "the readers stopped before the pages were checked"
        public.screenshot(path=str(ARTIFACTS / "public-under-load.png"))
    finally:
        load.join()
    elapsed = time.monotonic() - started

    assert stats["errors"] == []
    polls = len(stats["latency_ms"])
    assert polls >= LOAD_READERS * (LOAD_SECONDS - 5) * 0.5, polls  # they did poll, each about once a tick
    assert any(age < 30 for age in stats["age_s"])  # the probes saw the new reading
    # nginx answered the readers; the application saw a few requests per tick at most.
    lines = access_log(proxied.prefix, "/api/v1/public/snapshot", at_least=polls)
    upstream = [line for line in lines if not line.endswith("up=-")]
    assert len(lines) >= polls and len(upstream) <= 3 * elapsed, (len(upstream), elapsed)
    assert sockets == [] and PRIVATE_CODE not in public.content()
    proxied_browser.assert_clean()
