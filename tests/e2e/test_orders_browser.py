"""The evacuation-order flow of issue 12 in Chromium against a real ASGI server: a shared upstream
gauge crosses 避難判断水位 → the downstream town's board shows the recommendation → its operator
issues 高齢者等避難 for two districts and opens a shelter → a resident's phone shows the banner, the
coloured districts and the shelter → raised to 避難指示 → lifted → the banner goes; the CAP document
of every step validates against the OASIS schema and references the ones before.

Screenshots: test-artifacts/orders-hq.png, orders-phone-issued.png, orders-phone-raised.png.
"""

import pytest
from django.contrib.auth import get_user_model
from lxml import etree

from geo.models import Shelter
from orders.models import District, TriggerRule
from sensors.models import SharingGrant, Visibility
from tenancy.models import Membership
from tenancy.services import ingest_token_create
from tests.conftest import make_station, make_town
from tests.e2e.conftest import ARTIFACTS, sign_in

from ..alerts.conftest import CAP_XSD, level_scheme  # noqa: F401  (the seeded level words)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

OPERATOR_B = ("e2e-b-operator", "e2e-B-operator-pass-7319")
NS = {"cap": "urn:oasis:names:tc:emergency:cap:1.2"}
PHONE = {"width": 390, "height": 844}


def square(lon, lat, size=0.02):
    return {"type": "Polygon", "coordinates": [[[lon, lat], [lon + size, lat], [lon + size, lat + size], [lon, lat + size], [lon, lat]]]}


@pytest.fixture
def basin(transactional_db, level_scheme):  # noqa: F811
    """Upstream town A shares its gauge UP-1 with downstream town B, whose manual says: UP-1 at
    避難判断水位 → 高齢者等避難 for B-1 and B-2. Committed, so the server process sees it."""
    town_a = make_town("990001", "town-a", "town a")
    town_b = make_town("990043", "town-b", "town b")
    gauge = make_station(town_a, "UP-1", visibility=Visibility.SHARED, lon=140.0, lat=35.1)
    SharingGrant.objects.create(station=gauge, grantor=town_a, grantee=town_b)
    b1 = District.objects.create(code="B-1", municipality=town_b, name_ja="川端", name_en="Kawabata", geometry=square(140.00, 35.00))
    b2 = District.objects.create(code="B-2", municipality=town_b, name_ja="港町", name_en="Minatomachi", geometry=square(140.02, 35.00))
    District.objects.create(code="B-3", municipality=town_b, name_ja="高台", name_en="Takadai", geometry=square(140.04, 35.00))
    rule = TriggerRule.objects.create(municipality=town_b, station=gauge, threshold="evacuation_decision", level=3)
    rule.districts.set([b1, b2])
    Shelter.objects.create(code="SH-B1", name_ja="港小学校", name_en="Minato School", municipality=town_b,
                           lon=140.03, lat=35.01, status=Shelter.Status.CLOSED)
    # Open and nearer still, but designated for earthquakes only (the national dataset's 洪水 column
    # says no): a flood order never suggests it, to the operator or to residents.
    Shelter.objects.create(code="SH-B2", name_ja="河川敷広場", name_en="Riverside Ground", municipality=town_b,
                           lon=140.031, lat=35.011, status=Shelter.Status.OPEN, for_flood=False, for_earthquake=True)
    user = get_user_model().objects.create_user(OPERATOR_B[0], password=OPERATOR_B[1])
    Membership.objects.create(user=user, municipality=town_b, role=Membership.Role.OPERATOR)
    return {"token_a": ingest_token_create(municipality=town_a, label="e2e upstream gateway")[1]}


def test_from_an_upstream_crossing_to_a_lifted_order(asgi_server, basin, browser):
    hq = browser.new_page()
    sign_in(hq, asgi_server.url, OPERATOR_B, "/hq/")
    hq.wait_for_selector("[data-live-view][data-live-status='live']")
    hq.on("dialog", lambda dialog: dialog.accept())

    phone = browser.new_page(**PHONE)
    phone.goto(f"{asgi_server.url}/")
    phone.wait_for_selector("[data-live-view][data-live-status='live']")
    assert phone.locator("#mz-orders .mz-order").count() == 0

    asgi_server.post_readings(basin["token_a"], [("UP-1", 3.6)])  # over 避難判断水位 (3.5 m)
    recommendation = hq.locator("#mz-recommendations .mz-recommendation")
    recommendation.wait_for()
    # The threshold's name in the page's language (this browser asks for English).
    assert "UP-1" in recommendation.inner_text() and "Evacuation decision" in recommendation.inner_text()

    # Issuing needs the confirmation box: without it the server refuses and nothing is issued.
    assert recommendation.locator("select.mz-shelter-select option[value=SH-B2]").count() == 0
    recommendation.locator("select.mz-shelter-select").select_option("SH-B1")
    browser.expect_console_errors("status of 400")  # the refusal, as Chromium logs it
    recommendation.locator("button.mz-issue").click()
    hq.wait_for_selector("#mz-order-board-error:not([hidden])")
    recommendation.locator("input[name=confirm]").check()
    recommendation.locator("input[name=reason]").fill("half typed")
    # What the operator has ticked, chosen and typed survives the board's redraws (every resubscription
    # fetches the orders again and redraws; in a storm, messages redraw it many times a minute).
    _resubscribe(hq)
    assert recommendation.locator("input[name=confirm]").is_checked()
    assert recommendation.locator("select.mz-shelter-select").evaluate("(s) => s.value") == "SH-B1"
    assert recommendation.locator("input[name=reason]").input_value() == "half typed"
    recommendation.locator("button.mz-issue").click()
    hq.locator("#mz-own-orders .mz-own-order").wait_for()
    hq.screenshot(path=str(ARTIFACTS / "orders-hq.png"))

    banner = phone.locator("#mz-order-banners .mz-order-level-3")
    banner.wait_for()
    assert "高齢者等避難" in banner.inner_text() and "川端、港町" in banner.inner_text()
    assert "港小学校 (開設中)" in banner.inner_text()  # the public page in Japanese: names and status in it
    phone.wait_for_function("() => document.querySelectorAll('path.mz-district-level-3').length === 2")
    phone.select_option("#mz-my-district", "B-2")
    assert "港小学校" in phone.locator("#mz-nearest-shelters").inner_text()
    assert "km" in phone.locator("#mz-nearest-shelters").inner_text()
    assert "河川敷広場" not in phone.locator("#mz-nearest-shelters").inner_text()
    phone.screenshot(path=str(ARTIFACTS / "orders-phone-issued.png"))

    own = hq.locator("#mz-own-orders .mz-own-order")
    own.locator("select.mz-level-select").select_option("4")
    _resubscribe(hq)
    assert own.locator("select.mz-level-select").input_value() == "4"
    own.locator("button.mz-change").click()
    phone.locator("#mz-order-banners .mz-order-level-4").wait_for()
    assert "避難指示" in phone.locator("#mz-order-banners").inner_text()
    phone.wait_for_function("() => document.querySelectorAll('path.mz-district-level-4').length === 2")
    phone.screenshot(path=str(ARTIFACTS / "orders-phone-raised.png"))

    hq.locator("#mz-own-orders .mz-own-order button.mz-lift").click()
    phone.wait_for_selector("#mz-orders[data-orders-in-force='0']")
    assert phone.locator("#mz-order-banners .mz-order").count() == 0
    assert "現在、発令中の避難情報はありません。" in phone.locator("#mz-order-banners").inner_text()

    # The CAP document of each step: valid, and referencing every earlier one.
    schema = etree.XMLSchema(etree.parse(str(CAP_XSD)))
    history = hq.request.get(f"{asgi_server.url}/api/v1/orders?all=1").json()["features"][0]["properties"]["events"]
    assert [step["kind"] for step in history] == ["issued", "raised", "lifted"]
    identifiers = []
    for step, msg_type in zip(history, ["Alert", "Update", "Cancel"]):
        document = phone.request.get(f"{asgi_server.url}{step['cap_url']}").body()
        root = etree.fromstring(document)
        assert schema.validate(root), schema.error_log
        assert root.findtext("cap:msgType", namespaces=NS) == msg_type
        references = root.findtext("cap:references", namespaces=NS) or ""
        assert all(identifier in references for identifier in identifiers)
        identifiers.append(root.findtext("cap:identifier", namespaces=NS))
    browser.assert_clean()


def _resubscribe(page):
    """What static/mizumori/live.js announces after every (re)subscription; returns once what it
    fetched again has been read and applied."""
    page.evaluate("""async () => {
      const original = window.fetch;
      const replies = [];
      window.fetch = function (...args) {
        const reply = original.apply(this, args);
        replies.push(reply.then((response) => response.clone().text()).catch(() => null));
        return reply;
      };
      try {
        document.dispatchEvent(new CustomEvent("mizumori:subscribed", { detail: {} }));
      } finally {
        window.fetch = original;
      }
      if (!replies.length) { throw new Error("nothing was fetched again"); }
      await Promise.all(replies);
      await new Promise((resolve) => setTimeout(resolve, 0));
    }""")
