"""Issue 12 item 6: evacuation orders over NGSI-v2 as Smart Data Models `Alert` entities
(ngsi/order_entities.py), read through the same viewer rules as /api/v1/orders, and NGSI
subscribers notified of each step (issue: entityCreate; raise, lift: entityUpdate)."""

from __future__ import annotations

import json

import pytest

from orders.services import order_change, order_issue, order_lift
from tenancy.selectors import viewer_for_user
from tests.ngsi.conftest import NGSI, bearer
from tests.orders.conftest import districts, members, shelters  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("eager_celery"), pytest.mark.timeout(180)]


def issue(user, capture=None, **extra):
    arguments = dict(
        viewer=viewer_for_user(user), actor=user, level=3, districts=["A-1", "A-2"], reason="上流の水位上昇",
        shelters=["SH-A"], evidence={"fired_by": "reading", "station": "A-PRIVATE", "value": 3.1},
    ) | extra
    if capture is None:
        return order_issue(**arguments)
    with capture(execute=True):
        return order_issue(**arguments)


def test_an_order_is_an_alert_entity_read_as_the_viewer_may(client, basin, members, districts, shelters):  # noqa: F811
    order = issue(members["a-operator"])
    entity_id = f"urn:ngsi-ld:Alert:order-{order.pk}"

    listed = client.get(f"{NGSI}/entities", {"type": "Alert", "options": "keyValues"}).json()
    assert [e["id"] for e in listed] == [entity_id]
    entity = listed[0]
    assert (entity["type"], entity["category"], entity["subCategory"], entity["severity"]) == (
        "Alert", "naturalDisaster", "flood", "medium")
    assert entity["name"] == "警戒レベル3 高齢者等避難" and entity["evacuationLevel"] == 3
    assert entity["alternateName"] == "Level 3: Older people and those needing help evacuate"
    assert "危険な場所から高齢者等は避難" in entity["description"]
    assert entity["alertSource"] == "town-a" and entity["inForce"] is True and entity["validTo"] is None
    assert [d["code"] for d in entity["districts"]] == ["A-1", "A-2"]
    assert entity["location"]["type"] == "MultiPolygon" and len(entity["location"]["coordinates"]) == 2
    assert [s["code"] for s in entity["shelters"]] == ["SH-A"]
    assert entity["capUrl"].endswith(f"/api/v1/orders/{order.pk}/cap")
    # The private gauge that triggered it is named to its own town only, as on /api/v1/orders.
    assert entity["triggeredBy"] == []
    client.force_login(members["a-viewer"])
    mine = client.get(f"{NGSI}/entities/{entity_id}", {"options": "keyValues"}).json()
    assert mine["triggeredBy"] == ["urn:ngsi-ld:WaterObserved:A-PRIVATE"]
    client.force_login(members["b-operator"])
    theirs = client.get(f"{NGSI}/entities/{entity_id}", {"options": "keyValues"}).json()
    assert theirs["triggeredBy"] == [] and theirs["evacuationLevel"] == 3
    client.logout()

    # NGSI filters work on it like on any entity; it is not mixed into the station lists.
    assert [e["id"] for e in client.get(f"{NGSI}/entities", {"type": "Alert", "q": "evacuationLevel>=3"}).json()] == [entity_id]
    assert client.get(f"{NGSI}/entities", {"type": "Alert", "q": "evacuationLevel==5"}).json() == []
    assert all(e["type"] != "Alert" for e in client.get(f"{NGSI}/entities", {"limit": 1000}).json())
    normalized = client.get(f"{NGSI}/entities/{entity_id}/attrs/severity").json()
    assert normalized == {"type": "Text", "value": "medium", "metadata": {}}

    order_lift(viewer=viewer_for_user(members["a-operator"]), actor=members["a-operator"], order=order)
    assert client.get(f"{NGSI}/entities", {"type": "Alert"}).json() == []
    lifted = client.get(f"{NGSI}/entities/{entity_id}", {"options": "keyValues"}).json()
    assert lifted["inForce"] is False and lifted["severity"] == "informational" and lifted["validTo"]


@pytest.mark.parametrize("path", [
    "urn:ngsi-ld:Alert:order-999999", "urn:ngsi-ld:Alert:order-x", "urn:ngsi-ld:Alert:order-", "urn:ngsi-ld:Alert:order-１",
    "urn:ngsi-ld:Alert:order-" + "9" * 40,
])
def test_unknown_or_malformed_order_ids_are_orions_404(client, path):
    response = client.get(f"{NGSI}/entities/{path}")
    assert response.status_code == 404
    assert response.json() == {"error": "NotFound", "description": "The requested entity has not been found. Check type and id"}


def test_orders_are_read_only_over_ngsi_and_a_wrong_type_is_404(client, basin, members, districts, shelters, token_a):  # noqa: F811,E501
    order = issue(members["a-operator"])
    entity_id = f"urn:ngsi-ld:Alert:order-{order.pk}"
    assert client.get(f"{NGSI}/entities/{entity_id}", {"type": "WaterObserved"}).status_code == 404
    patched = client.patch(f"{NGSI}/entities/{entity_id}/attrs", data=json.dumps({"evacuationLevel": {"value": 5}}),
                           content_type="application/json", **bearer(token_a))
    assert 400 <= patched.status_code < 500
    order.refresh_from_db()
    assert order.level == 3 and order.lifted_at is None


def _subscribe(client, token, url, entities, **condition):
    body = {"subject": {"entities": entities, "condition": condition}, "notification": {"http": {"url": url}}}
    response = client.post(f"{NGSI}/subscriptions", data=json.dumps(body), content_type="application/json", **bearer(token))
    assert response.status_code == 201, response.content


def test_subscribers_hear_each_step_of_an_order(  # noqa: F811
    client, basin, members, districts, shelters, token_a, token_b, receiver, django_capture_on_commit_callbacks  # noqa: F811
):
    # The neighbour's gateway subscribes to every Alert; another only to creations; a third to gauges only.
    _subscribe(client, token_b, receiver.url, [{"idPattern": ".*", "type": "Alert"}])
    _subscribe(client, token_a, receiver.url + "?created", [{"idPattern": ".*"}], alterationTypes=["entityCreate"])
    _subscribe(client, token_a, receiver.url + "?gauges", [{"idPattern": ".*", "type": "WaterObserved"}])
    capture = django_capture_on_commit_callbacks
    operator = members["a-operator"]
    order = issue(operator, capture)
    requests = receiver.wait_for(2)
    assert sorted(r["path"] for r in requests) == ["/notify", "/notify?created"]
    entity = next(r for r in requests if r["path"] == "/notify")["json"]["data"][0]
    assert entity["id"] == f"urn:ngsi-ld:Alert:order-{order.pk}"
    assert entity["evacuationLevel"]["value"] == 3 and entity["triggeredBy"]["value"] == []  # B may not see A-PRIVATE
    assert next(r for r in requests if r["path"] == "/notify")["headers"]["fiware-service"] == "town_b"

    with capture(execute=True):
        order_change(viewer=viewer_for_user(operator), actor=operator, order=order, level=4)
    with capture(execute=True):
        order_lift(viewer=viewer_for_user(operator), actor=operator, order=order)
    requests = receiver.wait_for(4)
    later = [r["json"]["data"][0] for r in requests[2:]]
    assert [r["path"] for r in requests[2:]] == ["/notify", "/notify"]  # updates: not the creations-only one
    assert [(e["evacuationLevel"]["value"], e["inForce"]["value"]) for e in later] == [(4, True), (4, False)]
    assert later[0]["name"]["value"] == "警戒レベル4 避難指示"
    assert len(receiver.requests) == 4
