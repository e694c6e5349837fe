"""The server's part of the resident page (issue 15, point 2): the shell's reading order, skip links,
"near me" with its privacy sentence and live regions that announce only changes; the service worker
served so it may control the page (scope "/"); shelters saying whether they are designated for
floods, so "nearest open shelter" can pass over one that is not. The page's behaviour is tested in
Chromium: tests/e2e/test_resident_browser.py."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from config.build import front_end_build
from config.static_headers import static_headers
from public.tick_cache import forget_all
from tests.geo.test_shelters import make_shelter
from tests.public_page import public_document, public_shell
from tests.conftest import response_bytes

pytestmark = pytest.mark.django_db

SERVICE_WORKER_URL = "/static/mizumori/service-worker.js"


@pytest.fixture(autouse=True)
def calm_machine(settings):
    settings.PUBLIC_MINIMAL_CPU_LOAD = 10**6


@pytest.mark.parametrize("language", ["ja", "en"])
def test_the_shell_puts_what_to_do_before_the_map_and_skips_to_the_list_and_the_map(client, stations, language):
    html = public_shell(client, f"/?lang={language}")
    order = [html.index(marker) for marker in (
        'id="mz-orders"', 'id="mz-public-alerts"', 'id="mz-notices"', 'id="mz-near-me"', 'id="mz-public-map"',
    )]
    assert order == sorted(order)
    skips = re.findall(r'<a class="mz-skip-link" href="([^"]+)"', html)
    assert skips == ["#main", "#mz-near-me", "#mz-public-map"]
    # Skip-link targets take focus.
    assert re.search(r'<section [^>]*id="mz-near-me" tabindex="-1"', html)
    assert re.search(r'<section [^>]*id="mz-public-map" tabindex="-1"', html)
    privacy = "never sent to the server" if language == "en" else "サーバーなどへは送信しません"
    assert privacy in html
    assert 'src="/static/mizumori/nearme.js"' in html
    # Its own name (not content-hashed), with the front-end build it names its cache after.
    assert f'data-service-worker="{SERVICE_WORKER_URL}?build={front_end_build()}"' in html


def test_the_lists_are_not_live_regions_one_announcer_is(client, stations):
    html = public_shell(client)
    for list_id in ("mz-notices", "mz-public-alerts"):
        tag = re.search(rf'<div id="{list_id}"[^>]*>', html).group(0)
        assert "aria-live" not in tag
    assert re.search(r'<p id="mz-public-announcer" [^>]*role="status"[^>]*aria-live="polite"', html)
    assert re.search(r'<div id="mz-offline-notice" [^>]*hidden', html)


def test_the_service_worker_may_control_the_whole_public_page():
    forget_all()
    response = Client().get(SERVICE_WORKER_URL)
    assert response.status_code == 200
    assert response["Service-Worker-Allowed"] == "/"
    assert response["Cache-Control"] == "public, max-age=60"
    body = response_bytes(response)
    # Network first; only the public page's own responses are kept.
    assert b"/api/v1/public/snapshot" in body and b"X-Mizumori-Offline" in body


@pytest.mark.parametrize("url", ["/static/mizumori/public.js", "/static/mizumori/service-worker.js.map",
                                 "/static/other/mizumori/service-worker.jsx"])
def test_other_static_files_get_no_worker_headers(url):
    headers = {}
    static_headers(headers, "/anywhere" + url, url)
    assert headers == {}


@pytest.mark.parametrize("for_flood", [True, False, None])
def test_shelters_say_whether_they_are_designated_for_floods(client, stations, for_flood):
    make_shelter(stations["a-public"].municipality, "SH-F", status="open", for_flood=for_flood)
    shelter = next(f for f in public_document(client)["shelters"] if f["id"] == "SH-F")
    assert shelter["properties"]["for_flood"] is for_flood
    api = client.get("/api/v1/shelters").json()
    assert next(f for f in api["features"] if f["id"] == "SH-F")["properties"]["for_flood"] is for_flood
