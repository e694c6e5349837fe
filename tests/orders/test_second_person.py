"""Issue 12 item 3: the optional second person. With the town's rule on (OrderPolicy, set by its
admins on /hq/admin/triggers/), an order one operator issues is only drafted; another operator of
the same town confirms it and it is issued, by them. The drafter cannot confirm their own; nothing
is public, sent or in force before; both steps are in the audit log."""

from __future__ import annotations

import pytest
from django.core import mail

from alerts.models import Delivery, NotificationChannel
from orders.models import Order, OrderDraft, OrderEvent, OrderPolicy, Recommendation
from orders.services import recommendation_manual
from tenancy.models import AuditEvent
from tenancy.selectors import viewer_for_user

from .test_api import issue, post

pytestmark = pytest.mark.django_db


@pytest.fixture
def second_person(towns):
    return OrderPolicy.objects.create(municipality=towns[0], second_person=True)


def _draft_audits():
    return list(
        AuditEvent.objects.filter(action=AuditEvent.Action.ORDER_CHANGED, target__startswith="order draft")
        .order_by("at", "pk").values_list("detail__kind", "actor__username")
    )


def test_an_order_waits_for_a_second_operator_who_issues_it(
    client, members, districts, shelters, second_person, towns, django_capture_on_commit_callbacks
):
    NotificationChannel.objects.create(municipality=towns[0], kind="email", target="hq@town-a.example")
    client.force_login(members["a-operator"])
    with django_capture_on_commit_callbacks(execute=True):
        response = issue(client, shelters=["SH-A"], open_shelters=True)
    assert response.status_code == 202, response.content
    draft = response.json()["draft"]
    assert (draft["state"], draft["level"], draft["drafted_by"]) == ("pending", 3, "a-operator")
    assert [d["code"] for d in draft["districts"]] == ["A-1", "A-2"] and draft["shelters"] == ["SH-A"]
    # Nothing in force, public, sent or opened yet.
    assert Order.objects.count() == 0 and not Delivery.objects.exists() and mail.outbox == []
    assert shelters["SH-A"].status == "closed"
    client.logout()
    assert client.get("/api/v1/orders").json()["features"] == []
    assert client.get("/api/v1/order-drafts").status_code in (401, 403)

    # The drafter cannot confirm their own draft, whatever they send.
    client.force_login(members["a-operator"])
    own = post(client, f"/api/v1/order-drafts/{draft['id']}/confirm", {"confirm": True})
    assert own.status_code == 403 and "second operator" in own.json()["detail"]
    # A viewer of the town sees it waiting but cannot confirm; another town does not see it at all.
    client.force_login(members["a-viewer"])
    assert [d["id"] for d in client.get("/api/v1/order-drafts").json()["results"]] == [draft["id"]]
    assert post(client, f"/api/v1/order-drafts/{draft['id']}/confirm", {"confirm": True}).status_code == 403
    client.force_login(members["b-operator"])
    assert client.get("/api/v1/order-drafts").json()["results"] == []
    assert post(client, f"/api/v1/order-drafts/{draft['id']}/confirm", {"confirm": True}).status_code == 404
    assert post(client, f"/api/v1/order-drafts/{draft['id']}/withdraw", {}).status_code == 404
    assert OrderDraft.objects.get().state == "pending"

    # Another operator of the town (here its admin) confirms, and must say so.
    client.force_login(members["a-admin"])
    unconfirmed = post(client, f"/api/v1/order-drafts/{draft['id']}/confirm", {"confirm": False})
    assert unconfirmed.status_code == 400 and "confirm" in unconfirmed.json()
    with django_capture_on_commit_callbacks(execute=True):
        confirmed = post(client, f"/api/v1/order-drafts/{draft['id']}/confirm", {"confirm": True})
    assert confirmed.status_code == 201, confirmed.content
    order = confirmed.json()
    assert order["in_force"] is True and order["name_ja"] == "高齢者等避難" and order["shelters"][0]["status"] == "open"
    step = OrderEvent.objects.get(order_id=order["id"])
    assert (step.kind, step.actor.username) == ("issued", "a-admin")
    assert step.evidence["drafted_by"] == "a-operator" and step.evidence["confirmed_by"] == "a-admin"
    assert Order.objects.get().issued_by.username == "a-admin"
    assert OrderDraft.objects.get().state == "confirmed" and OrderDraft.objects.get().order_id == order["id"]
    assert _draft_audits() == [("drafted", "a-operator"), ("confirmed", "a-admin")]
    assert AuditEvent.objects.filter(action="order_changed", target=f"order {order['id']}", actor__username="a-admin").exists()
    assert len(mail.outbox) == 1  # the town's channel hears of the issue, once, after the confirmation
    # Confirming twice issues nothing more.
    assert post(client, f"/api/v1/order-drafts/{draft['id']}/confirm", {"confirm": True}).status_code == 409
    assert Order.objects.count() == 1


def test_a_draft_can_be_withdrawn_and_then_not_confirmed(client, members, districts, second_person):
    client.force_login(members["a-operator"])
    draft_id = issue(client).json()["draft"]["id"]
    withdrawn = post(client, f"/api/v1/order-drafts/{draft_id}/withdraw", {"reason": "誤入力"})
    assert withdrawn.status_code == 200 and withdrawn.json()["state"] == "withdrawn"
    assert withdrawn.json()["handled_by"] == "a-operator" and withdrawn.json()["withdraw_reason"] == "誤入力"
    client.force_login(members["a-admin"])
    assert post(client, f"/api/v1/order-drafts/{draft_id}/confirm", {"confirm": True}).status_code == 409
    assert Order.objects.count() == 0
    assert _draft_audits() == [("drafted", "a-operator"), ("withdrawn", "a-operator")]
    assert client.get("/api/v1/order-drafts", {"state": "bogus"}).status_code == 400
    assert [d["id"] for d in client.get("/api/v1/order-drafts", {"state": "all"}).json()["results"]] == [draft_id]


def test_a_recommendation_issued_under_the_rule_waits_then_is_issued_by_the_second_operator(
    client, members, districts, second_person
):
    operator = members["a-operator"]
    recommendation = recommendation_manual(viewer=viewer_for_user(operator), actor=operator, level=4, districts=["A-1"])
    client.force_login(operator)
    drafted = post(client, f"/api/v1/recommendations/{recommendation.pk}/issue", {"confirm": True})
    assert drafted.status_code == 202 and drafted.json()["draft"]["recommendation"] == recommendation.pk
    # Still open on the board, showing who waits; not issuable twice.
    listed = client.get("/api/v1/recommendations").json()["results"]
    assert listed[0]["state"] == "open" and listed[0]["draft"]["drafted_by"] == "a-operator"
    assert post(client, f"/api/v1/recommendations/{recommendation.pk}/issue", {"confirm": True}).status_code == 409
    client.force_login(members["a-admin"])
    draft_id = drafted.json()["draft"]["id"]
    order = post(client, f"/api/v1/order-drafts/{draft_id}/confirm", {"confirm": True}).json()
    recommendation.refresh_from_db()
    assert recommendation.state == Recommendation.State.ISSUED and recommendation.order_id == order["id"]
    assert order["name_ja"] == "避難指示"


def test_the_rule_is_set_by_the_towns_admins_only_and_audited(client, members, towns):
    for who in ("a-operator", "a-viewer"):
        client.force_login(members[who])
        assert client.post("/hq/admin/triggers/", {"action": "policy", "second_person": "on"}).status_code == 403
    client.force_login(members["b-admin"])  # a neighbour's admin sets its own town's rule, never A's
    client.post("/hq/admin/triggers/", {"action": "policy", "second_person": "on"})
    assert OrderPolicy.objects.get(municipality=towns[1]).second_person is True
    assert not OrderPolicy.objects.filter(municipality=towns[0]).exists()
    client.force_login(members["a-admin"])
    response = client.post("/hq/admin/triggers/", {"action": "policy", "second_person": "on"})
    assert response.status_code == 302
    assert OrderPolicy.objects.get(municipality=towns[0]).second_person is True
    page = client.get("/hq/admin/triggers/").content.decode()
    assert 'name="second_person" value="on" checked' in page
    client.post("/hq/admin/triggers/", {"action": "policy"})
    assert OrderPolicy.objects.get(municipality=towns[0]).second_person is False
    audited = AuditEvent.objects.filter(
        action="trigger_rule_changed", target="order policy", municipality=towns[0]
    ).order_by("pk")
    assert [(a.detail["second_person"], a.actor.username) for a in audited] == [(True, "a-admin"), (False, "a-admin")]


def test_with_the_rule_off_an_operator_issues_at_once(client, members, districts):
    client.force_login(members["a-operator"])
    assert issue(client).status_code == 201
    assert not OrderDraft.objects.exists()
