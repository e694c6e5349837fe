"""Messages that lead somewhere (issue 15, point 5), in Chromium: an alert fires from a gateway's
reading, the e-mail and the webhook its delivery rows stand for carry links on SITE_URL, and a
signed-in staff member who opens them lands on the alert's board row and the station's page, in
Japanese and English, on a phone and a desktop. The channel's rate limit (digest window) is shown
where the channel is configured.

The server under test fires the alert and writes the delivery rows. The messages are made here from
those rows by the real transports (the mail outbox, a webhook receiver on 127.0.0.1): whether the
server also dispatched them itself depends on the run (eager Celery without Redis), not on what a
message says.
"""

from __future__ import annotations

import importlib
import re
import time
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core import mail

from alerts.models import AlertRule, Delivery, NotificationChannel
from alerts.selectors import events_for_notification, notification_document
from alerts.transports import email, webhook
from sensors.models import Visibility
from tenancy.models import Membership
from tenancy.services import ingest_token_create
from tests.alerts.test_notifications import SECRET, receiving
from tests.conftest import make_station, make_town
from tests.e2e.conftest import ARTIFACTS, sign_in

ADMIN = ("e2e-msg-admin", "e2e-Msg-admin-pass-4471")
CODE = "MSG-R1"
DIGEST_MINUTES = 15
SIZES = {"phone": (390, 844), "desktop": (1280, 900)}
ROW = f"#row-{CODE}-level"
# What the server needs, at most, to drain a reading into an alert and its deliveries.
FIRE_SECONDS = 60


def wait_for_deliveries(count: int) -> list[Delivery]:
    deadline = time.monotonic() + FIRE_SECONDS
    while time.monotonic() < deadline:
        deliveries = list(Delivery.objects.filter(event__alert__station__code=CODE).select_related("channel"))
        if len(deliveries) >= count:
            return deliveries
        time.sleep(0.2)
    pytest.fail(f"the server wrote {len(deliveries)} of {count} deliveries for {CODE}")


@pytest.fixture
def messages(transactional_db, asgi_server, settings):
    """Town A's gauge above its evacuation-decision line (level 3) from a gateway's reading, town A's
    e-mail channel (rate limited to one message per 15 minutes) and webhook, and its admin; the
    messages of the alert's first event as the channels get them."""
    from django.apps import apps

    for name in ("0002_seed_level_scheme_2021", "0007_trust_gauge_words"):
        importlib.import_module(f"alerts.migrations.{name}").seed(apps, None)
    town = make_town("990001", "town-a", "town a")
    station = make_station(town, CODE, visibility=Visibility.PRIVATE, lon=140.0, lat=35.0)
    AlertRule.objects.create(station=station, kind="threshold", name="Thresholds (reading)")
    user = get_user_model().objects.create_user(ADMIN[0], password=ADMIN[1])
    Membership.objects.create(user=user, municipality=town, role=Membership.Role.ADMIN)
    settings.OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1"]
    settings.SITE_URL = asgi_server.url
    with receiving() as receiver:
        NotificationChannel.objects.create(
            municipality=town, kind="email", target="hq@town-a.example", digest_window=timedelta(minutes=DIGEST_MINUTES)
        )
        NotificationChannel.objects.create(municipality=town, kind="webhook", target=receiver.url, secret=SECRET)
        token = ingest_token_create(municipality=town, label="e2e messages gateway")[1]
        asgi_server.post_readings(token, [(CODE, 3.62)])
        deliveries = wait_for_deliveries(2)
        (event,) = events_for_notification({d.event_id for d in deliveries})
        document = notification_document(event)
        for delivery in deliveries:
            {"email": email.send, "webhook": webhook.send}[delivery.channel.kind](delivery.channel, document)
        (payload,) = receiver.accepted
    (message,) = mail.outbox
    return {"mail": message, "webhook": payload}


def links_in(text: str) -> list[str]:
    return re.findall(r"https?://\S+", text)


@pytest.mark.e2e
def test_an_alerts_mail_and_webhook_lead_staff_to_its_board_row_and_station_page(asgi_server, messages, browser):
    site = asgi_server.url
    board_link, station_link = f"{site}/hq/alerts/{ROW}", f"{site}/stations/{CODE}/"
    # Links on SITE_URL to pages for people, not only to the API's JSON.
    mail_links = links_in(messages["mail"].body)
    assert board_link in mail_links and station_link in mail_links, messages["mail"].body
    alert = messages["webhook"]["alert"]
    assert (alert["board_url"], alert["station_page_url"]) == (board_link, station_link)

    for language, station_name in (("ja", f"{CODE} 観測所"), ("en", f"{CODE} gauge")):
        for size, (width, height) in SIZES.items():
            page = browser.new_page(width=width, height=height)
            page.context.add_cookies([{"name": "django_language", "value": language, "url": site}])
            sign_in(page, site, ADMIN)
            page.goto(board_link)
            page.wait_for_selector("#mz-live-status.mz-live-live")
            row = page.locator(ROW)
            assert page.evaluate("() => document.querySelector(':target') && document.querySelector(':target').id") == ROW[1:]
            assert row.get_attribute("data-level") == "3"
            # The row is on screen, not below a screenful of other rows.
            assert page.evaluate(
                "(selector) => { const r = document.querySelector(selector).getBoundingClientRect();"
                " return r.top >= 0 && r.top < window.innerHeight; }",
                ROW,
            ), (language, size)
            assert page.evaluate("() => document.documentElement.lang") == language
            page.screenshot(path=str(ARTIFACTS / f"message-board-{language}-{size}.png"))

            page.goto(station_link)
            assert station_name in page.inner_text("h1"), (language, size)
            assert page.evaluate("() => document.documentElement.lang") == language

            # Where the channel is configured, its rate limit shows.
            page.goto(f"{site}/hq/admin/channels/")
            digest = page.locator("form.mz-channel", has_text="hq@town-a.example").locator("input[name=digest_minutes]")
            assert digest.input_value() == str(DIGEST_MINUTES) and digest.is_visible(), (language, size)
            page.context.close()
    browser.assert_clean()
