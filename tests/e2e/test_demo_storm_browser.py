"""The public map during the demo storm, in Chromium: gauges speak as equivalent information
(「警戒レベルN相当」, rain as JMA's intensity), never with a town's order words (避難指示, 緊急安全確保,
高齢者等避難) nor the weather agency's 警報 — no order or warning is in force in the demo — and every
card's headline is the quantity that set its state (a rain gauge's 1-hour total, not its last
10-minute amount).

Walked at desktop size and at phone size (390×844): the map, its notices and a popup, and the
station pages of the gauge at 氾濫危険水位 and of the rainiest rain gauge. Then the coastal town's
operator finds on its board the recommendation its manual makes of the core city's shared gauge past
避難判断水位 and issues it (高齢者等避難 for two districts): the order's words appear on the public
page, in its banner and nowhere else.

Screenshots: test-artifacts/demo-storm-map.png, demo-storm-phone.png, demo-storm-station-phone.png,
demo-storm-order-phone.png.
"""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from alerts.vocabulary import RESERVED_WORDS
from dashboard.demo import storm
from dashboard.demo.seed import demo_seed
from dashboard.maps import headline_text
from tests.dashboard.test_demo import FakeClock
from tests.e2e.conftest import ARTIFACTS, sign_in

from ..alerts.conftest import level_scheme  # noqa: F401  (transactional tests before this one flush it)

DESKTOP = {"width": 1280, "height": 1000}
# Residents and staff of the demo towns read Japanese: the pages follow the browser's language (issue 15).
JAPANESE = "ja-JP"
PHONE = {"width": 390, "height": 844}
# The coastal town downstream: its manual says 沢井下流 (SWI-F01, the core city's gauge, shared with it)
# at 避難判断水位 → 高齢者等避難 for MDH-01 and MDH-02 (dashboard/demo/districts.py TRIGGERS).
COAST_OPERATOR = ("midorihama-operator", "mizumori-demo")
SHARED_UPSTREAM_GAUGE = "SWI-F01"
LEVEL_4_GAUGE = "KWS-R05"
# The page's text outside the evacuation orders (their section, and an order's own words where the near-me
# list names a district under it): where no order word may appear.
TEXT_OUTSIDE_ORDERS = """() => {
  const copy = document.body.cloneNode(true);
  copy.querySelectorAll("#mz-orders, .mz-order-words, script, template").forEach((node) => node.remove());
  return copy.textContent;
}"""

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

MARKERS = "() => document.querySelectorAll('.leaflet-marker-pane .mz-station-icon').length > 0"


@pytest.fixture
def demo_storm(transactional_db, settings, monkeypatch, level_scheme):  # noqa: F811
    """The demo region a day into its history, the current storm backfilled up to now through the
    ingestion service (as `make demo` does), levels 2 to 4 among the rivers."""
    settings.EVENTS_DRAIN = "workers"  # leave the change log to the server, which drains it in-process
    seed_now = timezone.now() - timedelta(hours=2)
    demo_seed(now=seed_now, history_length=timedelta(days=1))
    clock = FakeClock(seed_now + timedelta(minutes=1))
    monkeypatch.setattr(storm, "WallClock", lambda: clock)
    call_command("simulate_storm", "--steps", "0", stdout=StringIO(), stderr=StringIO())


def test_the_demo_storm_map_speaks_gauge_words_and_heads_each_card_with_what_set_it(demo_storm, browser):
    for viewport, shot in ((DESKTOP, "demo-storm-map.png"), (PHONE, "demo-storm-phone.png")):
        rainiest = _walk_the_map(browser, viewport, shot)
        _walk_station_pages(browser, viewport, [LEVEL_4_GAUGE, rainiest])
    _an_order_speaks_only_in_its_banner(browser)
    browser.assert_clean()


def _walk_the_map(browser, viewport, shot) -> str:
    page = browser.new_page(**viewport, locale=JAPANESE)
    page.goto(f"{browser.base_url}/", wait_until="domcontentloaded")
    page.wait_for_function(MARKERS)
    page.screenshot(path=str(ARTIFACTS / shot))

    text = page.evaluate("() => document.body.innerText")
    html = page.content()
    assert "警戒レベル4相当" in text  # the storm took a river to 氾濫危険水位
    assert [word for word in RESERVED_WORDS if word in text or word in html] == []

    # The public shell holds no data: the stations are those of the snapshot document the page drew.
    features = page.evaluate("() => Mizumori.publicPage.state.doc.features")
    by_name = {feature["properties"]["name_ja"]: feature["properties"] for feature in features}
    notices = page.evaluate(
        "() => Array.from(document.querySelectorAll('#mz-notices .mz-notice')).map(item => item.innerText)"
    )
    assert notices, "the storm raised no station to a notice"
    for notice in notices:
        names = [name for name in by_name if name in notice]
        assert len(names) == 1, notice
        props = by_name[names[0]]
        assert headline_text(props) in notice, (names[0], notice)
        if props["kind"] == "rain" and props.get("rain_hour_total") is not None:
            assert "1 h" in notice and "警戒レベル" not in notice, notice
    # A popup, too: the rain gauge with the most rain, headed by its 1-hour total.
    rain = max((p for p in by_name.values() if p["kind"] == "rain" and p.get("rain_hour_total") is not None),
               key=lambda p: p["rain_hour_total"])
    page.evaluate("(code) => Mizumori.stationMarkers[code].openPopup()", rain["code"])
    popup = page.locator(".leaflet-popup-content").inner_text()
    assert headline_text(rain) in popup and "警戒レベル" not in popup, popup
    page.context.close()
    return rain["code"]


def _walk_station_pages(browser, viewport, codes):
    """Each station page: the gauge's words only, its headline the quantity that set its state (the
    same text the map's card shows, from the same properties)."""
    page = browser.new_page(**viewport, locale=JAPANESE)
    for code in codes:
        page.goto(f"{browser.base_url}/stations/{code}/", wait_until="domcontentloaded")
        props = page.request.get(f"{browser.base_url}/api/v1/stations").json()
        props = next(f["properties"] for f in props["features"] if f["properties"]["code"] == code)
        text = page.evaluate("() => document.body.innerText")
        assert [word for word in RESERVED_WORDS if word in page.content()] == [], code
        assert page.locator(".mz-station-reading .mz-reading-value").inner_text().strip() == headline_text(props), code
        if props["kind"] == "river":
            assert "警戒レベル4相当" in text and "氾濫危険水位" in text, code
        else:
            assert "警戒レベル" not in page.locator(".mz-station-summary").inner_text(), code
    page.screenshot(path=str(ARTIFACTS / "demo-storm-station-phone.png"))
    page.context.close()


def _an_order_speaks_only_in_its_banner(browser):
    """The storm took the core city's shared gauge past 避難判断水位: the coastal town downstream finds
    the recommendation its manual makes of it on its board, its operator issues it (高齢者等避難 for two
    districts), and the order's words appear on the public page in the order's banner only."""
    operator = browser.new_page(locale=JAPANESE)
    sign_in(operator, browser.base_url, COAST_OPERATOR, "/hq/")
    recommendation = operator.locator("#mz-recommendations .mz-recommendation", has_text=SHARED_UPSTREAM_GAUGE)
    recommendation.wait_for()
    assert "避難判断水位" in recommendation.inner_text() and "高齢者等避難" in recommendation.inner_text()
    recommendation.locator("input[name=confirm]").check()
    recommendation.locator("button.mz-issue").click()
    operator.locator("#mz-own-orders .mz-own-order").wait_for()
    issued = operator.request.get(f"{browser.base_url}/api/v1/orders").json()
    (order,) = [f["properties"] for f in issued["features"] if f["properties"]["municipality"] == "midorihama"]
    assert order["level"] == 3 and sorted(d["code"] for d in order["districts"]) == ["MDH-01", "MDH-02"]

    phone = browser.new_page(**PHONE, locale=JAPANESE)
    phone.goto(f"{browser.base_url}/", wait_until="domcontentloaded")
    phone.wait_for_function(MARKERS)
    banner = phone.locator("#mz-order-banners .mz-order-level-3")
    banner.wait_for()
    assert "高齢者等避難" in banner.inner_text()
    phone.screenshot(path=str(ARTIFACTS / "demo-storm-order-phone.png"))
    outside = phone.evaluate(TEXT_OUTSIDE_ORDERS)
    assert "警戒レベル4相当" in outside
    assert [word for word in RESERVED_WORDS if word in outside] == []
