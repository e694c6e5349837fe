"""axe-core on every page of the product, in Japanese and English, in one Chromium session.

The pages come from the URLconf: every route is either checked here (with the concrete path and who
opens it) or excluded with the reason, and `test_every_route_is_checked_or_excluded_with_a_reason`
fails when a new route is neither, so a new page is not forgotten. Keyboard focus must be visible on
every control (static/mizumori/focus.css, the one home of the focus ring); axe checks names, roles, contrast, labels and landmarks.
"""

from __future__ import annotations

import importlib
import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.urls import URLResolver, get_resolver
from django.utils import timezone

from alerts.models import Alert, AlertEvent, AlertRule
from geo.models import Shelter
from sensors.models import StationKind, Visibility
from sensors.services import observation_ingest
from tenancy.models import Membership
from tests.conftest import make_station, make_town
from tests.e2e.conftest import sign_in
from tests.e2e.test_alert_board_browser import run_axe

ADMIN = ("e2e-axe-admin", "e2e-Axe-admin-pass-8812")
PLATFORM = ("e2e-axe-platform", "e2e-Axe-platform-pass-9923")
GAUGE, RAIN, HIDDEN = "AXE-R1", "AXE-RAIN1", "AXE-B1"
LANGUAGES = ("ja", "en")
# A phone (the residents' and, in a storm, many staff's screen) and a desktop.
VIEWPORTS = {"phone": (390, 844), "desktop": (1280, 900)}

# route (as the URLconf spells it) -> [(who opens it, path)]
PAGES: dict[str, list[tuple[str, str]]] = {
    "": [("anonymous", "/")],
    "accounts/login/": [("anonymous", "/accounts/login/")],
    "stations/<str:code>/": [("anonymous", f"/stations/{GAUGE}/"), ("admin", f"/stations/{RAIN}/")],
    "hq/": [("admin", "/hq/"), ("platform", "/hq/")],
    "hq/alerts/": [("admin", "/hq/alerts/")],
    "hq/alerts/history/": [("admin", "/hq/alerts/history/")],
    "hq/timeline/": [("admin", "/hq/timeline/")],
    "hq/reports/situation/": [("admin", "/hq/reports/situation/")],
    "hq/forecasts/<str:code>/": [("admin", f"/hq/forecasts/{GAUGE}/")],
    "hq/admin/sharing/": [("admin", "/hq/admin/sharing/")],
    "hq/admin/audit/": [("admin", "/hq/admin/audit/")],
    "hq/admin/usage/": [("admin", "/hq/admin/usage/")],
    "hq/admin/thresholds/": [("admin", "/hq/admin/thresholds/")],
    "hq/admin/tokens/": [("admin", "/hq/admin/tokens/")],
    "hq/admin/members/": [("admin", "/hq/admin/members/")],
    "hq/admin/channels/": [("admin", "/hq/admin/channels/")],
    "hq/admin/shelters/": [("admin", "/hq/admin/shelters/")],
    "hq/admin/triggers/": [("admin", "/hq/admin/triggers/")],
    "hq/admin/stations/": [("admin", "/hq/admin/stations/")],
    "hq/admin/stations/new/": [("admin", "/hq/admin/stations/new/")],
    "hq/admin/stations/<str:code>/edit/": [("admin", f"/hq/admin/stations/{GAUGE}/edit/")],
    "hq/platform/towns/": [("platform", "/hq/platform/towns/")],
}

EXCLUDED_PREFIXES = {
    "api/": "JSON (and CAP XML) for programs; docs/api.md, the OpenAPI conformance tests",
    "ngsi/": "NGSI-v2 JSON for programs",
    "admin/": "Django's own admin, kept for the platform operator's rare tasks; not our templates",
}
EXCLUDED = {
    "accounts/logout/": "POST only: logs out and redirects",
    "accounts/password_change/": "Django's default account page (admin templates), not linked from the product",
    "accounts/password_change/done/": "Django's default account page (admin templates), not linked from the product",
    "accounts/password_reset/": "Django's default account page (admin templates), not linked from the product",
    "accounts/password_reset/done/": "Django's default account page (admin templates), not linked from the product",
    "accounts/reset/<uidb64>/<token>/": "Django's default account page (admin templates), not linked from the product",
    "accounts/reset/done/": "Django's default account page (admin templates), not linked from the product",
    "alerts/feed.atom": "Atom XML for feed readers",
    "orders/feed.atom": "Atom XML for feed readers",
    "releases/feed.atom": "Atom XML for feed readers",
    "public/basemap.js": "the public page's map script (checked as part of /)",
    "i18n/catalog/<str:language>.js": "the page scripts' translations (JavaScript, loaded by the pages checked here)",
    "alerts/current/": "a fragment of / (checked there)",
    "hq/overview/": "a fragment of /hq/ (checked there)",
    "hq/reports/situation.pdf": "PDF of the report page (the page is checked)",
    "health/": "JSON for monitoring",
    "hq/town/": "POST only: switches the acting town and redirects",
    "hq/alerts/<int:alert_id>/act": "POST only: redirects to the board; its resolve question is the board's dialog",
    "hq/shelters/<str:code>/status": "POST only: the HQ map's shelter buttons",
    "i18n/setlang/": "POST only: Django's language switch, redirects",
}


# Pages in one language whatever the reader's: (their language, why).
ONE_LANGUAGE = {
    "hq/reports/situation/": ("ja", "the printable situation report (and its PDF): Japanese first, English beside it"),
}


def urlconf_routes() -> list[str]:
    def walk(patterns, prefix=""):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
            else:
                yield prefix + str(pattern.pattern)

    return list(dict.fromkeys(walk(get_resolver().url_patterns)))


def test_every_route_is_checked_or_excluded_with_a_reason():
    routes = urlconf_routes()
    forgotten = [
        route for route in routes
        if route not in PAGES and route not in EXCLUDED and not route.startswith(tuple(EXCLUDED_PREFIXES))
    ]
    assert forgotten == [], "add these to PAGES (checked by axe) or EXCLUDED (with the reason)"
    stale = [route for route in [*PAGES, *EXCLUDED] if route not in routes]
    assert stale == [], "no such route any more"
    assert all(reason.strip() for reason in [*EXCLUDED.values(), *EXCLUDED_PREFIXES.values()])


def test_the_focus_ring_has_one_stylesheet_linked_by_every_page():
    from tests.e2e.conftest import ROOT

    static = ROOT / "static" / "mizumori"
    bare = [css.name for css in static.glob("*.css") if re.search(r"(^|[\s,}]):focus-visible\s*\{", css.read_text())]
    assert bare == ["focus.css"]
    assert "mizumori/focus.css" in (ROOT / "templates" / "base.html").read_text()


@pytest.fixture
def region(transactional_db):
    """Town A (no boundary: drawn as its stations' outline) with a gauge at level 3 and an open
    alert, a rain gauge and a shelter; town B with a private gauge; A's admin and a platform operator."""
    from django.apps import apps

    for name in ("0002_seed_level_scheme_2021", "0007_trust_gauge_words"):
        importlib.import_module(f"alerts.migrations.{name}").seed(apps, None)
    town_a, town_b = make_town("990001", "town-a", "town a"), make_town("990043", "town-b", "town b")
    gauge = make_station(town_a, GAUGE, visibility=Visibility.PUBLIC, lon=140.0, lat=35.0)
    make_station(town_a, RAIN, kind=StationKind.RAIN, visibility=Visibility.REGION, lon=140.05, lat=35.04)
    make_station(town_b, HIDDEN, visibility=Visibility.PRIVATE, lon=140.3, lat=35.1)
    now = timezone.now()
    # The rule and its open alert exist before the readings: the server under test drains the
    # readings at once and evaluates this rule; an alert inserted while it does races its rule lock.
    rule = AlertRule.objects.create(station=gauge, kind="threshold", name="Thresholds (reading)")
    alert = Alert.objects.create(
        station=gauge, rule=rule, level=3, peak_level=3, opened_at=now, updated_at=now, last_value=3.6,
        last_observed_at=now,
    )
    AlertEvent.objects.create(alert=alert, kind="opened", level=3, value=3.6, at=now)
    observation_ingest(
        municipality=None, source="http",
        items=[{"station": GAUGE, "observed_at": now - timedelta(minutes=10 * i), "value": 3.6 - 0.1 * i} for i in range(6)]
        + [{"station": RAIN, "observed_at": now - timedelta(minutes=10 * i), "value": 2.0} for i in range(6)],
    )
    Shelter.objects.create(code="AXE-SH1", name_ja="公民館", name_en="Community hall", municipality=town_a,
                           lon=140.02, lat=35.02, capacity=100, status=Shelter.Status.OPEN, for_flood=True)
    admin = get_user_model().objects.create_user(ADMIN[0], password=ADMIN[1])
    Membership.objects.create(user=admin, municipality=town_a, role=Membership.Role.ADMIN)
    get_user_model().objects.create_superuser(PLATFORM[0], password=PLATFORM[1])


def signed_in(browser, server, credentials, viewport=VIEWPORTS["desktop"]):
    page = browser.new_page(width=viewport[0], height=viewport[1])
    page.set_default_timeout(60_000)
    if credentials is not None:
        sign_in(page, server.url, credentials)
    return page


@pytest.mark.e2e
@pytest.mark.parametrize("size", VIEWPORTS)
def test_axe_finds_no_violation_on_any_page_in_japanese_or_english(asgi_server, region, browser, size):
    viewport = VIEWPORTS[size]
    pages = {
        "anonymous": signed_in(browser, asgi_server, None, viewport),
        "admin": signed_in(browser, asgi_server, ADMIN, viewport),
        "platform": signed_in(browser, asgi_server, PLATFORM, viewport),
    }
    found: dict[str, list[str]] = {}
    focus_missing: dict[str, list[str]] = {}
    for language in LANGUAGES:
        for page in pages.values():
            page.context.add_cookies([{"name": "django_language", "value": language, "url": asgi_server.url}])
        for route, visits in PAGES.items():
            for who, path in visits:
                page = pages[who]
                response = page.goto(f"{asgi_server.url}{path}", wait_until="load")
                assert response.status == 200, (language, who, path, response.status)
                page.wait_for_load_state("networkidle")
                expected_lang = ONE_LANGUAGE.get(route, (language,))[0]
                shown_lang = page.evaluate("document.documentElement.lang")
                violations = run_axe(page)
                if shown_lang != expected_lang:
                    violations.append(f"html lang={shown_lang!r}, expected {expected_lang!r}")
                if violations:
                    found[f"{language} {who} {path}"] = violations
                if language == LANGUAGES[0]:
                    missing = page.evaluate(FOCUS_RING_CHECK)
                    if missing:
                        focus_missing[f"{who} {path}"] = missing
    assert found == {}, "\n".join(f"{where}: {problems}" for where, problems in found.items())
    assert focus_missing == {}, "\n".join(f"{where}: {problems}" for where, problems in focus_missing.items())
    browser.assert_clean()


# Each focusable control, focused from the keyboard's point of view (:focus-visible), must show a ring:
# an outline or a box shadow that it does not have unfocused.
FOCUS_RING_CHECK = """() => {
  const controls = [...document.querySelectorAll('a[href], button, input:not([type=hidden]), select, textarea, [tabindex]:not([tabindex="-1"])')]
    .filter(el => !el.disabled && el.offsetParent !== null).slice(0, 60);
  const missing = [];
  for (const el of controls) {
    const before = getComputedStyle(el);
    const plain = [before.outlineStyle, before.outlineWidth, before.boxShadow].join('|');
    el.focus({focusVisible: true});
    if (document.activeElement !== el) continue;
    const after = getComputedStyle(el);
    const ring = (after.outlineStyle !== 'none' && parseFloat(after.outlineWidth) >= 2) || after.boxShadow !== 'none';
    if (!ring || [after.outlineStyle, after.outlineWidth, after.boxShadow].join('|') === plain) {
      missing.push((el.id ? '#' + el.id : el.tagName.toLowerCase()) + ' ' + (el.textContent || el.name || '').trim().slice(0, 30));
    }
    el.blur();
  }
  return missing;
}"""


MARKER_AT = """([code, lat, lon]) => {
  const marker = window.Mizumori && Mizumori.stationMarkers && Mizumori.stationMarkers[code];
  if (!marker) return false;
  const at = marker.getLatLng();
  return Math.abs(at.lat - lat) < 1e-6 && Math.abs(at.lng - lon) < 1e-6;
}"""


@pytest.mark.e2e
def test_a_town_admin_moves_a_station_with_the_map_picker_and_the_hq_map_follows_live(asgi_server, region, browser):
    hq = signed_in(browser, asgi_server, ADMIN)
    hq.goto(f"{asgi_server.url}/hq/")
    hq.wait_for_selector("#mz-live-status.mz-live-live")
    assert hq.evaluate(MARKER_AT, [GAUGE, 35.0, 140.0])
    editor = signed_in(browser, asgi_server, ADMIN)
    editor.goto(f"{asgi_server.url}/hq/admin/stations/{GAUGE}/edit/")
    marker = editor.locator("#mz-picker-map .leaflet-marker-icon")
    marker.wait_for()
    # A click north-east of the marker (the map's centre) writes the fields.
    editor.locator("#mz-picker-map").scroll_into_view_if_needed()
    box = editor.locator("#mz-picker-map").bounding_box()
    editor.mouse.click(box["x"] + box["width"] * 0.75, box["y"] + box["height"] * 0.3)
    assert float(editor.input_value("#field-lat")) > 35.0 and float(editor.input_value("#field-lon")) > 140.0
    # Typed numbers (full width too) move the marker, and are what is saved.
    placed = marker.bounding_box()
    editor.fill("#field-lat", "35.0123")
    editor.fill("#field-lon", "１４０．０２３４")
    editor.wait_for_function(
        "(before) => { const b = document.querySelector('#mz-picker-map .leaflet-marker-icon').getBoundingClientRect();"
        " return Math.abs(b.x - before.x) > 2 || Math.abs(b.y - before.y) > 2; }",
        arg=placed,
    )
    with editor.expect_navigation():
        editor.click("#mz-station-form button[type=submit]")
    assert "Saved" in editor.inner_text(".mz-messages")  # in the page's language (this browser asks for English)
    hq.wait_for_function(MARKER_AT, arg=[GAUGE, 35.0123, 140.0234])
    browser.assert_clean()
