"""Deliveries: a real local webhook receiver, the mail outbox, the channel layer, and concurrent dispatchers."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
from contextlib import contextmanager
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.conf import settings
from channels.layers import get_channel_layer
from django.core import mail
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from alerts.models import Alert, AlertEvent, Delivery, NotificationChannel
from alerts.services import DELIVERY_LEASE, deliveries_dispatch
from alerts.transports.webhook import SIGNATURE_HEADER
from alerts.vocabulary import RESERVED_WORDS
from sensors.models import SharingGrant, Visibility
from tests.conftest import make_station, make_town

from .conftest import ingest, ingest_confirmed, make_event, minute_now

SECRET = "s3cret-for-tests"


@pytest.fixture(autouse=True)
def receivers_on_loopback_allowed(settings):
    """The receivers here listen on 127.0.0.1, which only an explicit listing lets webhooks reach."""
    settings.OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1"]


class Receiver:
    """A webhook endpoint on 127.0.0.1: answers `script` statuses in order, then 200."""

    def __init__(self, script=(), delay=0.0):
        self.script = list(script)
        self.delay = delay
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                time.sleep(receiver.delay)
                with receiver.lock:
                    status = receiver.script.pop(0) if receiver.script else 200
                    receiver.requests.append({"status": status, "body": body, "headers": dict(self.headers)})
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"

    @property
    def accepted(self) -> list[dict]:
        return [json.loads(r["body"]) for r in self.requests if r["status"] == 200]


@contextmanager
def receiving(*args, **kwargs):
    receiver = Receiver(*args, **kwargs)
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()


def webhook(town, url, **extra):
    return NotificationChannel.objects.create(municipality=town, kind="webhook", target=url, secret=SECRET, **extra)


def later(minutes):
    return timezone.now() + timedelta(minutes=minutes)


@pytest.mark.django_db(transaction=True)
def test_webhook_retries_through_503s_and_delivers_exactly_once(towns):
    station = make_station(towns[0], "R1", visibility=Visibility.PRIVATE)
    with receiving(script=[503, 503, 503]) as receiver:
        channel = webhook(towns[0], receiver.url)
        ingest_confirmed(station.code, minute_now() - timedelta(minutes=5), 3.6)  # first attempt right away: 503
        delivery = Delivery.objects.get()
        assert (delivery.state, delivery.attempts, delivery.last_error) == ("pending", 1, f"HTTP 503 from {receiver.url}")
        assert deliveries_dispatch(worker_id="w").claimed == 0  # not due yet: backing off

        for minutes in (1, 2, 4, 8, 16):
            deliveries_dispatch(worker_id="w", now=later(minutes))
        delivery.refresh_from_db()
        assert (delivery.state, delivery.attempts) == ("sent", 4)
        assert [r["status"] for r in receiver.requests] == [503, 503, 503, 200]
        assert len(receiver.accepted) == 1

        sent = receiver.requests[-1]
        expected = "sha256=" + hmac.new(SECRET.encode(), sent["body"], hashlib.sha256).hexdigest()
        assert sent["headers"][SIGNATURE_HEADER] == expected
        event = AlertEvent.objects.get(kind="opened")
        delivered_event = receiver.accepted[0]["event"]
        assert (delivered_event["id"], delivered_event["kind"], delivered_event["level"]) == (event.pk, "opened", 3)
        assert receiver.accepted[0]["alert"]["station"]["code"] == "R1"
        assert sent["headers"]["X-Mizumori-Event"] == str(event.pk)

        channel.refresh_from_db()
        assert channel.failing_since is None and channel.last_error == ""
        assert deliveries_dispatch(worker_id="w", now=later(120)).claimed == 0
        assert len(receiver.requests) == 4


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("status, permanent", [(410, True), (401, True), (408, False), (429, False)])
def test_client_errors_other_than_408_and_429_mark_the_channel_failing(towns, status, permanent):
    station = make_station(towns[0], "R1")
    with receiving(script=[status]) as receiver:
        channel = webhook(towns[0], receiver.url)
        ingest_confirmed(station.code, minute_now() - timedelta(minutes=5), 3.6)
        delivery = Delivery.objects.get()
        channel.refresh_from_db()
        if permanent:
            assert delivery.state == "failed"
            assert channel.failing_since is not None and channel.last_error == f"HTTP {status} from {receiver.url}"
            assert deliveries_dispatch(worker_id="w", now=later(600)).claimed == 0
        else:
            assert delivery.state == "pending" and channel.failing_since is None
            deliveries_dispatch(worker_id="w", now=later(5))
            assert Delivery.objects.get().state == "sent"


@pytest.mark.django_db(transaction=True)
@override_settings(ALERT_WEBHOOK_MAX_ATTEMPTS=3)
def test_exhausted_attempts_mark_the_channel_failing_and_a_later_success_clears_it(towns):
    station = make_station(towns[0], "R1")
    with receiving(script=[500, 502, 503]) as receiver:
        channel = webhook(towns[0], receiver.url)
        at = minute_now() - timedelta(minutes=30)
        ingest_confirmed(station.code, at, 3.6)
        for minutes in (1, 5, 30):
            deliveries_dispatch(worker_id="w", now=later(minutes))
        assert [d.state for d in Delivery.objects.all()] == ["failed"]
        channel.refresh_from_db()
        failing_since = channel.failing_since
        assert failing_since is not None and "503" in channel.last_error

        ingest(station.code, [(at + timedelta(minutes=10), 4.2)])  # escalation: a new event, delivered
        channel.refresh_from_db()
        assert channel.failing_since is None and channel.last_error == ""
        assert [r["status"] for r in receiver.requests] == [500, 502, 503, 200]


@pytest.mark.django_db(transaction=True)
def test_unreachable_receiver_is_retried_not_failed(towns):
    station = make_station(towns[0], "R1")
    with receiving() as receiver:
        url = receiver.url
    channel = webhook(towns[0], url)  # the server is gone: connection refused
    event = make_event(station)
    Delivery.objects.create(event=event, channel=channel, next_attempt_at=timezone.now(), created_at=timezone.now())
    assert deliveries_dispatch(worker_id="w").retrying == 1
    delivery = Delivery.objects.get()
    assert delivery.state == "pending" and "Connection refused" in delivery.last_error


@pytest.mark.django_db(transaction=True)
def test_two_dispatchers_at_once_deliver_each_event_once(towns):
    station = make_station(towns[0], "R1")
    with receiving(delay=0.01) as receiver:
        channels = [webhook(towns[0], receiver.url), webhook(towns[0], receiver.url + "?second")]
        mail_channel = NotificationChannel.objects.create(municipality=towns[0], kind="email", target="hq@town-a.example")
        events = [make_event(station) for _ in range(15)]
        now = timezone.now()
        Delivery.objects.bulk_create(
            Delivery(event=e, channel=c, next_attempt_at=now, created_at=now)
            for e in events for c in [*channels, mail_channel]
        )
        reports = {"w1": [], "w2": []}
        barrier = threading.Barrier(2)

        def work(worker_id):
            try:
                barrier.wait()
                while True:
                    report = deliveries_dispatch(worker_id=worker_id, limit=4)
                    reports[worker_id].append(report)
                    if report.claimed == 0:
                        return
            finally:
                connection.close()

        threads = [threading.Thread(target=work, args=(w,)) for w in reports]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)

    assert len(receiver.requests) == 30
    seen = [(json.loads(r["body"])["event"]["id"]) for r in receiver.requests]
    assert sorted(seen) == sorted(e.pk for e in events for _ in channels)
    assert len(mail.outbox) == 15 and len({m.extra_headers["X-Mizumori-Event"] for m in mail.outbox}) == 15
    assert set(Delivery.objects.values_list("state", flat=True)) == {"sent"}
    assert sum(r.sent for rs in reports.values() for r in rs) == 45
    assert all(rs and rs[-1].claimed == 0 for rs in reports.values())
    assert all(sum(r.sent for r in rs) > 0 for rs in reports.values())  # both really worked


@pytest.mark.django_db(transaction=True)
def test_a_delivery_stuck_in_sending_is_reclaimed_but_a_sent_one_never_is(towns):
    station = make_station(towns[0], "R1")
    with receiving() as receiver:
        channel = webhook(towns[0], receiver.url)
        now = timezone.now()
        stuck = Delivery.objects.create(event=make_event(station), channel=channel, state="sending", attempts=1,
                                        claimed_by="dead-worker", claimed_at=now - DELIVERY_LEASE - timedelta(seconds=1),
                                        next_attempt_at=now, created_at=now)
        busy = Delivery.objects.create(event=make_event(station), channel=channel, state="sending", attempts=1,
                                       claimed_by="live-worker", claimed_at=now, next_attempt_at=now, created_at=now)
        done = Delivery.objects.create(event=make_event(station), channel=channel, state="sent", attempts=1,
                                       claimed_by="old-worker", claimed_at=now - timedelta(days=1), sent_at=now,
                                       next_attempt_at=now, created_at=now)
        report = deliveries_dispatch(worker_id="rescuer", now=now)
        assert (report.claimed, report.sent) == (1, 1)
        stuck.refresh_from_db()
        busy.refresh_from_db()
        done.refresh_from_db()
        assert (stuck.state, stuck.attempts, stuck.claimed_by) == ("sent", 2, "rescuer")
        assert (busy.state, busy.claimed_by) == ("sending", "live-worker")
        assert done.state == "sent"
        assert deliveries_dispatch(worker_id="rescuer", now=now + timedelta(days=2)).claimed == 1  # only `busy`
        assert [json.loads(r["body"])["event"]["id"] for r in receiver.requests] == [stuck.event_id, busy.event_id]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "visibility, expected",
    [
        (Visibility.PRIVATE, ["hq@town-a.example"]),
        (Visibility.REGION, ["hq@town-a.example", "hq@town-b.example"]),
        (Visibility.PUBLIC, ["hq@town-a.example", "hq@town-b.example"]),
    ],
)
def test_email_goes_to_every_town_that_may_see_the_station_and_no_other(towns, visibility, expected):
    for town in towns:
        NotificationChannel.objects.create(municipality=town, kind="email", target=f"hq@{town.slug}.example")
    NotificationChannel.objects.create(municipality=towns[1], kind="email", target="off@town-b.example", enabled=False)
    station = make_station(towns[0], "A-X", visibility=visibility)
    ingest(station.code, [(minute_now() - timedelta(minutes=5), 4.1)])
    assert sorted(to for message in mail.outbox for to in message.to) == expected
    message = mail.outbox[0]
    assert "警戒レベル4相当" in message.subject and "Level 4 equivalent" in message.subject
    assert "危険な水位に到達" in message.body and "Danger level reached" in message.body
    # A gauge's alert never carries a town's order words nor the weather agency's 警報.
    assert [word for word in RESERVED_WORDS if word in message.subject + message.body] == []
    assert f"/api/v1/alerts/{Alert.objects.get().pk}/cap" in message.body
    # People follow the links: the station page and the board on the site's own address, not JSON.
    assert f"{settings.SITE_URL.rstrip('/')}/stations/A-X/" in message.body
    # ... at the alert's row: the board's row of that station and concern has this id.
    assert f"{settings.SITE_URL.rstrip('/')}/hq/alerts/#row-A-X-level" in message.body.split()


@pytest.mark.django_db(transaction=True)
def test_town_b_webhook_never_hears_of_town_a_private_alert(towns):
    private = make_station(towns[0], "A-PRIV", visibility=Visibility.PRIVATE)
    region = make_station(towns[0], "A-REG", visibility=Visibility.REGION)
    with receiving() as receiver_a, receiving() as receiver_b:
        webhook(towns[0], receiver_a.url)
        webhook(towns[1], receiver_b.url)
        at = minute_now() - timedelta(minutes=5)
        ingest(private.code, [(at, 4.1)])
        ingest_confirmed(region.code, at, 3.1)
    assert sorted(m["alert"]["station"]["code"] for m in receiver_a.accepted) == ["A-PRIV", "A-REG"]
    assert [m["alert"]["station"]["code"] for m in receiver_b.accepted] == ["A-REG"]


class GroupListener:
    """Joins Channels groups and collects what they receive, on its own event loop in a thread (the
    Redis pub/sub layer is bound to the loop that subscribed; the in-memory one to one process)."""

    def __init__(self, groups):
        self.groups = groups
        self.received: list[tuple[str, dict]] = []
        self.ready = threading.Event()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._listen()), daemon=True)

    async def _listen(self):
        layer = get_channel_layer()
        channels = {}
        for group in self.groups:
            channels[group] = await layer.new_channel()
            await layer.group_add(group, channels[group])

        async def collect(group, channel):
            # One receive per channel that is never timed out: the pub/sub layer unsubscribes a
            # channel whose receive is cancelled.
            while True:
                event = await layer.receive(channel)
                # Live messages travel as {"type": "live.message", "message": {...}} (dashboard.live).
                self.received.append((group, event["message"]))

        tasks = [asyncio.create_task(collect(group, channel)) for group, channel in channels.items()]
        self.ready.set()
        while not self.stopping.is_set():
            await asyncio.sleep(0.05)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def __enter__(self):
        self.thread.start()
        assert self.ready.wait(10)
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.thread.join(10)

    def wait_for(self, count, timeout=5.0):
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)  # and a little longer, for anything that should not have come
        return [(group, message["alert"]["station"]["code"]) for group, message in self.received]


@pytest.mark.django_db(transaction=True)
def test_live_groups_follow_visibility(towns):
    at = minute_now() - timedelta(minutes=5)
    private = make_station(towns[0], "A-PRIV", visibility=Visibility.PRIVATE)
    public = make_station(towns[0], "A-PUB", visibility=Visibility.PUBLIC)
    with GroupListener(["alerts.public", "alerts.town-a", "alerts.town-b"]) as listener:
        ingest(private.code, [(at, 4.1)])
        assert listener.wait_for(1) == [("alerts.town-a", "A-PRIV")]
        message = listener.received[0][1]
        assert message["type"] == "alert" and message["layer"] == "alerts" and message["seq"] > 0
        assert (message["alert"]["event"]["kind"], message["alert"]["level"]) == ("opened", 4)
        assert message["alert"]["level_name_en"] == "Level 4 equivalent"

        listener.received.clear()
        ingest_confirmed(public.code, at, 3.6)
        assert sorted(listener.wait_for(3)) == [
            ("alerts.public", "A-PUB"), ("alerts.town-a", "A-PUB"), ("alerts.town-b", "A-PUB"),
        ]


@pytest.mark.django_db(transaction=True)
def test_shared_station_alerts_reach_the_grantee_only_while_the_grant_lasts(towns):
    town_c = make_town("990051", "town-c", "town c")
    for town in (*towns, town_c):
        NotificationChannel.objects.create(municipality=town, kind="email", target=f"hq@{town.slug}.example")
    shared = make_station(towns[0], "A-SHR", visibility=Visibility.SHARED)
    grant = SharingGrant.objects.create(station=shared, grantor=towns[0], grantee=towns[1])
    at = minute_now() - timedelta(minutes=30)
    with GroupListener(["alerts.town-a", "alerts.town-b", "alerts.town-c", "alerts.public"]) as listener:
        ingest_confirmed(shared.code, at, 3.6)
        assert sorted(listener.wait_for(2)) == [("alerts.town-a", "A-SHR"), ("alerts.town-b", "A-SHR")]
    assert sorted(to for message in mail.outbox for to in message.to) == ["hq@town-a.example", "hq@town-b.example"]

    grant.withdrawn_at = timezone.now()
    grant.save()
    mail.outbox.clear()
    ingest(shared.code, [(at + timedelta(minutes=10), 4.1)])
    assert [to for message in mail.outbox for to in message.to] == ["hq@town-a.example"]


@pytest.mark.django_db(transaction=True)
def test_a_downstream_town_subscribes_a_channel_to_an_upstream_gauge_shared_with_it(towns):
    upstream, downstream = towns
    gauge = make_station(upstream, "UP-1", visibility=Visibility.SHARED)
    make_station(upstream, "UP-2", visibility=Visibility.REGION)  # another of its gauges: never in the subscription
    make_station(downstream, "DOWN-1", visibility=Visibility.PRIVATE)
    grant = SharingGrant.objects.create(station=gauge, grantor=upstream, grantee=downstream)
    subscribed = NotificationChannel.objects.create(
        municipality=downstream, kind="email", target="duty@down.example", scope="subscribed"
    )
    subscribed.stations.add(gauge)
    NotificationChannel.objects.create(municipality=downstream, kind="email", target="own@down.example", scope="own")
    at = minute_now() - timedelta(minutes=30)

    def recipients_after(code, value, minutes):
        mail.outbox.clear()
        ingest_confirmed(code, at + timedelta(minutes=minutes), value)
        return sorted(to for message in mail.outbox for to in message.to)

    assert recipients_after("UP-1", 3.6, 0) == ["duty@down.example"]  # subscribed to it
    assert recipients_after("UP-2", 3.6, 0) == []  # visible, but neither own nor subscribed
    assert recipients_after("DOWN-1", 3.6, 0) == ["duty@down.example", "own@down.example"]  # own stations
    grant.withdrawn_at = timezone.now()
    grant.save()
    assert recipients_after("UP-1", 4.1, 10) == []  # the share is gone: so is the subscription's effect
