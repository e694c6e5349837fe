"""Issue 12 item 6: every step of a town's order (issue, raise, lift ...) reaches the town's own alert
channels (e-mail, webhook) once, through the change log and alerts' delivery outbox, with the
official words of the level scheme, the districts by name, and links on SITE_URL (CAP of that step,
the public page, the HQ board). Other towns' channels hear nothing of it."""

from __future__ import annotations

import json

import pytest
from django.core import mail

from alerts.models import Delivery, NotificationChannel
from alerts.services import deliveries_dispatch
from alerts.transports.webhook import SIGNATURE_HEADER, signature_for
from orders.handlers import order_steps_notify
from orders.models import OrderEvent
from orders.services import ORDER_CHANGED

from ..releases.test_notifications import Receiver
from .test_api import issue, post

pytestmark = pytest.mark.django_db


@pytest.fixture
def receiver(settings):
    settings.OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1"]
    served = Receiver()
    yield served
    served.close()


@pytest.fixture
def channels(towns, receiver):
    """Town A: an e-mail channel of the narrowest scope (an order is the town's, not a station's),
    a webhook and a disabled channel. Town B (the neighbour): a channel that must hear nothing."""
    a, b = towns
    return {
        "a-mail": NotificationChannel.objects.create(municipality=a, kind="email", target="hq@town-a.example",
                                                     scope=NotificationChannel.Scope.OWN),
        "a-hook": NotificationChannel.objects.create(municipality=a, kind="webhook", target=receiver.url, secret="k3y"),
        "a-off": NotificationChannel.objects.create(municipality=a, kind="email", target="off@town-a.example",
                                                    enabled=False),
        "b-mail": NotificationChannel.objects.create(municipality=b, kind="email", target="hq@town-b.example"),
    }


def test_issue_raise_and_lift_each_reach_the_towns_channels_once(
    client, settings, members, districts, shelters, channels, receiver, django_capture_on_commit_callbacks
):
    settings.SITE_URL = "https://bousai.town-a.example"
    client.force_login(members["a-operator"])
    with django_capture_on_commit_callbacks(execute=True):
        order_id = issue(client, shelters=["SH-A"], open_shelters=True, reason="<b>上流</b>の水位上昇").json()["id"]
    with django_capture_on_commit_callbacks(execute=True):
        assert post(client, f"/api/v1/orders/{order_id}/change", {"level": 4}).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        assert post(client, f"/api/v1/orders/{order_id}/lift", {"reason": "水位低下"}).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):  # lifting again is no step
        post(client, f"/api/v1/orders/{order_id}/lift", {})

    steps = list(OrderEvent.objects.filter(order_id=order_id).order_by("pk"))
    assert [s.kind for s in steps] == ["issued", "raised", "lifted"]
    assert [m.to for m in mail.outbox] == [["hq@town-a.example"]] * 3
    assert [m.subject for m in mail.outbox] == [
        "[Mizumori] 警戒レベル3 高齢者等避難 発令 / Level 3: Older people and those needing help evacuate issued: "
        "town a 上町、下町 / Town A Kamimachi, Shimomachi",
        "[Mizumori] 警戒レベル4 避難指示 引き上げ / Level 4: Evacuate all raised: town a 上町、下町 / Town A Kamimachi, Shimomachi",
        "[Mizumori] 警戒レベル4 避難指示 解除 / Level 4: Evacuate all lifted: town a 上町、下町 / Town A Kamimachi, Shimomachi",
    ]
    first = mail.outbox[0].body
    assert "危険な場所から高齢者等は避難" in first and "A小学校 (A School, open)" in first
    assert "<b>上流</b>の水位上昇" in first  # plain text mail: the operator's words as written
    assert f"CAP: https://bousai.town-a.example/api/v1/orders/{order_id}/cap?event={steps[0].pk}" in first
    assert "公開ページ / Public page: https://bousai.town-a.example/" in first
    assert "本部 / HQ board: https://bousai.town-a.example/hq/" in first
    assert "避難所" not in mail.outbox[2].body and "水位低下" in mail.outbox[2].body
    assert mail.outbox[0].extra_headers["X-Mizumori-Event"] == f"order-{steps[0].pk}"

    assert len(receiver.requests) == 3
    headers, body = receiver.requests[1]
    assert headers[SIGNATURE_HEADER] == signature_for("k3y", body)
    assert headers["X-Mizumori-Event"] == f"order-{steps[1].pk}"
    document = json.loads(body)
    assert document["order_event"]["kind"] == "raised" and document["order_event"]["level"] == 4
    assert document["order_event"]["name_ja"] == "避難指示"
    assert document["order"]["id"] == order_id and document["order"]["municipality"] == "town-a"
    assert [d["code"] for d in document["order_event"]["district_names"]] == ["A-1", "A-2"]
    # The CAP link of each step fetches that step's version, which names the order by its words.
    cap = client.get(document["order_event"]["cap_url"].replace("https://bousai.town-a.example", ""))
    assert cap.status_code == 200 and "避難指示".encode() in cap.content

    assert not Delivery.objects.filter(channel__in=[channels["a-off"], channels["b-mail"]]).exists()
    assert Delivery.objects.filter(order_event__isnull=False).count() == 6
    assert set(Delivery.objects.values_list("state", flat=True)) == {"sent"}


def test_a_repeated_change_log_batch_queues_nothing_twice(
    client, members, districts, channels, django_capture_on_commit_callbacks
):
    client.force_login(members["a-operator"])
    with django_capture_on_commit_callbacks(execute=True):
        issue(client)
    assert Delivery.objects.count() == 2
    step = OrderEvent.objects.get()
    order_steps_notify([(ORDER_CHANGED, {"orders": [step.order_id], "event": step.pk})])
    assert Delivery.objects.count() == 2
    deliveries_dispatch()
    assert len(mail.outbox) == 1


def test_a_refused_issue_queues_nothing(client, members, districts, channels, django_capture_on_commit_callbacks):
    client.force_login(members["b-operator"])
    with django_capture_on_commit_callbacks(execute=True):
        assert issue(client).status_code == 403
    client.force_login(members["a-viewer"])
    with django_capture_on_commit_callbacks(execute=True):
        assert issue(client).status_code == 403
    assert not Delivery.objects.exists() and mail.outbox == []
