"""Onboarding a town in the product (issue 15, point 6), in Chromium, in Japanese and English on a
phone and a desktop: the platform operator creates a town with its admin in one form; the town
admin signs in, adds a station with the map picker, moves it, creates a gateway token, a gateway
posts a reading with it, and the admin sees "first reading received"; the town has no boundary, so
the maps draw its stations' outline (dashed) and the operator's list flags it.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError

from tenancy.models import validate_local_government_code
from tests.e2e.conftest import ARTIFACTS, sign_in

PLATFORM = ("e2e-onb-platform", "e2e-Onb-platform-pass-5521")
SIZES = {"phone": (390, 844), "desktop": (1280, 900)}
# The outline of a town without a boundary is dashed (geo.maps.OUTLINE_DASH).
OUTLINE = '.mz-map path[stroke-dasharray="4 6"]'


def town_code(prefix: str) -> str:
    """A valid local government code (its check digit right) starting with these five digits."""
    for digit in "0123456789":
        try:
            validate_local_government_code(prefix + digit)
            return prefix + digit
        except ValidationError:
            continue
    raise AssertionError(prefix)


@pytest.fixture
def platform_operator(transactional_db):
    get_user_model().objects.create_superuser(PLATFORM[0], password=PLATFORM[1])


def new_page(browser, server, language, size):
    width, height = SIZES[size]
    page = browser.new_page(width=width, height=height)
    page.context.add_cookies([{"name": "django_language", "value": language, "url": server.url}])
    return page


def town_row(page, slug):
    return page.locator(f"tr[data-town='{slug}']")


@pytest.mark.e2e
def test_a_town_is_onboarded_in_the_product_to_its_first_reading(asgi_server, platform_operator, browser):
    site = asgi_server.url
    for number, (language, size) in enumerate((lang, size) for lang in ("ja", "en") for size in SIZES):
        slug, code = f"onb-{language}-{size}", f"E2E-ONB-{number}"
        admin = (f"e2e-onb-admin-{number}", f"Kawa{number}-Mizu-Tsutsumi-9931")

        # The platform operator: the town and its first admin in one form.
        operator = new_page(browser, asgi_server, language, size)
        sign_in(operator, site, PLATFORM, "/hq/platform/towns/")
        operator.fill("input[name=code]", town_code(f"9800{number}"))
        operator.fill("input[name=slug]", slug)
        operator.fill("input[name=name_ja]", f"オンボード町{number}")
        operator.fill("input[name=name_en]", f"Onboard town {number}")
        operator.fill("input[name=admin_username]", admin[0])
        operator.fill("input[name=admin_password]", admin[1])
        with operator.expect_navigation():
            operator.click("form.mz-history-filters button[type=submit]")
        assert operator.locator(".mz-form-error").count() == 0, operator.inner_text(".mz-form-error")
        assert slug in operator.inner_text(".mz-messages")
        # No boundary and no station yet: flagged, and nothing to draw.
        flag = town_row(operator, slug).locator("[data-flag=no-boundary]")
        assert flag.is_visible()
        assert town_row(operator, slug).locator("[data-flag=no-stations]").count() == 1

        # The town admin adds a station: typed position, then moved by a click on the map picker.
        town_admin = new_page(browser, asgi_server, language, size)
        sign_in(town_admin, site, admin, "/hq/admin/stations/new/")
        town_admin.fill("#field-code", code)
        town_admin.fill("#field-name_ja", f"{code} 観測所")
        town_admin.fill("#field-name_en", f"{code} gauge")
        # The river ladder, lowest line first (水防団待機水位 … 氾濫発生).
        for value, field in zip(("2", "3", "3.5", "4", "5"), town_admin.locator(".mz-ladder[data-kind=river] input").all()):
            field.fill(value)
        town_admin.fill("#field-lat", "35.1")
        town_admin.fill("#field-lon", "140.1")
        marker = town_admin.locator("#mz-picker-map .leaflet-marker-icon")
        marker.wait_for()
        town_admin.locator("#mz-picker-map").scroll_into_view_if_needed()
        box = town_admin.locator("#mz-picker-map").bounding_box()
        town_admin.mouse.click(box["x"] + box["width"] * 0.75, box["y"] + box["height"] * 0.3)
        picked = float(town_admin.input_value("#field-lat")), float(town_admin.input_value("#field-lon"))
        assert picked[0] > 35.1 and picked[1] > 140.1, picked
        with town_admin.expect_navigation():
            town_admin.click("#mz-station-form button[type=submit]")
        assert town_admin.locator("#mz-station-errors").count() == 0, town_admin.inner_text("#mz-station-errors")
        assert town_admin.url.endswith(f"/hq/admin/stations/{code}/edit/"), town_admin.url
        assert abs(float(town_admin.input_value("#field-lat")) - picked[0]) < 1e-6

        # ... and moves it.
        town_admin.fill("#field-lat", "35.105")
        town_admin.fill("#field-lon", "140.095")
        with town_admin.expect_navigation():
            town_admin.click("#mz-station-form button[type=submit]")
        moved = float(town_admin.input_value("#field-lat")), float(town_admin.input_value("#field-lon"))
        assert moved == (35.105, 140.095), moved

        # A gateway token, shown once; no reading yet.
        town_admin.goto(f"{site}/hq/admin/tokens/")
        assert "✗" in town_admin.inner_text("[data-check=first-reading]")
        with town_admin.expect_navigation():
            town_admin.click("form.mz-form-row button[type=submit]")
        token = town_admin.inner_text("#mz-new-token").strip()
        asgi_server.post_readings(token, [(code, 1.23)])
        town_admin.goto(f"{site}/hq/admin/tokens/")
        check = town_admin.inner_text("[data-check=first-reading]")
        assert check.startswith("✓") and code in check, check
        assert town_admin.evaluate("() => document.documentElement.lang") == language

        # Without a boundary the town is drawn as its station's outline, dashed, and flagged.
        town_admin.goto(f"{site}/hq/")
        town_admin.wait_for_selector(OUTLINE, state="attached")
        town_admin.screenshot(path=str(ARTIFACTS / f"onboarding-hq-{language}-{size}.png"))
        operator.reload()
        assert town_row(operator, slug).locator("[data-flag=no-boundary]").is_visible()
        assert town_row(operator, slug).locator("[data-flag=no-stations]").count() == 0
        operator.context.close()
        town_admin.context.close()
    browser.assert_clean()
