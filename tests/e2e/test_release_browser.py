"""A dam release notice posted by the dam's gateway reaches an open public map without a reload: the
panel with 「川に近づかないでください」 and the river drawn; ending it takes both away."""

import json
import urllib.request

import pytest

from geo.models import River
from sensors.models import StationKind
from tenancy.services import ingest_token_create
from tests.conftest import make_station, make_town
from tests.e2e.conftest import ARTIFACTS, sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

RELEASE_LINE = "path.leaflet-interactive[stroke='#0050b3']"


@pytest.fixture
def upstream_dam(transactional_db):
    town_a = make_town("990001", "town-a", "town a")
    make_town("990043", "town-b", "town b")
    make_station(town_a, "E2E-PUB", lon=140.05, lat=35.1)
    make_station(town_a, "E2E-DAM", kind=StationKind.RESERVOIR, lon=140.0, lat=35.2)
    River.objects.create(name_ja="水森川", name_en="Mizumori River",
                         geometry={"type": "LineString", "coordinates": [[140.0, 35.2], [140.05, 35.1], [140.1, 35.0]]})
    return ingest_token_create(municipality=town_a, label="dam gateway")[1]


def call(server, path: str, token: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"{server.url}{path}", data=json.dumps(body or {}).encode(), method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def test_a_release_notice_appears_on_the_open_public_map_and_leaves_when_ended(asgi_server, upstream_dam, browser):
    page = browser.new_page()
    page.goto(f"{asgi_server.url}/")
    page.wait_for_selector("[data-live-view][data-live-status='live']")
    assert "放流中のダムはありません" in page.locator("#mz-releases-list").text_content()
    assert page.locator(RELEASE_LINE).count() == 0

    from datetime import datetime, timedelta, timezone

    release = call(asgi_server, "/api/v1/releases", upstream_dam, {
        "dam": "E2E-DAM", "started_at": (datetime.now(timezone.utc) - timedelta(minutes=1)).isoformat(),
        "planned_discharge": 300, "reach": "水森川 ダム下流〜河口", "downstream": ["town-b"], "river": "水森川",
    })
    page.wait_for_function(
        "() => document.getElementById('mz-releases-list').textContent.includes('川に近づかないでください')"
    )
    assert "水森川 ダム下流〜河口" in page.locator("#mz-releases-list").text_content()
    page.wait_for_selector(RELEASE_LINE)
    page.screenshot(path=str(ARTIFACTS / "release-public.png"))

    call(asgi_server, f"/api/v1/releases/{release['id']}/end", upstream_dam)
    page.wait_for_function("() => document.getElementById('mz-releases-list').textContent.includes('放流中のダムはありません')")
    assert page.locator(RELEASE_LINE).count() == 0
    browser.assert_clean()


DOWNSTREAM_VIEWER = ("e2e-b-viewer", "pw-e2e-12345-b")


@pytest.fixture
def downstream_viewer(upstream_dam):
    from django.contrib.auth import get_user_model

    from tenancy.models import Membership, Municipality

    user = get_user_model().objects.create_user(DOWNSTREAM_VIEWER[0], password=DOWNSTREAM_VIEWER[1])
    Membership.objects.create(user=user, municipality=Municipality.objects.get(slug="town-b"), role=Membership.Role.VIEWER)
    return upstream_dam


def test_a_release_notice_appears_on_the_downstream_towns_open_alert_board(asgi_server, downstream_viewer, browser):
    page = browser.new_page()
    sign_in(page, asgi_server.url, DOWNSTREAM_VIEWER, "/hq/alerts/")
    page.wait_for_selector("#mz-live-status.mz-live-live")
    assert page.locator("#mz-alert-board .mz-release-row").count() == 0

    from datetime import datetime, timedelta, timezone

    release = call(asgi_server, "/api/v1/releases", downstream_viewer, {
        "dam": "E2E-DAM", "started_at": (datetime.now(timezone.utc) - timedelta(minutes=1)).isoformat(),
        "planned_discharge": 300, "current_discharge": 150, "reach": "水森川 ダム下流〜河口", "downstream": ["town-b"],
    })
    row = page.wait_for_selector(f"#mz-alert-board .mz-release-row[data-release-id='{release['id']}']")
    advice = "Keep away from the river" if page.get_attribute("html", "lang") == "en" else "川に近づかないでください"
    assert "150.0 m³/s" in row.text_content() and advice in row.text_content()
    page.screenshot(path=str(ARTIFACTS / "release-board.png"))

    call(asgi_server, f"/api/v1/releases/{release['id']}/end", downstream_viewer)
    page.wait_for_function("() => !document.querySelector('#mz-alert-board .mz-release-row')")
    browser.assert_clean()
