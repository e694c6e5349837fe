"""Dam release notices through NGSI-v2: Smart Data Models `Alert` entities (see ngsi/release_entities.py)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from releases.models import DamRelease

NGSI = "/ngsi/v2"


def alert_body(**extra):
    start = timezone.now() - timedelta(minutes=5)
    return {
        "id": "ignored-client-id", "type": "Alert",
        "category": {"type": "Text", "value": "environment"},
        "subCategory": {"type": "Text", "value": "floodRisk"},
        "alertSource": {"type": "Text", "value": "urn:ngsi-ld:WaterObserved:A-DAM"},
        "validFrom": {"type": "DateTime", "value": start.isoformat()},
        "plannedDischarge": {"type": "Number", "value": 300},
        "reach": {"type": "Text", "value": "水森川 水森ダム下流〜河口"},
        "downstream": {"type": "StructuredValue", "value": ["town_b"]},
        "river": {"type": "Text", "value": "水森川"},
        **extra,
    }


def create(client, body, token, query=""):
    return client.post(f"{NGSI}/entities{query}", data=json.dumps(body), content_type="application/json",
                       HTTP_AUTHORIZATION=f"Bearer {token}")


def test_a_gateway_posts_a_release_as_an_alert_entity_and_everyone_reads_it(client, dam, token_a):
    response = create(client, alert_body(), token_a)
    assert response.status_code == 201, response.content
    release = DamRelease.objects.get()
    entity_id = f"urn:ngsi-ld:Alert:release-{release.pk}"
    assert response["Location"] == f"/v2/entities/{entity_id}?type=Alert"
    assert [t.slug for t in release.downstream.order_by("slug")] == ["town-a", "town-b"]
    entity = client.get(f"{NGSI}/entities/{entity_id}", {"options": "keyValues"}).json()
    assert entity["type"] == "Alert" and entity["category"] == "environment" and entity["subCategory"] == "floodRisk"
    assert entity["alertSource"] == "urn:ngsi-ld:WaterObserved:A-DAM" and entity["inForce"] is True
    assert entity["plannedDischarge"] == 300 and "川に近づかないでください" in entity["advice"]
    normalized = client.get(f"{NGSI}/entities/{entity_id}/attrs/plannedDischarge").json()
    assert normalized["metadata"]["unitCode"]["value"] == "MQS"
    listed = client.get(f"{NGSI}/entities", {"type": "Alert", "options": "keyValues", "q": "plannedDischarge>100"})
    assert [e["id"] for e in listed.json()] == [entity_id]
    assert client.get(f"{NGSI}/entities", {"type": "Alert", "q": "plannedDischarge>500"}).json() == []
    # Not mixed into the station lists.
    assert all(e["type"] != "Alert" for e in client.get(f"{NGSI}/entities", {"limit": 1000}).json())


def test_key_values_creation_and_a_notice_that_ended_is_not_listed(client, dam, token_a):
    now = timezone.now()
    body = {"type": "Alert", "alertSource": "A-DAM", "validFrom": (now - timedelta(hours=1)).isoformat(),
            "validTo": (now - timedelta(minutes=1)).isoformat(), "plannedDischarge": 50, "reach": "下流"}
    assert create(client, body, token_a, "?options=keyValues").status_code == 201
    assert client.get(f"{NGSI}/entities", {"type": "Alert"}).json() == []
    entity_id = f"urn:ngsi-ld:Alert:release-{DamRelease.objects.get().pk}"
    assert client.get(f"{NGSI}/entities/{entity_id}", {"options": "keyValues"}).json()["inForce"] is False


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"category": {"value": "traffic"}}, 422),
        ({"color": {"value": "red"}}, 422),
        ({"alertSource": {"value": "urn:ngsi-ld:WaterObserved:B-DAM"}}, 400),
        ({"plannedDischarge": {"value": "NaN"}}, 400),
        ({"plannedDischarge": 5}, 400),  # normalized form needs {"value": ...}
        ({"validFrom": {"value": "tomorrow"}}, 400),
        ({"reach": {"value": "<script>\u0000"}}, 400),
        ({"downstream": {"value": ["nowhere"]}}, 400),
    ],
)
def test_bad_alert_entities_are_refused_and_store_nothing(client, dam, token_a, change, status):
    response = create(client, alert_body(**change), token_a)
    assert response.status_code == status, response.content
    assert set(response.json()) == {"error", "description"}
    assert not DamRelease.objects.exists()


def test_only_the_dams_town_creates_and_reads_need_no_token(client, dam, token_b):
    assert client.post(f"{NGSI}/entities", data=json.dumps(alert_body()), content_type="application/json").status_code == 401
    refused = create(client, alert_body(), token_b)
    assert refused.status_code == 400 and "alertSource" in refused.json()["description"]
    assert not DamRelease.objects.exists()
    missing = client.get(f"{NGSI}/entities/urn:ngsi-ld:Alert:release-999999")
    assert missing.status_code == 404 and missing.json()["error"] == "NotFound"
    assert client.get(f"{NGSI}/entities/urn:ngsi-ld:Alert:release-1x").status_code == 404
