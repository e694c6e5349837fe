"""Issue 16 item 2: a dam release notice alerts the downstream towns' channels (e-mail, webhooks), once
per transition (posted, discharge updated, ended), through the change log and the delivery outbox."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core import mail

from alerts.models import Delivery, NotificationChannel
from alerts.services import deliveries_dispatch
from alerts.transports.webhook import SIGNATURE_HEADER, signature_for
from alerts.vocabulary import RESERVED_WORDS
from events.models import OutboxEvent
from releases.handlers import release_transitions_notify
from releases.models import DamRelease, ReleaseTransition
from releases.services import RELEASE_CHANGED
from tests.conftest import make_town

from .test_releases import API, notice, post


class Receiver:
    def __init__(self):
        self.requests: list[tuple[dict, bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(settings):
    settings.OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1"]
    served = Receiver()
    yield served
    served.close()


@pytest.fixture
def channels(towns, receiver):
    """Town B (downstream): an e-mail channel of the narrowest scope, a webhook, a disabled channel.
    Town C (not downstream): a channel that must hear nothing."""
    town_c = make_town("990051", "town-c", "town c")
    return {
        "b-mail": NotificationChannel.objects.create(municipality=towns[1], kind="email", target="hq@town-b.example",
                                                     scope=NotificationChannel.Scope.SUBSCRIBED),
        "b-hook": NotificationChannel.objects.create(municipality=towns[1], kind="webhook", target=receiver.url,
                                                     secret="s3cret"),
        "b-off": NotificationChannel.objects.create(municipality=towns[1], kind="email", target="off@town-b.example",
                                                    enabled=False),
        "c-mail": NotificationChannel.objects.create(municipality=town_c, kind="email", target="hq@town-c.example"),
    }


def test_posted_updated_and_ended_each_reach_the_downstream_hqs_once(
    client, dam, towns, token_a, channels, receiver, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        release_id = post(client, notice(message="<script>alert(1)</script> ゲート放流"), token_a).json()["id"]
    with django_capture_on_commit_callbacks(execute=True):
        assert client.patch(f"{API}/{release_id}", data=json.dumps({"current_discharge": 250}),
                            content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token_a}").status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(f"{API}/{release_id}/end", HTTP_AUTHORIZATION=f"Bearer {token_a}").status_code == 200
    with django_capture_on_commit_callbacks(execute=True):  # ending again is no transition
        client.post(f"{API}/{release_id}/end", HTTP_AUTHORIZATION=f"Bearer {token_a}")

    kinds = list(ReleaseTransition.objects.filter(release_id=release_id).values_list("kind", flat=True))
    assert kinds == ["posted", "updated", "ended"]
    assert sorted(m.to[0] for m in mail.outbox) == ["hq@town-b.example"] * 3
    subjects = [m.subject for m in mail.outbox]
    assert subjects == [
        "[Mizumori] 放流通知 発表 / Dam release notice posted: A-DAM 観測所 (A-DAM)",
        "[Mizumori] 放流通知 放流量更新 / Dam release notice discharge updated: A-DAM 観測所 (A-DAM)",
        "[Mizumori] 放流通知 終了 / Dam release notice ended: A-DAM 観測所 (A-DAM)",
    ]
    first = mail.outbox[0].body
    assert "水森川 水森ダム下流〜河口" in first and "川べり地区, 下町" in first and "300 m³/s" in first
    assert "川に近づかないでください。" in first and f"/api/v1/releases/{release_id}/cap" in first
    assert "現在の放流量 / Current discharge: 250 m³/s" in mail.outbox[1].body
    assert "終了 / Ended:" in mail.outbox[2].body
    for message in mail.outbox:
        assert [word for word in RESERVED_WORDS if word in message.subject + message.body] == []

    assert len(receiver.requests) == 3
    headers, body = receiver.requests[0]
    assert headers[SIGNATURE_HEADER] == signature_for("s3cret", body)
    document = json.loads(body)
    transitions = list(ReleaseTransition.objects.filter(release_id=release_id).order_by("pk"))
    assert headers["X-Mizumori-Event"] == f"release-{transitions[0].pk}"
    assert document["release_event"]["kind"] == "posted" and document["release"]["id"] == release_id
    assert document["release"]["message"] == "<script>alert(1)</script> ゲート放流"  # JSON text, never markup
    assert [json.loads(b)["release_event"]["current_discharge"] for _, b in receiver.requests] == [120.5, 250, 250]

    assert not Delivery.objects.filter(channel__in=[channels["b-off"], channels["c-mail"]]).exists()
    assert set(Delivery.objects.values_list("state", flat=True)) == {"sent"}


def test_a_repeated_change_log_batch_queues_nothing_twice(client, dam, token_a, channels, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        post(client, notice(), token_a)
    transition = ReleaseTransition.objects.get()
    assert Delivery.objects.filter(release_transition=transition).count() == 2
    # A handler retried with the same batch (events.registry: handlers must be idempotent).
    with django_capture_on_commit_callbacks(execute=True):
        release_transitions_notify([(RELEASE_CHANGED, {"releases": [transition.release_id], "transitions": [transition.pk]})])
    assert Delivery.objects.filter(release_transition=transition).count() == 2
    assert len(mail.outbox) == 1


def test_the_request_only_writes_the_change_log(client, dam, token_a, channels, django_capture_on_commit_callbacks):
    """Nothing is queued or sent inside the request: the change-log drain does it after the commit."""
    with django_capture_on_commit_callbacks(execute=False) as pending:
        post(client, notice(), token_a)
    assert Delivery.objects.count() == 0 and mail.outbox == []
    assert OutboxEvent.objects.filter(kind=RELEASE_CHANGED).exists()
    for callback in pending:
        callback()
    assert Delivery.objects.count() == 2


def test_refused_and_invalid_notices_notify_nobody(client, dam, token_a, token_b, channels, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        assert post(client, notice(planned_discharge="lots"), token_a).status_code == 400
        assert post(client, notice(), token_b).status_code == 400  # not town B's dam
    assert DamRelease.objects.count() == ReleaseTransition.objects.count() == Delivery.objects.count() == 0
    assert mail.outbox == [] and deliveries_dispatch().claimed == 0


def test_a_notice_reaching_its_end_time_tells_the_hqs_once(client, dam, token_a, channels, django_capture_on_commit_callbacks):
    from datetime import timedelta
    from io import StringIO

    from django.core.management import call_command
    from django.utils import timezone

    now = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        ending = post(client, notice(ends_at=(now + timedelta(minutes=30)).isoformat()), token_a).json()["id"]
        post(client, notice(ends_at=(now + timedelta(hours=3)).isoformat()), token_a)
    mail.outbox.clear()
    from releases.services import releases_expired_end

    assert releases_expired_end(now=now + timedelta(minutes=10)) == []
    with django_capture_on_commit_callbacks(execute=True):
        assert releases_expired_end(now=now + timedelta(hours=1)) == [ending]
    assert releases_expired_end(now=now + timedelta(hours=2)) == []  # already told: never again
    out = StringIO()
    call_command("end_expired_releases", stdout=out)  # now: nothing has reached its end time yet
    assert out.getvalue() == ""
    assert [m.subject.split(":")[0] for m in mail.outbox] == ["[Mizumori] 放流通知 終了 / Dam release notice ended"]
    ended = ReleaseTransition.objects.get(release_id=ending, kind="ended")
    assert ended.at == DamRelease.objects.get(pk=ending).ends_at
