"""The time slider in Chromium against a real ASGI server: drag back to a past moment (REPLAY banner,
the levels of then, live socket paused), play forward (from batches of /api/v1/replay/frames),
return to live (the socket resumes from its last sequence number) and receive a live update again.
Screenshot: test-artifacts/replay-hq.png."""

import json
from urllib.parse import quote
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from sensors.models import Visibility
from sensors.services import observation_ingest
from tenancy.models import Membership
from tenancy.services import ingest_token_create
from tests.conftest import make_station, make_town
from tests.e2e.conftest import ARTIFACTS, sign_in

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
    user = get_user_model().objects.create_user(OPERATOR[0], password=OPERATOR[1])
    Membership.objects.create(user=user, municipality=town, role=Membership.Role.OPERATOR)
    return {"token": ingest_token_create(municipality=town, label="e2e replay gateway")[1]}


def test_drag_back_replay_play_and_return_to_live(asgi_server, storm_history, browser):
    page = browser.new_page()
    sent = []
    page.on("websocket", lambda socket: socket.on("framesent", lambda payload: sent.append(payload)))
    asked = []
    page.on("request", lambda request: asked.append(request.url))
    sign_in(page, asgi_server.url, OPERATOR, "/hq/")
    page.wait_for_function(f"() => {STATUS} === 'live'")
    page.wait_for_function(MARKER_HAS, arg=[CODE, ">L0<"])
    assert not page.locator("#mz-replay-banner").is_visible()

    # Drag back 45 minutes: the reading of 50 minutes ago (4.1 m) was the latest then — level 4.
    page.evaluate(SLIDE_TO, -45)
    page.wait_for_function(MARKER_HAS, arg=[CODE, ">L4<"])
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
