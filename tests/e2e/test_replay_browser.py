"""The time slider in Chromium against a real ASGI server: drag back to a past moment (REPLAY banner,
the levels and alerts of then, live socket paused), play forward (from batches of
/api/v1/replay/frames), return to live (the socket resumes from its last sequence number, the live
alerts come back) and receive a live update again. The public page in minimal mode has no slider.
Screenshot: test-artifacts/replay-hq.png."""

import json
import time
from urllib.parse import quote
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from alerts.models import Alert, AlertEvent, AlertRule
from orders.models import District, Order, OrderEvent
from sensors.models import Visibility
from sensors.services import observation_ingest
from tenancy.models import Membership
from tenancy.services import ingest_token_create
from tests.conftest import make_station, make_town
from tests.e2e.conftest import ARTIFACTS, chromium_for, sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

OPERATOR = ("e2e-replay-operator", "e2e-Replay-pass-4821")
CODE = "E2E-RPL"
# Minutes ago → stage: up through 避難判断水位 (3.5 m, L3) and 氾濫危険水位 (4.0 m, L4), then down.
STORM = [(80, 2.0), (70, 2.8), (60, 3.6), (50, 4.1), (40, 3.3), (30, 2.6), (20, 2.5)]
# As tests/e2e/test_live_browser.py.
MARKER_HAS = """([code, text]) => {
    const marker = Mizumori.stationMarkers[code];
    const element = marker && marker.getElement();
    return Boolean(element) && (element.innerHTML.includes(text) || `>${element.dataset.badge}<` === text);
}"""
SLIDE_TO = """(minutes) => {
    const slider = document.getElementById('mz-replay-slider');
    slider.value = String(minutes);
    slider.dispatchEvent(new Event('input', {bubbles: true}));
    slider.dispatchEvent(new Event('change', {bubbles: true}));
}"""
STATUS = "document.querySelector('[data-live-view]').dataset.liveStatus"
# A gauge with no readings whose level-4 alert stood from 60 to 30 minutes ago: in the past alert
# set at 45 minutes ago, in no live one.
PAST_CODE = "E2E-RPL-PAST"
PUBLIC_ALERTS = "document.getElementById('mz-public-alerts')"
ORDERS = "document.getElementById('mz-orders')"


@pytest.fixture
def storm_history(transactional_db, settings):
    settings.EVENTS_DRAIN = "workers"  # the server drains the change log in-process
    town = make_town("990001", "town-a", "town a")
    make_station(town, CODE, visibility=Visibility.PUBLIC, lon=140.0, lat=35.0)
    now = timezone.now()
    for minutes, stage in STORM:
        observation_ingest(
            municipality=None, source="http",
            items=[{"station": CODE, "observed_at": now - timedelta(minutes=minutes), "value": stage}],
        )
    past = make_station(town, PAST_CODE, visibility=Visibility.PUBLIC, lon=140.05, lat=35.0)
    rule = AlertRule.objects.create(station=past, kind="threshold", name="Thresholds (reading)")
    opened, resolved = now - timedelta(minutes=60), now - timedelta(minutes=30)
    alert = Alert.objects.create(
        station=past, rule=rule, level=4, peak_level=4, state=Alert.State.RESOLVED, opened_at=opened,
        updated_at=resolved, resolved_at=resolved, last_value=4.2, last_observed_at=opened,
    )
    AlertEvent.objects.create(alert=alert, kind="opened", level=4, value=4.2, observed_at=opened, at=opened)
    AlertEvent.objects.create(alert=alert, kind="resolved", level=4, value=3.2, observed_at=resolved, at=resolved)
    # And an evacuation order of the town in force over the same half hour.
    district = District.objects.create(
        code="E2E-D1", municipality=town, name_ja="川辺地区", name_en="Riverside",
        geometry={"type": "Polygon", "coordinates": [[[140.0, 35.0], [140.02, 35.0], [140.02, 35.02], [140.0, 35.0]]]},
    )
    order = Order.objects.create(municipality=town, level=4, issued_at=opened, updated_at=resolved, lifted_at=resolved)
    order.districts.set([district])
    for kind, at in (("issued", opened), ("lifted", resolved)):
        OrderEvent.objects.create(order=order, kind=kind, level=4, districts=[district.code], at=at, actor_name="e2e")
    user = get_user_model().objects.create_user(OPERATOR[0], password=OPERATOR[1])
    Membership.objects.create(user=user, municipality=town, role=Membership.Role.OPERATOR)
    return {"token": ingest_token_create(municipality=town, label="e2e replay gateway")[1], "past_alert": alert.pk}


def test_drag_back_replay_play_and_return_to_live(asgi_server, storm_history, browser):
    page = browser.new_page()
    sent = []
    page.on("websocket", lambda socket: socket.on("framesent", lambda payload: sent.append(payload)))
    asked = []
    page.on("request", lambda request: asked.append(request.url))
    past_marker = f"alert-{storm_history['past_alert']}"
    sign_in(page, asgi_server.url, OPERATOR, "/hq/")
    page.wait_for_function(f"() => {STATUS} === 'live'")
    page.wait_for_function(MARKER_HAS, arg=[CODE, ">L0<"])
    assert not page.locator("#mz-replay-banner").is_visible()
    assert page.evaluate("(id) => id in Mizumori.alertMarkers", past_marker) is False

    # Drag back 45 minutes: the reading of 50 minutes ago (4.1 m) was the latest then — level 4;
    # the alerts on the map are those open then.
    page.evaluate(SLIDE_TO, -45)
    page.wait_for_function(MARKER_HAS, arg=[CODE, ">L4<"])
    page.wait_for_function("(id) => id in Mizumori.alertMarkers", arg=past_marker)
    assert page.evaluate("(id) => Mizumori.alertMarkers[id].feature.properties.level", past_marker) == 4
    # The order in force then is in the banners (not on the board where staff act on the present).
    page.wait_for_function(f"() => {ORDERS}.dataset.ordersOf === 'replay'")
    assert page.evaluate(f"() => {ORDERS}.dataset.ordersInForce") == "1"
    banners = page.locator("#mz-order-banners").inner_text()
    assert "川辺地区" in banners or "Riverside" in banners  # the page speaks the browser's language
    banner = page.locator("#mz-replay-banner")
    assert banner.is_visible()
    assert banner.inner_text().startswith("REPLAY ")
    assert len(page.locator("#mz-replay-time").inner_text()) == 5  # hh:mm
    assert page.evaluate(f"() => {STATUS}") == "paused"
    page.screenshot(path=str(ARTIFACTS / "replay-hq.png"))

    # Play at 120×: the map moves on through the falling limb to level 0, from batches of frames
    # (not a whole as-of map per frame).
    page.select_option("#mz-replay-speed", "120")
    full_reads = sum("/api/v1/stations?at=" in url for url in asked)
    page.click("#mz-replay-play")
    page.wait_for_function(MARKER_HAS, arg=[CODE, ">L2<"], timeout=30_000)
    page.wait_for_function(MARKER_HAS, arg=[CODE, ">L0<"], timeout=30_000)
    assert page.locator("#mz-replay-banner").is_visible()
    page.click("#mz-replay-play")  # pause
    assert any("/api/v1/replay/frames?" in url and "step=48" in url for url in asked)
    assert sum("/api/v1/stations?at=" in url for url in asked) == full_reads

    # Back to live: the banner goes, the socket resumes from the page's last number, and a new
    # reading arrives live.
    resumes_before = sum('"type": "resume"' in p or '"type":"resume"' in p for p in sent if isinstance(p, str))
    page.click("#mz-replay-live")
    page.wait_for_function(f"() => {STATUS} === 'live'")
    assert not page.locator("#mz-replay-banner").is_visible()
    assert page.evaluate("(id) => id in Mizumori.alertMarkers", past_marker) is False
    assert page.evaluate(f"() => [{ORDERS}.dataset.ordersOf, {ORDERS}.dataset.ordersInForce]") == ["live", "0"]
    resumes = [json.loads(p) for p in sent if isinstance(p, str) and json.loads(p).get("type") == "resume"]
    assert len(resumes) > resumes_before and isinstance(resumes[-1]["since"], int)
    asgi_server.post_readings(storm_history["token"], [(CODE, 3.1)])
    page.wait_for_function(MARKER_HAS, arg=[CODE, ">L2<"])
    page.wait_for_function(
        "(code) => Mizumori.stationPopupElement(Mizumori.stationMarkers[code].feature.properties).textContent.includes('3.10 m')",
        arg=CODE,
    )
    browser.assert_clean()


def test_public_page_opened_in_the_past_plays_from_frames_then_goes_live(asgi_server, storm_history, browser):
    """/?at= (a timeline link): the public page builds its map after its first snapshot, so replay
    waits for that map before drawing the past; the frames then find every marker and change it in
    place (no whole as-of read per frame), and no socket is opened until LIVE."""
    page = browser.new_page()
    sockets = []
    page.on("websocket", lambda socket: sockets.append(socket.url))
    asked = []
    page.on("request", lambda request: asked.append(request.url))
    at = (timezone.now() - timedelta(minutes=45)).isoformat()
    page.goto(f"{asgi_server.url}/?at={quote(at)}")
    page.wait_for_function("() => document.getElementById('mz-replay').dataset.replayState === 'shown'")
    assert page.evaluate(MARKER_HAS, [CODE, ">L4<"])  # the past, not the present's L0 drawn over it
    assert page.locator("#mz-replay-banner").is_visible()
    assert page.evaluate(f"() => {STATUS}") == "paused"

    page.select_option("#mz-replay-speed", "120")
    full_reads = sum("/api/v1/stations?at=" in url for url in asked)
    page.click("#mz-replay-play")
    page.wait_for_function(MARKER_HAS, arg=[CODE, ">L2<"], timeout=30_000)
    page.wait_for_function(MARKER_HAS, arg=[CODE, ">L0<"], timeout=30_000)
    page.click("#mz-replay-play")  # pause
    assert any("/api/v1/replay/frames?" in url for url in asked)
    assert sum("/api/v1/stations?at=" in url for url in asked) == full_reads
    assert sockets == []

    page.click("#mz-replay-live")
    page.wait_for_function(f"() => {STATUS} === 'live'")
    assert not page.locator("#mz-replay-banner").is_visible()
    assert len(sockets) == 1
    asgi_server.post_readings(storm_history["token"], [(CODE, 3.6)])
    page.wait_for_function(MARKER_HAS, arg=[CODE, ">L3<"])
    browser.assert_clean()


def refresh_until_newer(page, seq: int, timeout: float = 30.0) -> None:
    """Poll the public snapshot now (as the page's own timer would, later) until it is newer than `seq`."""
    deadline = time.monotonic() + timeout
    while page.evaluate("async () => { await Mizumori.publicPage.refresh(); return Mizumori.publicPage.state.doc.seq; }") <= seq:
        assert time.monotonic() < deadline, "the public snapshot did not move on"
        time.sleep(0.5)


def test_public_alert_list_shows_the_alerts_of_the_moment_replayed_then_the_live_ones(asgi_server, storm_history, browser):
    """The text list of alerts in force follows the slider (GET /api/v1/alerts?at=, the API's as-of
    read); a snapshot polled meanwhile does not draw the present into it; LIVE brings the live list."""
    page = browser.new_page()
    page.goto(f"{asgi_server.url}/")
    page.wait_for_function(f"() => {STATUS} === 'live'")
    page.wait_for_function(f"() => {PUBLIC_ALERTS}.dataset.alertsOf === 'live'")
    assert PAST_CODE not in page.locator("#mz-public-alerts").inner_text()

    page.evaluate(SLIDE_TO, -45)
    page.wait_for_function(f"() => {PUBLIC_ALERTS}.dataset.alertsOf === 'replay'")
    page.locator("#mz-public-alerts", has_text=PAST_CODE).wait_for()
    assert "L4" in page.locator("#mz-public-alerts").inner_text()

    # The present moves on while the past is shown: the polled snapshot is held, the list stays past.
    seq = page.evaluate("() => Mizumori.publicPage.state.doc.seq")
    asgi_server.post_readings(storm_history["token"], [(CODE, 2.4)])
    refresh_until_newer(page, seq)
    assert page.evaluate(f"() => {PUBLIC_ALERTS}.dataset.alertsOf") == "replay"
    assert PAST_CODE in page.locator("#mz-public-alerts").inner_text()

    page.click("#mz-replay-live")
    page.wait_for_function(f"() => {PUBLIC_ALERTS}.dataset.alertsOf === 'live'")
    assert PAST_CODE not in page.locator("#mz-public-alerts").inner_text()
    browser.assert_clean()


@pytest.fixture
def minimal_browser(public_server):
    with chromium_for(public_server.url) as chromium:
        yield chromium


@pytest.mark.public_env(PUBLIC_PAGE_MODE="minimal")
def test_minimal_public_page_has_no_slider_and_shows_the_present_even_when_asked_for_the_past(
    public_server, storm_history, minimal_browser
):
    """Minimal mode is the server shedding load, with no map: no time slider, and a timeline link
    (?at=) opens the present lists rather than an as-of read."""
    page = minimal_browser.new_page()
    asked = []
    page.on("request", lambda request: asked.append(request.url))
    at = (timezone.now() - timedelta(minutes=45)).isoformat()
    page.goto(f"{public_server.url}/?at={quote(at)}")
    page.wait_for_function("() => document.getElementById('mz-public-map').dataset.publicMode === 'minimal'")
    page.wait_for_function(f"() => {PUBLIC_ALERTS}.dataset.alertsOf === 'live'")
    assert page.locator("#mz-replay").is_hidden()
    assert page.locator("#mz-replay-banner").is_hidden()
    assert page.evaluate("() => Mizumori.replay.at") is None
    assert not any("?at=" in url for url in asked if "/api/v1/" in url)
    assert PAST_CODE not in page.locator("#mz-public-alerts").inner_text()
    minimal_browser.assert_clean()
