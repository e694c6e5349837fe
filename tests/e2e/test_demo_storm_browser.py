"""The public map during the demo storm, in Chromium: gauges speak as equivalent information
(「警戒レベルN相当」, rain as JMA's intensity), never with a town's order words (避難指示, 緊急安全確保,
高齢者等避難) nor the weather agency's 警報 — no order or warning is in force in the demo — and every
card's headline is the quantity that set its state (a rain gauge's 1-hour total, not its last
10-minute amount).

Screenshot: test-artifacts/demo-storm-map.png.
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
from tests.e2e.conftest import ARTIFACTS

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

MARKERS = "() => document.querySelectorAll('.leaflet-marker-pane .mz-marker').length > 0"


@pytest.fixture
def demo_storm(transactional_db, settings, monkeypatch):
    """The demo region a day into its history, the current storm backfilled up to now through the
    ingestion service (as `make demo` does), levels 2 to 4 among the rivers."""
    settings.EVENTS_DRAIN = "workers"  # leave the change log to the server, which drains it in-process
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    seed_now = timezone.now() - timedelta(hours=2)
    demo_seed(now=seed_now, history_length=timedelta(days=1))
    clock = FakeClock(seed_now + timedelta(minutes=1))
    monkeypatch.setattr(storm, "WallClock", lambda: clock)
    call_command("simulate_storm", "--steps", "0", stdout=StringIO(), stderr=StringIO())


def test_the_demo_storm_map_speaks_gauge_words_and_heads_each_card_with_what_set_it(demo_storm, browser):
    page = browser.new_page(width=1280, height=1000)
    page.goto(f"{browser.base_url}/", wait_until="domcontentloaded")
    page.wait_for_function(MARKERS)
    page.screenshot(path=str(ARTIFACTS / "demo-storm-map.png"))

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
    browser.assert_clean()
