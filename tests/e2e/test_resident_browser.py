"""The public page as a resident uses it on a phone in a storm (issue 15, point 2): the nearest open
shelter by keyboard alone from a mocked location, popups clear of the map's controls with the close
× reachable at 360, 390 and 768 px, Escape closing a popup, the list showing public stations only;
an offline reload showing the last known state with its age; axe-core finding nothing in ja and en.

Screenshots go to test-artifacts/ (resident-<width>.png, resident-offline.png).
"""

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from geo.models import Shelter
from tests.e2e import test_live_browser
from tests.e2e.conftest import ARTIFACTS
from tests.e2e.test_alert_board_browser import run_axe
from tests.e2e.test_live_browser import LIVE, PRIVATE_CODE, PUBLIC_CODE, REGION_CODE, SHELTER_CODE

region = test_live_browser.region  # the fixture: town A's gauges, shelter, gateway token and operator

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

# Where the reader is: the public gauge's bank. Computed in the browser only.
HOME = {"latitude": 35.0, "longitude": 140.0}
NEAREST_OPEN = "水守小学校"  # E2E-SHELTER, about 8.6 km away

# Every map control and the live indicator the open popup meets, and whether its close × is the
# element at its own centre (nothing on top of it) inside the map.
POPUP_CLASHES = """() => {
    const popup = document.querySelector('#mz-public-map .leaflet-popup');
    if (!popup) { return ['no popup']; }
    const p = popup.getBoundingClientRect();
    const clashes = [];
    document.querySelectorAll('#mz-public-map .leaflet-control, #mz-live-status').forEach((element) => {
        const r = element.getBoundingClientRect();
        if (r.width && r.height && p.left < r.right && r.left < p.right && p.top < r.bottom && r.top < p.bottom) {
            clashes.push(element.id || element.className);
        }
    });
    const map = document.querySelector('#mz-public-map .leaflet-container').getBoundingClientRect();
    if (p.left < map.left || p.right > map.right || p.top < map.top || p.bottom > map.bottom) {
        clashes.push('popup outside the map');
    }
    const close = popup.querySelector('.leaflet-popup-close-button').getBoundingClientRect();
    const x = close.left + close.width / 2, y = close.top + close.height / 2;
    const hit = document.elementFromPoint(x, y);
    if (!hit || !hit.closest('.leaflet-popup-close-button')) {
        clashes.push('close button covered by ' + (hit ? hit.className || hit.tagName : 'nothing (off screen)'));
    }
    return clashes;
}"""


def assert_popup_clear(page):
    """Once the popup's autoPan has settled (an animated pan), nothing clashes with it."""
    try:
        page.wait_for_function(f"() => ({POPUP_CLASHES})().length === 0", timeout=3000)
    except PlaywrightTimeoutError:
        pass
    assert page.evaluate(POPUP_CLASHES) == []


FOCUS_IN = "(selector) => Boolean(document.activeElement && document.activeElement.closest(selector))"


@pytest.fixture
def shelters(region):
    """Town A's school open; nearer, an open shelter not designated for floods and a closed one;
    farther, another open one."""
    town = Shelter.objects.get(code=SHELTER_CODE).municipality
    Shelter.objects.filter(code=SHELTER_CODE).update(status=Shelter.Status.OPEN)
    for code, name, lon, lat, status, for_flood in (
        ("E2E-NOFLOOD", "高台公民館", 140.005, 35.005, Shelter.Status.OPEN, False),
        ("E2E-CLOSED", "川辺集会所", 140.01, 35.0, Shelter.Status.CLOSED, None),
        ("E2E-FAR", "遠方体育館", 140.3, 35.3, Shelter.Status.OPEN, True),
    ):
        Shelter.objects.create(code=code, name_ja=name, name_en=code, municipality=town, lon=lon, lat=lat,
                               capacity=100, status=status, for_flood=for_flood)


def open_located(browser, server, *, width, height, path="/"):
    page = browser.new_page(width=width, height=height, geolocation=HOME, permissions=["geolocation"])
    page.goto(f"{server.url}{path}")
    page.wait_for_selector(LIVE)
    return page


@pytest.mark.parametrize("width,height", [(360, 740), (390, 844), (768, 1024)])
def test_a_resident_finds_the_nearest_open_shelter_by_keyboard_and_popups_clear_the_controls(
    asgi_server, shelters, browser, width, height
):
    page = open_located(browser, asgi_server, width=width, height=height)
    places = page.locator("#mz-place-list")
    places.locator("[data-place='shelter:E2E-FAR']").wait_for()
    listed = places.text_content()
    assert PUBLIC_CODE in listed and REGION_CODE not in listed and PRIVATE_CODE not in listed
    # The hazard zone (a shape without a name of its own) is drawn but is no focus stop.
    assert page.evaluate("""() => {
        const shapes = [...document.querySelectorAll('#mz-public-map path.leaflet-interactive')];
        return shapes.length > 0 && shapes.every((shape) => shape.getAttribute('tabindex') === '-1');
    }""")

    # Keyboard only: the skip link to the list, then the first button there.
    for _ in range(2):
        page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.getAttribute('href')") == "#mz-near-me"
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "mz-near-me-shelter"
    page.keyboard.press("Enter")
    popup = page.locator("#mz-public-map .leaflet-popup")
    popup.wait_for()
    assert NEAREST_OPEN in popup.text_content()
    assert NEAREST_OPEN in page.locator("#mz-near-me-status").text_content()
    assert "km" in page.locator("#mz-near-me-status").text_content()
    assert page.evaluate(FOCUS_IN, ".leaflet-popup")  # a screen reader reads the popup next
    assert_popup_clear(page)
    page.screenshot(path=str(ARTIFACTS / f"resident-{width}.png"))
    page.keyboard.press("Escape")
    popup.wait_for(state="detached")  # after Leaflet's fade
    assert page.evaluate(FOCUS_IN, "#mz-near-me")  # back where the reader was

    # The tallest popup, a gauge's, found by name and opened from the list.
    page.locator("#mz-place-search").focus()
    page.keyboard.type(PUBLIC_CODE)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.getAttribute('data-place')") == f"station:{PUBLIC_CODE}"
    page.keyboard.press("Enter")
    popup.wait_for()
    assert f"{PUBLIC_CODE} 観測所" in popup.text_content()
    assert_popup_clear(page)
    page.keyboard.press("Escape")
    popup.wait_for(state="detached")  # after Leaflet's fade
    browser.assert_clean()


def test_an_offline_reload_shows_the_last_state_with_its_age_never_as_current(asgi_server, region, browser):
    page = open_located(browser, asgi_server, width=390, height=844)
    page.wait_for_selector("#mz-public-map[data-offline-ready='true']")  # the worker holds the page
    # A level reached is said once, in one sentence; the lists themselves are not live regions.
    asgi_server.post_readings(region["token"], [(PUBLIC_CODE, 3.6)])
    page.wait_for_function(
        "() => document.getElementById('mz-public-announcer').textContent.includes('E2E-PUB 観測所 警戒レベル')")
    assert page.locator("#mz-notices[aria-live], #mz-public-alerts[aria-live]").count() == 0

    browser.expect_console_errors("ERR_INTERNET_DISCONNECTED|WebSocket")
    page.context.set_offline(True)
    page.reload()
    notice = page.locator("#mz-offline-notice")
    notice.wait_for()
    words = notice.text_content()
    # In the page's language only (gettext), not a ja / en pair.
    assert "現在の状況ではありません" in words and "最終更新" in words and "分前" in words and "ago" not in words
    assert page.evaluate("(code) => code in Mizumori.stationMarkers", PUBLIC_CODE)  # the last known state
    assert page.get_attribute("#mz-public-map", "data-live-status") == "offline"
    page.screenshot(path=str(ARTIFACTS / "resident-offline.png"))

    page.context.set_offline(False)
    notice.wait_for(state="hidden")
    page.wait_for_selector(LIVE)
    browser.assert_clean()


@pytest.mark.parametrize("language", ["ja", "en"])
def test_axe_finds_no_violations_on_the_public_page(asgi_server, shelters, browser, language):
    page = open_located(browser, asgi_server, width=390, height=844, path=f"/?lang={language}")
    page.locator("#mz-place-list [data-place]").first.wait_for()
    # The web font is in and covers the page's title (this Chromium has no Japanese font of its own).
    page.wait_for_selector("html.mz-fonts-in")
    assert page.evaluate("() => document.fonts.check('16px \"Mizumori Gothic\"', '水守 河川・雨量情報')")
    assert run_axe(page) == []
    page.click("#mz-near-me-shelter")  # located, the list sorted by distance, a popup open
    page.locator("#mz-public-map .leaflet-popup").wait_for()
    # Once faded in (half-transparent text would be measured as too faint).
    page.wait_for_function("() => getComputedStyle(document.querySelector('.leaflet-popup')).opacity === '1'")
    assert run_axe(page) == []
    browser.assert_clean()
