"""The public page in Chromium when the server tells it to poll, and in minimal mode (issue 17):
it keeps updating without a websocket, minimal mode loads no map library and still lists the
raised stations and the open shelters with the server's notice, and HQ stays live beside it.

Screenshots go to test-artifacts/ (public-poll.png, public-minimal.png).
"""

import pytest

from tests.e2e.conftest import ARTIFACTS, Browser
from tests.e2e import test_live_browser
from tests.e2e.test_live_browser import LIVE, MARKER_HAS, PRIVATE_CODE, PUBLIC_CODE, SHELTER_CODE, open_hq, wait_for_reading

region = test_live_browser.region  # the fixture: town A's gauges, shelter, gateway token and operator

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def browser(public_server):
    """Chromium guarded to the public_server (tests/e2e/conftest.py `browser` is for asgi_server)."""
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        chromium = Browser(playwright, public_server.url)
        try:
            yield chromium
        finally:
            chromium.close()


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
    assert "No station is at alert level 2 or above now." in public.locator("#mz-notices").text_content()

    public_server.post_readings(region["token"], [(PUBLIC_CODE, 3.6)])
    public.locator("#mz-notices", has_text="E2E-PUB").wait_for()
    assert "警戒レベル3相当" in public.locator("#mz-notices").text_content()
    assert PRIVATE_CODE not in public.content()
    assert sockets == []
    public.screenshot(path=str(ARTIFACTS / "public-minimal.png"), full_page=True)
    browser.assert_clean()
