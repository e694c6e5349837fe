"""The station page in Debian's Chromium: the chart draws from vendored assets only, with no console
errors, under a Content-Security-Policy without 'unsafe-inline', and its threshold labels are readable.

Self-contained on purpose (no e2e conftest needed): seeds its own stations, starts its own browser.
"""

import shutil
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.utils import timezone

from sensors.models import StationKind, Visibility
from sensors.services import observation_ingest
from tests.conftest import make_station

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
# What the page must work under once the site sends a CSP: no inline script, nothing from elsewhere.
STRICT_CSP = "default-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'"
RIVER_LABELS = ["水防団待機水位", "氾濫注意水位", "避難判断水位", "氾濫危険水位", "氾濫発生"]

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not shutil.which(CHROMIUM), reason=f"{CHROMIUM} is not installed"),
]


def seed_readings(code, readings):
    """readings: [(minutes_ago, value), ...]"""
    now = timezone.now()
    report = observation_ingest(
        municipality=None,
        items=[{"station": code, "observed_at": now - timedelta(minutes=m), "value": v} for m, v in readings],
        source="http",
    )
    assert not report.rejected, report.as_dict()


@pytest.fixture
def flood_stations(towns):
    """A river rising through its thresholds over the last day, and a rain gauge in a downpour."""
    make_station(towns[0], "E2E-RIVER", visibility=Visibility.PUBLIC, river_name="水守川")
    rise = [(minutes, round(1.0 + 2.9 * (1 - minutes / 1440) ** 3, 3)) for minutes in range(1440, 0, -10)]
    seed_readings("E2E-RIVER", rise)
    make_station(towns[0], "E2E-RAIN", kind=StationKind.RAIN, visibility=Visibility.PUBLIC)
    seed_readings("E2E-RAIN", [(minutes, 2.0 + (300 - minutes) / 30) for minutes in range(300, 0, -10)])


@pytest.fixture
def browser_page(live_server):
    """A Chromium page that may talk to the live server only, under a strict CSP; collects problems.

    Request it after the fixtures that seed the database: while Playwright's event loop runs in this
    thread, Django refuses database calls from it (SynchronousOnlyOperation).
    """
    from playwright.sync_api import sync_playwright

    origin = urlsplit(live_server.url)
    problems: list[str] = []

    def guard(route):
        url = urlsplit(route.request.url)
        if (url.scheme, url.netloc) != (origin.scheme, origin.netloc):
            problems.append(f"request to another host: {route.request.url}")
            route.abort()
        elif route.request.resource_type == "document":
            response = route.fetch()
            route.fulfill(response=response, headers={**response.headers, "content-security-policy": STRICT_CSP})
        else:
            route.continue_()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.route("**/*", guard)
            page.on("console", lambda message: message.type == "error" and problems.append(f"console: {message.text}"))
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            page.on("requestfailed", lambda request: problems.append(f"failed: {request.url} {request.failure}"))
            yield page, problems
        finally:
            browser.close()


def canvas_pixels_like(page, colour: str) -> int:
    """How many pixels of the chart canvas are (about) `colour`: proof the data was drawn."""
    return page.evaluate(
        """(hex) => {
            const canvas = document.querySelector("#station-chart canvas");
            const want = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
            const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
            let count = 0;
            for (let i = 0; i < data.length; i += 4) {
                if (want.every((value, k) => Math.abs(data[i + k] - value) < 24) && data[i + 3] > 200) count++;
            }
            return count;
        }""",
        colour,
    )


def test_river_page_draws_the_hydrograph_with_labelled_thresholds(live_server, flood_stations, browser_page):
    page, problems = browser_page

    page.goto(f"{live_server.url}/stations/E2E-RIVER/", wait_until="networkidle")

    chart = page.locator("#station-chart")
    page.wait_for_selector("#station-chart canvas")
    assert canvas_pixels_like(page, "#0b4f8a") > 100  # the water-level line
    assert canvas_pixels_like(page, "#ff2800") > 50  # the level 3 threshold line
    chart_box = chart.bounding_box()
    label_boxes = []
    for label_ja in RIVER_LABELS:
        label = page.locator(".mz-threshold-label", has_text=label_ja)
        assert label.is_visible(), label_ja
        box = label.bounding_box()
        assert chart_box["y"] <= box["y"] and box["y"] + box["height"] <= chart_box["y"] + chart_box["height"]
        label_boxes.append(box)
    # The threshold names in the page's language only (data kept per language, static/mizumori/i18n.js).
    assert page.get_attribute("html", "lang") == "ja"
    assert page.locator(".mz-threshold-label", has_text="Evacuation decision").count() == 0
    assert "3.50 m" in page.locator(".mz-threshold-label", has_text="避難判断水位").inner_text()
    # No label covers another.
    for index, upper in enumerate(label_boxes):
        for lower in label_boxes[index + 1 :]:
            assert upper["y"] + upper["height"] <= lower["y"] + 0.5 or lower["y"] + lower["height"] <= upper["y"] + 0.5

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "station-page.png"))

    # The chart follows the window down to a phone's width.
    wide = page.locator("#station-chart canvas").bounding_box()["width"]
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_function("() => document.querySelector('#station-chart canvas').getBoundingClientRect().width < 390")
    narrow = page.locator("#station-chart canvas").bounding_box()["width"]
    assert narrow < wide
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scrolling
    phone_top = {"x": 0, "y": 0, "width": 390, "height": 1400}
    page.screenshot(path=str(ARTIFACTS / "station-page-phone.png"), full_page=True, clip=phone_top)

    assert problems == []


def test_rain_page_draws_the_hyetograph(live_server, flood_stations, browser_page):
    page, problems = browser_page

    page.goto(f"{live_server.url}/stations/E2E-RAIN/?range=7d", wait_until="networkidle")

    page.wait_for_selector("#station-chart canvas")
    assert canvas_pixels_like(page, "#5b9bd5") > 100  # the 10-minute bars
    for label in ("大雨(1時間)", "猛烈な雨(1時間)"):
        assert page.locator(".mz-threshold-label", has_text=label).is_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "station-page-rain.png"))
    assert problems == []


@pytest.fixture
def quiet_station(towns):
    return make_station(towns[0], "E2E-QUIET", visibility=Visibility.PUBLIC)


def test_station_without_readings_still_shows_its_thresholds(live_server, quiet_station, browser_page):
    page, problems = browser_page

    page.goto(f"{live_server.url}/stations/E2E-QUIET/", wait_until="networkidle")

    page.wait_for_selector("#station-chart canvas")
    for label_ja in RIVER_LABELS:
        assert page.locator(".mz-threshold-label", has_text=label_ja).is_visible(), label_ja
    empty = {"en": "No readings in this period."}.get(page.get_attribute("html", "lang"), "この期間の観測データはありません。")
    assert page.get_by_text(empty).is_visible()  # in the page's language
    assert problems == []


def test_window_control_goes_back_shows_replay_and_returns_live(live_server, flood_stations, browser_page):
    """Issue 14 item 2: pick a past time on the station page, see the REPLAY banner and the level and
    reading of then, step a window back, then LIVE again."""
    page, problems = browser_page
    page.goto(f"{live_server.url}/stations/E2E-RIVER/", wait_until="networkidle")
    summary = page.locator(".mz-station-summary")
    assert page.locator("#mz-replay-banner").count() == 0
    assert "mz-level-3" in summary.get_attribute("class")  # 3.9 m now: past 避難判断水位 3.5 m
    now_value = page.locator(".mz-reading-value").inner_text()

    # Twelve hours ago the river stood at about 1.4 m: level 0.
    past = timezone.localtime(timezone.now() - timedelta(hours=12))
    page.fill("#mz-station-at", past.strftime("%Y-%m-%dT%H:%M"))
    page.locator("#mz-station-window button[type=submit]").click()
    page.wait_for_selector("#mz-replay-banner")
    banner = page.locator("#mz-replay-banner").inner_text()
    assert "REPLAY" in banner and past.strftime("%H:%M") in banner
    assert "mz-level-0" in page.locator(".mz-station-summary").get_attribute("class")
    assert page.locator(".mz-reading-value").inner_text() != now_value
    page.wait_for_selector("#station-chart canvas")
    assert canvas_pixels_like(page, "#0b4f8a") > 20  # the hydrograph up to then

    # A link to the page a day earlier: the page it leaves has a replay banner too, so the new one
    # is waited for as a navigation (not by the banner).
    with page.expect_navigation():
        page.locator("#mz-station-earlier").click()
    page.wait_for_selector("#mz-replay-banner")
    earlier = (past - timedelta(hours=24)).strftime("%H:%M")
    assert earlier in page.locator("#mz-replay-banner").inner_text()

    page.locator("#mz-station-live").click()
    page.wait_for_selector("#mz-station-now")
    assert page.locator("#mz-replay-banner").count() == 0
    assert "mz-level-3" in page.locator(".mz-station-summary").get_attribute("class")
    assert page.locator(".mz-reading-value").inner_text() == now_value
    assert problems == []
