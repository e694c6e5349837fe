"""NGSI writes with input that used to give 500s: unrepresentable times, NUL in entity ids, integers
longer than Python converts, digits of other scripts (issue 10 items 1, 6, 8)."""

import json
from urllib.parse import quote

import pytest

from ngsi.models import NotifyMapping
from sensors.models import Observation
from tests.ngsi.conftest import NGSI, bearer, entity_id

pytestmark = pytest.mark.django_db

UNREPRESENTABLE = ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"]


def stored():
    return sorted(Observation.objects.values_list("station__code", "observed_at", "value"))


def send(client, method, path, body, token):
    raw = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return getattr(client, method)(path, data=raw, content_type="application/json", **bearer(token))


@pytest.mark.parametrize("raw", UNREPRESENTABLE)
def test_attribute_write_with_an_unrepresentable_time_is_refused(client, basin, token_a, raw):
    before = stored()
    body = {"height": {"value": 2.0}, "dateObserved": {"value": raw}}
    response = send(client, "patch", f"{NGSI}/entities/{entity_id('A-PUBLIC')}/attrs", body, token_a)
    assert response.status_code == 400, response.content
    assert "representable range" in response.json()["description"]
    metadata = {"height": {"value": 2.0, "metadata": {"TimeInstant": {"type": "DateTime", "value": raw}}}}
    response = send(client, "post", f"{NGSI}/entities/{entity_id('A-PUBLIC')}/attrs", metadata, token_a)
    assert response.status_code == 400, response.content
    assert stored() == before


@pytest.mark.parametrize("raw", UNREPRESENTABLE)
def test_entity_writes_with_an_unrepresentable_time_are_refused(client, basin, token_a, raw):
    before = stored()
    entity = {"id": entity_id("A-PUBLIC"), "type": "WaterObserved", "height": 3.3, "dateObserved": raw}
    upsert = send(client, "post", f"{NGSI}/entities?options=upsert,keyValues", entity, token_a)
    assert upsert.status_code == 400, upsert.content
    batch = send(client, "post", f"{NGSI}/op/update", {"actionType": "append", "entities": [
        {"id": entity_id("A-PUBLIC"), "type": "WaterObserved", "height": {"value": 3.3}, "dateObserved": {"value": raw}},
    ]}, token_a)
    assert batch.status_code == 400, batch.content
    assert "representable range" in batch.json()["description"]
    assert stored() == before


@pytest.mark.parametrize("raw", UNREPRESENTABLE)
def test_queries_and_subscriptions_with_an_unrepresentable_time_are_400(client, basin, token_a, raw, settings):
    settings.OUTBOUND_ALLOWED_HOSTS = ["notify.example"]
    query = client.get(f"{NGSI}/entities", {"q": f"dateObserved>{raw}"}, **bearer(token_a))
    assert query.status_code in (200, 400), query.content  # no match or refused, never a 500
    subscription = send(client, "post", f"{NGSI}/subscriptions", {
        "subject": {"entities": [{"idPattern": ".*"}]},
        "notification": {"http": {"url": "http://notify.example/notify"}}, "expires": raw,
    }, token_a)
    assert subscription.status_code == 400 and "expires" in subscription.json()["description"]


def test_entity_id_with_a_nul_is_not_found(client, basin, token_a):
    path = f"{NGSI}/entities/{quote(entity_id('A-PUBLIC') + chr(0))}/attrs"
    response = send(client, "patch", path, {"height": {"value": 2.0}}, token_a)
    assert response.status_code == 404
    batch = send(client, "post", f"{NGSI}/op/update", {"actionType": "append", "entities": [
        {"id": entity_id("A-PUBLIC") + "\x00", "type": "WaterObserved", "height": {"value": 3.3}},
    ]}, token_a)
    assert batch.status_code == 400 and "valid string id" in batch.json()["description"]
    assert client.get(f"{NGSI}/entities?id={quote(entity_id('A-PUBLIC') + chr(0))}", **bearer(token_a)).status_code == 200


def test_integer_with_5000_digits_is_a_400(client, basin, token_a):
    before = stored()
    body = '{"height": {"value": ' + "9" * 5000 + "}}"
    response = send(client, "patch", f"{NGSI}/entities/{entity_id('A-PUBLIC')}/attrs", body, token_a)
    assert response.status_code == 400, response.content
    assert "finite number" in response.json()["description"]
    assert stored() == before


def test_notification_numbers_follow_the_nfkc_rule(client, basin, token_a):
    NotifyMapping.objects.create(entity_id_pattern=r"gw-\d+", entity_type="RainGauge", attribute="rainfall",
                                 station=basin["a-rain"], time_attribute="observedAt")
    document = {"data": [
        {"id": "gw-1", "type": "RainGauge", "rainfall": "１.５", "observedAt": "2026-11-21T21:40:00+09:00"},
        {"id": "gw-2", "type": "RainGauge", "rainfall": "١٫٥", "observedAt": "2026-11-21T21:50:00+09:00"},
        {"id": "gw-3", "type": "RainGauge", "rainfall": 1, "observedAt": "9999-12-31T23:59:59-14:00"},
        {"id": "gw-4", "type": "RainGauge", "rainfall": int("9" * 4000), "observedAt": "2026-11-21T21:55:00+09:00"},
    ]}
    response = client.post("/ngsi/notify", data=json.dumps(document), content_type="application/json", **bearer(token_a))
    assert response.status_code == 200, response.content
    reply = response.json()
    assert reply["accepted"] == 1
    errors = {row["entity"]: row["error"] for row in reply["rejected"]}
    assert errors["gw-2"] == "value is not a number"
    assert "outside the representable range" in errors["gw-3"]
    assert errors["gw-4"] == "value is not a number"
