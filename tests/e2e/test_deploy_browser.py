"""A deploy meets pages and browsers that hold the previous one: the public page names its scripts by
content-hashed URLs; the service worker keeps one cache per front-end build (config/build.py) and a
new build's worker deletes the old one's; a page whose scripts do not know the version of the data
the server sends (the public snapshot document, the live messages) draws none of it and asks the
reader to reload. The servers run production's hashed names (tests/server_settings.py).
"""

import json
import re

import pytest

from tests.e2e import test_live_browser
from tests.e2e.conftest import sign_in
from tests.e2e.test_live_browser import LIVE, OPERATOR, PUBLIC_CODE

region = test_live_browser.region  # the fixture: town A's gauges, shelter, gateway token and operator

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

HASHED = re.compile(r"/static/mizumori/public\.[0-9a-f]{12}\.js$")
OUTDATED_JA = "このページは古くなっています"


def cache_names(page) -> list[str]:
    return page.evaluate("() => caches.keys()")


def test_the_page_names_hashed_files_and_the_worker_keeps_them_under_its_build_only(asgi_server, region, browser):
    page = browser.new_page()
    page.goto(f"{asgi_server.url}/")
    page.wait_for_selector("#mz-public-map[data-offline-ready='true']")  # the worker holds the page
    scripts = page.evaluate("() => Array.from(document.scripts, (script) => script.src)")
    assert any(HASHED.search(src) for src in scripts), scripts
    worker = page.evaluate("() => navigator.serviceWorker.ready.then((r) => r.active.scriptURL)")
    build = re.fullmatch(rf"{re.escape(asgi_server.url)}/static/mizumori/service-worker\.js\?build=(\w+)", worker)
    assert build, worker  # its own name, not a hashed one: the registration stays at one URL
    build = build.group(1)
    assert cache_names(page) == [f"mizumori-public-{build}"]
    kept = page.evaluate(
        f"() => caches.open('mizumori-public-{build}').then((c) => c.keys()).then((k) => k.map((r) => r.url))"
    )
    assert any(HASHED.search(url) for url in kept), kept
    assert any(f"/i18n/catalog/ja.js?v={build}" in url for url in kept), kept

    # The next deploy's page registers the worker with its build: the new worker takes over and
    # deletes the previous build's cache, so nothing kept under the old deploy is served to the new.
    page.evaluate(
        "(build) => navigator.serviceWorker.register('/static/mizumori/service-worker.js?build=' + build, {scope: '/'})",
        "nextdeploy",
    )
    page.wait_for_function(
        "() => caches.keys().then((names) => names.every((name) => name === 'mizumori-public-nextdeploy'))"
    )
    page.wait_for_function(
        "() => navigator.serviceWorker.controller && navigator.serviceWorker.controller.scriptURL.endsWith('?build=nextdeploy')"
    )
    # The new cache fills from the page's next load (network first), as after a real deploy.
    page.reload()
    page.wait_for_selector(LIVE)
    page.wait_for_function(
        "() => caches.keys().then((names) => names.length === 1 && names[0] === 'mizumori-public-nextdeploy')"
    )
    browser.assert_clean()


def test_a_snapshot_of_an_unknown_version_is_not_drawn_and_the_page_asks_to_reload(asgi_server, region, browser):
    # No service worker: the test rewrites the document on its way to the page.
    page = browser.new_page(service_workers="block")
    asked = []

    def newer_version(route):
        asked.append(route.request.url)
        response = route.fetch()
        doc = response.json()
        doc["version"] = 99  # a document of a deploy after this page's scripts
        route.fulfill(response=response, body=json.dumps(doc))

    page.route("**/api/v1/public/snapshot", newer_version)
    page.goto(f"{asgi_server.url}/")
    notice = page.locator("#mz-outdated-notice[role='alert']")
    notice.wait_for()
    assert OUTDATED_JA in notice.text_content()
    assert page.get_attribute("#mz-public-map", "data-live-status") == "outdated"
    assert page.get_attribute("#mz-public-map", "data-outdated") == "99"
    assert page.evaluate("() => Object.keys(Mizumori.stationMarkers || {}).length") == 0  # nothing drawn
    # No more polls (the e2e server's tick is 1 s) and no socket.
    seen = len(asked)
    page.wait_for_timeout(3000)
    assert len(asked) == seen
    assert page.evaluate("() => !(Mizumori.live && Mizumori.live.socket)")

    # Reloading with scripts that know the document draws it.
    page.unroute("**/api/v1/public/snapshot")
    with page.expect_navigation():
        notice.get_by_role("button").click()
    page.wait_for_selector(LIVE)
    assert page.evaluate("(code) => code in Mizumori.stationMarkers", PUBLIC_CODE)
    assert page.locator("#mz-outdated-notice").count() == 0
    browser.assert_clean()


def test_hq_stops_when_the_server_speaks_live_messages_it_does_not_know(asgi_server, region, browser):
    page = browser.new_page()

    def newer_protocol(ws):
        server = ws.connect_to_server()

        def to_page(message):
            if isinstance(message, str) and '"subscribed"' in message:
                subscribed = json.loads(message)
                if subscribed.get("type") == "subscribed":
                    message = json.dumps({**subscribed, "version": 2})
            ws.send(message)

        server.on_message(to_page)

    page.route_web_socket(re.compile(r".*/ws/live/.*"), newer_protocol)
    sign_in(page, asgi_server.url, OPERATOR, "/hq/")
    notice = page.locator("#mz-outdated-notice[role='alert']")
    notice.wait_for()
    assert page.get_attribute("[data-live-view]", "data-live-status") == "outdated"
    # The socket is closed for good: no reconnect brings messages this page could draw wrongly.
    page.wait_for_timeout(2000)
    assert page.evaluate("() => Mizumori.live.socket === null && !Mizumori.live.wanted")
    browser.assert_clean()
