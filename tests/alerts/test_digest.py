"""A channel's rate limit per station: a storm flapping one gauge between levels sends the first alert
and each new higher level at once, and everything else of that gauge within the window as one digest,
through the same idempotent dispatcher (alerts.services._DigestLimiter, deliveries_dispatch)."""

import json
import re
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from alerts.models import Alert, AlertEvent, AlertRule, Delivery, NotificationChannel
from alerts.services import _deliveries_create, deliveries_dispatch
from alerts.transports import notification_id
from alerts.transports.webhook import body_for
from sensors.models import Visibility
from tests.conftest import make_station

# 25 updates in 7 minutes for one gauge, as the issue saw: L2 → L3 → L4 with flapping between.
STORM = [("opened", 2)] + [("escalated", 3), ("deescalated", 2)] * 5 + [("escalated", 3), ("escalated", 4)] + [
    ("deescalated", 3), ("escalated", 4)
] * 5 + [("deescalated", 3), ("deescalated", 2)]
STEP = timedelta(seconds=17)


@pytest.fixture
def gauge(towns):
    return make_station(towns[0], "D-GAUGE", visibility=Visibility.REGION)


def new_alert(station, level=2):
    rule, _ = AlertRule.objects.get_or_create(station=station, kind="threshold", name="Thresholds (reading)")
    now = timezone.now()
    return Alert.objects.create(station=station, rule=rule, level=level, peak_level=level, opened_at=now, updated_at=now)


def play(alert, sequence, start, *, step=STEP):
    """Each update as the change log hands it over: its deliveries queued, then due ones sent."""
    at = start
    for kind, level in sequence:
        event = AlertEvent.objects.create(alert=alert, kind=kind, level=level, value=3.0 + level / 10, at=at)
        _deliveries_create([event], now=at)
        deliveries_dispatch(worker_id="w", now=at)
        at += step
    return at


def test_a_storm_of_25_updates_in_7_minutes_is_3_messages_at_once_and_one_digest(towns, gauge, settings):
    settings.ALERT_DIGEST_WINDOW_SECONDS = 600
    NotificationChannel.objects.create(municipality=towns[0], kind="email", target="hq@town-a.example")
    assert len(STORM) == 25
    start = timezone.now()
    end = play(new_alert(gauge), STORM, start)
    assert end - start <= timedelta(minutes=7, seconds=30)
    # At once: the first alert, the first L3 and the first L4; nothing else yet.
    assert [m.extra_headers["X-Mizumori-Event"].isdigit() for m in mail.outbox] == [True, True, True]
    assert ["警戒レベル2相当" in mail.outbox[0].subject, "警戒レベル3相当" in mail.outbox[1].subject,
            "警戒レベル4相当" in mail.outbox[2].subject] == [True, True, True]
    assert deliveries_dispatch(worker_id="w", now=start + timedelta(minutes=9)).claimed == 0
    # One window after the first message: the other 22 as one digest, oldest first.
    report = deliveries_dispatch(worker_id="w", now=start + timedelta(minutes=11))
    assert (report.claimed, report.sent) == (22, 22)
    assert len(mail.outbox) == 4
    digest = mail.outbox[3]
    assert "まとめ 22件" in digest.subject and "Digest of 22 updates" in digest.subject and "D-GAUGE" in digest.subject
    assert len(re.findall(r"^\d{4}-\d\d-\d\dT\S+  L\d ", digest.body, flags=re.M)) == 22
    assert "/hq/alerts/" in digest.body and "/stations/D-GAUGE/" in digest.body
    ids = digest.extra_headers["X-Mizumori-Event"].removeprefix("digest-").split(",")
    batched = Delivery.objects.filter(digest_at__isnull=False).order_by("event__at", "event_id")
    assert ids == [str(d.event_id) for d in batched] and len(ids) == 22
    assert set(Delivery.objects.values_list("state", flat=True)) == {"sent"}
    # Sent is sent: another dispatcher sends nothing again.
    assert deliveries_dispatch(worker_id="w2", now=start + timedelta(hours=2)).claimed == 0
    assert len(mail.outbox) == 4


def test_the_window_is_per_channel_and_zero_sends_every_update(towns, gauge, settings):
    settings.ALERT_DIGEST_WINDOW_SECONDS = 600
    NotificationChannel.objects.create(municipality=towns[0], kind="email", target="every@town-a.example",
                                       digest_window=timedelta(0))
    NotificationChannel.objects.create(municipality=towns[1], kind="email", target="short@town-b.example",
                                       digest_window=timedelta(minutes=1))
    start = timezone.now()
    play(new_alert(gauge), STORM[:6], start)  # 6 updates over 85 s
    every = [m for m in mail.outbox if m.to == ["every@town-a.example"]]
    short = [m for m in mail.outbox if m.to == ["short@town-b.example"]]
    assert len(every) == 6
    # L2 and L3 at once (0 s, 17 s); the next three within a minute of the last message as one
    # digest at 77 s; the sixth (85 s) within a minute of that digest waits for the next one.
    assert len(short) == 3 and "まとめ 3件" in short[2].subject
    deliveries_dispatch(worker_id="w", now=start + timedelta(minutes=5))
    told = sum(
        int(m.subject.split("まとめ ")[1].split("件")[0]) if "まとめ" in m.subject else 1
        for m in mail.outbox if m.to == ["short@town-b.example"]
    )
    assert told == 6  # every update reached the channel once, batched or not


def test_an_update_after_a_quiet_window_goes_at_once(towns, gauge, settings):
    settings.ALERT_DIGEST_WINDOW_SECONDS = 600
    NotificationChannel.objects.create(municipality=towns[0], kind="email", target="hq@town-a.example")
    start = timezone.now()
    alert = new_alert(gauge)
    play(alert, [("opened", 3)], start)
    play(alert, [("deescalated", 2)], start + timedelta(minutes=12))
    assert len(mail.outbox) == 2 and not any("まとめ" in m.subject for m in mail.outbox)


def test_another_town_never_gets_a_digest_of_a_private_gauge(towns, settings):
    settings.ALERT_DIGEST_WINDOW_SECONDS = 600
    private = make_station(towns[0], "D-PRIVATE", visibility=Visibility.PRIVATE)
    NotificationChannel.objects.create(municipality=towns[0], kind="email", target="hq@town-a.example")
    NotificationChannel.objects.create(municipality=towns[1], kind="email", target="hq@town-b.example")
    start = timezone.now()
    play(new_alert(private), STORM[:8], start)
    deliveries_dispatch(worker_id="w", now=start + timedelta(minutes=15))
    assert {to for m in mail.outbox for to in m.to} == {"hq@town-a.example"}
    assert not Delivery.objects.filter(channel__municipality=towns[1]).exists()


def test_a_digest_webhook_body_names_each_update_and_is_signed_like_any_other(towns, gauge, settings):
    from alerts.selectors import digest_document, events_for_notification, notification_document

    alert = new_alert(gauge)
    at = timezone.now()
    events = [AlertEvent.objects.create(alert=alert, kind=k, level=lv, value=3.2, at=at + timedelta(seconds=i))
              for i, (k, lv) in enumerate([("deescalated", 2), ("escalated", 3), ("resolved", 3)])]
    document = digest_document([notification_document(e) for e in events_for_notification([e.pk for e in events])])
    body = json.loads(body_for(document))
    assert body["digest"]["count"] == 3 and [n["event"]["kind"] for n in body["notifications"]] == [
        "deescalated", "escalated", "resolved"]
    assert body["alert"]["station"]["code"] == "D-GAUGE"
    assert notification_id(document) == "digest-" + ",".join(str(e.pk) for e in events)
