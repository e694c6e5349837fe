"""Every page speaks one language, the reader's (issue 15, point 3), at phone and desktop sizes: the
public page's words drawn by its scripts (the live status, the near-me list and its answer, the
notices, the popup) come from the page's gettext catalog, names and level words in the same
language; the platform operator reaches town onboarding from the HQ header (and nobody else sees
the link); every page marks the web font's arrival so text measured before it is drawn again.

Screenshots go to test-artifacts/ (languages-<language>-<width>.png).
"""

import pytest

from tests.e2e import test_accessibility_browser
from tests.e2e.conftest import ARTIFACTS, sign_in
from tests.e2e.test_accessibility_browser import ADMIN, GAUGE, PLATFORM
from tests.e2e.test_live_browser import LIVE

region = test_accessibility_browser.region  # the fixture: town A's gauge at level 3, an open shelter, users

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SIZES = [(390, 844), (1280, 900)]
HOME = {"latitude": 35.01, "longitude": 140.01}  # between the gauge and the open shelter

# What each language must show, and what the other one would have shown instead.
WORDS = {
    "ja": {"live": "ライブ", "count": "件", "nearest": "最寄りの開設中の避難所", "shelter": "公民館",
           "level": "警戒レベル3相当", "kind": "観測所",
           "capacity": "収容人数", "status": "開設中"},
    "en": {"live": "Live", "count": "item", "nearest": "Nearest open shelter", "shelter": "Community hall",
           "level": "Level 3 equivalent", "kind": "Station",
           "capacity": "Capacity", "status": "Open"},
}


def other(language: str) -> str:
    return "en" if language == "ja" else "ja"


def signed_in(browser, server, credentials, language, *, width, height):
    page = browser.new_page(width=width, height=height)
    page.context.add_cookies([{"name": "django_language", "value": language, "url": server.url}])
    return sign_in(page, server.url, credentials)


@pytest.mark.parametrize("width,height", SIZES)
@pytest.mark.parametrize("language", ["ja", "en"])
def test_the_public_page_speaks_one_language_in_its_scripts_too(asgi_server, region, browser, language, width, height):
    page = browser.new_page(width=width, height=height, geolocation=HOME, permissions=["geolocation"])
    page.goto(f"{asgi_server.url}/?lang={language}")
    page.wait_for_selector(LIVE)
    words, others = WORDS[language], WORDS[other(language)]
    assert page.evaluate("document.documentElement.lang") == language
    assert page.locator("#mz-live-status").inner_text().strip() == words["live"]

    places = page.locator("#mz-place-list")
    places.locator(f"[data-place='station:{GAUGE}']").wait_for()
    count = page.locator("#mz-place-count").inner_text()
    assert words["count"] in count and others["count"] not in count
    listed = places.inner_text()
    assert words["kind"] in listed and others["kind"] not in listed and others["shelter"] not in listed

    notices = page.locator("#mz-notices")
    notices.locator(".mz-notice").first.wait_for()
    assert words["level"] in notices.inner_text() and others["level"] not in notices.inner_text()

    page.click("#mz-near-me-shelter")
    popup = page.locator("#mz-public-map .leaflet-popup")
    popup.wait_for()
    status = page.locator("#mz-near-me-status").inner_text()
    assert words["nearest"] in status and words["shelter"] in status and others["nearest"] not in status
    # The shelter's popup (the public snapshot is one document for every reader): drawn by the page
    # from the feature's data, in the page's language only; its marker is named in it too.
    shelter_text = page.locator("#mz-public-map .leaflet-popup .mz-shelter-popup").inner_text()
    assert words["capacity"] in shelter_text and words["status"] in shelter_text, shelter_text
    assert others["capacity"] not in shelter_text and others["status"] not in shelter_text, shelter_text
    label = page.locator("#mz-public-map .mz-shelter[role=img]").first.get_attribute("aria-label")
    assert words["shelter"] in label and words["status"] in label and others["status"] not in label, label
    # A gauge's popup, drawn by stations.js from the feature: the level and the kind in the page's language.
    page.keyboard.press("Escape")
    popup.wait_for(state="detached")  # after Leaflet's fade
    page.evaluate("(code) => Mizumori.stationMarkers[code].openPopup()", GAUGE)
    popup.wait_for()
    text = page.locator("#mz-public-map .leaflet-popup .mz-popup").inner_text()
    assert words["level"] in text and others["level"] not in text
    page.screenshot(path=str(ARTIFACTS / f"languages-{language}-{width}.png"))
    browser.assert_clean()


@pytest.mark.parametrize("width,height", SIZES)
@pytest.mark.parametrize("language", ["ja", "en"])
def test_the_platform_operator_reaches_town_onboarding_from_the_hq_header(asgi_server, region, browser, language, width, height):
    link_text = {"ja": "自治体", "en": "Towns"}[language]
    operator = signed_in(browser, asgi_server, PLATFORM, language, width=width, height=height)
    operator.goto(f"{asgi_server.url}/hq/")
    link = operator.locator(".mz-header-tools a[href='/hq/platform/towns/']")
    assert link.inner_text().strip() == link_text
    link.focus()
    with operator.expect_navigation():
        operator.keyboard.press("Enter")
    assert operator.url.endswith("/hq/platform/towns/")
    assert operator.locator("#mz-onboard-heading").is_visible()

    admin = signed_in(browser, asgi_server, ADMIN, language, width=width, height=height)
    admin.goto(f"{asgi_server.url}/hq/")
    assert admin.locator("a[href='/hq/platform/towns/']").count() == 0  # a town admin onboards no town
    browser.assert_clean()


JAPANESE_SHOWN = "() => [...new Set((document.querySelector('main') || document.body).innerText.match(/[\\u3040-\\u30ff\\u3400-\\u9fff\\uff00-\\uffef]/g) || [])].join('')"


@pytest.mark.parametrize("width,height", SIZES)
@pytest.mark.parametrize("language", ["ja", "en"])
def test_every_page_marks_the_web_fonts_arrival(asgi_server, region, browser, language, width, height):
    """static/mizumori/fonts.js (base.html): the board and the station page, not only the public page;
    the vendored font covers the Japanese they show, in either language (this Chromium has no
    Japanese font of its own)."""
    admin = signed_in(browser, asgi_server, ADMIN, language, width=width, height=height)
    for path in ("/hq/alerts/", f"/stations/{GAUGE}/"):
        admin.goto(f"{asgi_server.url}{path}")
        admin.wait_for_selector("html.mz-fonts-in")
        # Every Japanese character of the page's content (an English page may show names) is drawn
        # with the web font, not as boxes. (The language switch's 简体中文 is not: 简 is in no
        # Japanese font, the vendored one included.)
        japanese = admin.evaluate(JAPANESE_SHOWN)
        assert admin.evaluate("(text) => document.fonts.check('16px \"Mizumori Gothic\"', text)", japanese), (path, japanese)
    admin.wait_for_selector("#station-chart canvas")
    # The chart's canvas text uses the page's font stack, which ends in the web font.
    assert admin.evaluate("() => getComputedStyle(document.body).fontFamily").count("Mizumori Gothic") == 1
    browser.assert_clean()
