"""Withdrawing a share in Chromium: the other town's open HQ map drops the station at once, and its
next API call no longer lists it."""

import pytest
from django.contrib.auth import get_user_model

from sensors.models import SharingGrant, Visibility
from tenancy.models import Membership
from tests.conftest import make_station, make_town
from tests.e2e.conftest import ARTIFACTS, sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SHARED = "E2E-SHARED"
ADMIN_A = ("e2e-a-admin", "e2e-A-admin-pass-7731")
STAFF_B = ("e2e-b-staff", "e2e-B-staff-pass-1907")
LIVE = "[data-live-view][data-live-status='live']"


@pytest.fixture
def shared_station(transactional_db):
    town_a, town_b = make_town("990001", "town-a", "town a"), make_town("990043", "town-b", "town b")
    station = make_station(town_a, SHARED, visibility=Visibility.SHARED, lon=140.0, lat=35.0)
    SharingGrant.objects.create(station=station, grantor=town_a, grantee=town_b)
    for (name, password), town, role in ((ADMIN_A, town_a, "admin"), (STAFF_B, town_b, "viewer")):
        user = get_user_model().objects.create_user(name, password=password)
        Membership.objects.create(user=user, municipality=town, role=role)
    return station


def log_in(browser, server, credentials, next_path):
    return sign_in(browser.new_page(), server.url, credentials, next_path)


def test_withdrawing_a_share_removes_the_station_from_the_neighbours_open_map(asgi_server, shared_station, browser):
    town_b_hq = log_in(browser, asgi_server, STAFF_B, "/hq/")
    town_b_hq.wait_for_selector(LIVE)
    assert town_b_hq.evaluate("(code) => code in Mizumori.stationMarkers", SHARED)

    town_a_admin = log_in(browser, asgi_server, ADMIN_A, "/hq/admin/sharing/")
    town_a_admin.click("form:has(input[name=action][value=withdraw]) button[type=submit]")
    town_a_admin.wait_for_selector("text=Sharing withdrawn")

    # Without a reload: the marker goes, and the page's next API call agrees.
    town_b_hq.wait_for_function("(code) => !(code in Mizumori.stationMarkers)", arg=SHARED)
    codes = town_b_hq.evaluate(
        "async () => (await (await fetch('/api/v1/stations')).json()).features.map(f => f.properties.code)"
    )
    assert SHARED not in codes
    town_b_hq.screenshot(path=str(ARTIFACTS / "sharing-withdrawn-town-b.png"))
    browser.assert_clean()


def test_the_alert_board_goes_live_without_script_errors(asgi_server, shared_station, browser):
    board = log_in(browser, asgi_server, STAFF_B, "/hq/alerts/")
    board.wait_for_selector("#mz-live-status.mz-live-live")
    assert board.locator("#mz-live-status").inner_text() in ("Live", "ライブ")  # the browser's language
    browser.assert_clean()
