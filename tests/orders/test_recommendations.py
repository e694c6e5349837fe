"""Trigger rules → recommendations on the owning town's board → issued (confirmed) or dismissed; and
the live `orders` layer."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from dashboard import live
from orders.models import Order, Recommendation, TriggerRule
from sensors.services import observation_ingest
from tenancy.models import AuditEvent


def post(client, url, body):
    return client.post(url, data=json.dumps(body), content_type="application/json")


@pytest.fixture
def ingest(django_capture_on_commit_callbacks):
    """One gateway batch; the change-log handlers run when it commits (EVENTS_DRAIN=eager)."""
    clock = {"at": timezone.now() - timedelta(hours=3)}

    def send(code, value):
        clock["at"] += timedelta(minutes=10)
        with django_capture_on_commit_callbacks(execute=True):
            observation_ingest(
                municipality=None, items=[{"station": code, "observed_at": clock["at"], "value": value}], source="http"
            )

    return send


@pytest.fixture
def upstream_rule(stations, districts):
    """Town B's manual: when town A's gauge A-SHARED (shared with B) reaches 避難判断水位, level 3 for B-1."""
    rule = TriggerRule.objects.create(
        municipality=districts["B-1"].municipality, station=stations["a-shared"], threshold="evacuation_decision", level=3
    )
    rule.districts.set([districts["B-1"]])
    return rule


@pytest.mark.django_db
def test_a_shared_upstream_gauge_recommends_to_the_downstream_town_once_per_crossing(client, members, upstream_rule, ingest):
    ingest("A-SHARED", 3.0)
    assert Recommendation.objects.count() == 0
    ingest("A-SHARED", 3.6)
    recommendation = Recommendation.objects.get()
    assert recommendation.municipality.slug == "town-b" and recommendation.level == 3
    evidence = recommendation.evidence
    assert (evidence["fired_by"], evidence["station"], evidence["value"], evidence["threshold_value"]) == (
        "reading", "A-SHARED", 3.6, 3.5,
    )
    assert evidence["threshold_label_ja"] == "避難判断水位" and evidence["observed_at"]
    ingest("A-SHARED", 3.7)  # still above: no second recommendation
    assert Recommendation.objects.count() == 1
    ingest("A-SHARED", 3.2)  # back below: armed again, but the open recommendation still says it
    ingest("A-SHARED", 3.55)
    assert Recommendation.objects.count() == 1
    Recommendation.objects.update(state=Recommendation.State.DISMISSED)
    ingest("A-SHARED", 3.2)
    ingest("A-SHARED", 3.56)
    assert Recommendation.objects.count() == 2
    recommendation = Recommendation.objects.get(state=Recommendation.State.OPEN)

    # On B's board, not on A's (A owns the gauge, but the decision is B's).
    client.force_login(members["b-viewer"])
    assert [r["id"] for r in client.get("/api/v1/recommendations").json()["results"]] == [recommendation.pk]
    assert len(client.get("/api/v1/recommendations", {"state": "all"}).json()["results"]) == 2
    client.force_login(members["a-admin"])
    assert client.get("/api/v1/recommendations").json()["results"] == []
    assert post(client, f"/api/v1/recommendations/{recommendation.pk}/dismiss", {"reason": "x"}).status_code == 404


@pytest.mark.django_db
def test_issuing_a_recommendation_needs_confirmation_and_is_audited(client, members, upstream_rule, shelters, ingest):
    ingest("A-SHARED", 3.6)
    recommendation = Recommendation.objects.get()
    url = f"/api/v1/recommendations/{recommendation.pk}/issue"
    client.force_login(members["b-viewer"])
    assert post(client, url, {"confirm": True}).status_code == 403
    client.force_login(members["b-operator"])
    refused = post(client, url, {})
    assert refused.status_code == 400 and "confirm" in refused.json()
    assert post(client, url, {"confirm": "yes"}).status_code == 400
    assert Order.objects.count() == 0
    issued = post(client, url, {"confirm": True, "shelters": ["SH-B"], "open_shelters": True})
    assert issued.status_code == 201, issued.content
    props = issued.json()
    assert (props["name_ja"], [d["code"] for d in props["districts"]]) == ("高齢者等避難", ["B-1"])
    assert props["events"][0]["evidence"]["station"] == "A-SHARED"
    assert props["shelters"][0]["status"] == "open"
    recommendation.refresh_from_db()
    assert recommendation.state == "issued" and recommendation.order_id == props["id"]
    assert post(client, url, {"confirm": True}).status_code == 409
    assert AuditEvent.objects.filter(action="recommendation_handled", actor=members["b-operator"]).count() == 1
    # Anonymous residents see the gauge that triggered it: A-SHARED is not public, so it stays unnamed.
    client.logout()
    assert client.get("/api/v1/orders").json()["features"][0]["properties"]["gauges"] == []
    # An order in force covering the rule's districts: the next crossing recommends nothing more.
    ingest("A-SHARED", 3.0)
    ingest("A-SHARED", 3.8)
    assert Recommendation.objects.count() == 1


@pytest.mark.django_db
def test_dismissing_needs_a_reason_and_keeps_the_evidence(client, members, upstream_rule, ingest):
    ingest("A-SHARED", 3.6)
    recommendation = Recommendation.objects.get()
    client.force_login(members["b-operator"])
    url = f"/api/v1/recommendations/{recommendation.pk}/dismiss"
    for body in ({}, {"reason": ""}, {"reason": "x" * 400}, {"reason": "a\x00b"}):
        assert post(client, url, body).status_code == 400, body
    response = post(client, url, {"reason": "現地確認で越水のおそれなし"})
    assert response.status_code == 200 and response.json()["state"] == "dismissed"
    audit = AuditEvent.objects.get(action="recommendation_handled")
    assert audit.detail["reason"] == "現地確認で越水のおそれなし" and audit.detail["evidence"]["station"] == "A-SHARED"
    assert post(client, url, {"reason": "again"}).status_code == 409


@pytest.mark.django_db
def test_the_manual_trigger(client, members, districts):
    client.force_login(members["a-viewer"])
    assert post(client, "/api/v1/recommendations", {"level": 4, "districts": ["A-1"]}).status_code == 403
    client.force_login(members["a-operator"])
    assert post(client, "/api/v1/recommendations", {"level": 4, "districts": ["B-1"]}).status_code == 403
    response = post(client, "/api/v1/recommendations", {"level": 4, "districts": ["A-1"], "note": "土砂崩れ通報"})
    assert response.status_code == 201
    assert response.json()["evidence"] == {"fired_by": "manual", "actor": "a-operator", "note": "土砂崩れ通報"}


@pytest.mark.django_db
def test_order_changes_reach_the_public_live_group_and_recommendations_only_the_town(
    client, members, upstream_rule, ingest, django_capture_on_commit_callbacks
):
    store = live.live_store()
    start = store.current_seq()
    ingest("A-SHARED", 3.6)
    b_town = live.town_group(upstream_rule.municipality_id)
    a_town = live.town_group(members["a-viewer"].memberships.get().municipality_id)
    recommendations = [m for m in store.since(b_town, start)[0] if m["type"] == "recommendations"]
    assert recommendations and recommendations[0]["recommendations"][0]["evidence"]["station"] == "A-SHARED"
    assert not [m for m in store.since(a_town, start)[0] if m["type"] == "recommendations"]
    assert not [m for m in store.since(live.PUBLIC_GROUP, start)[0] if m["type"] == "recommendations"]

    client.force_login(members["b-operator"])
    with django_capture_on_commit_callbacks(execute=True):
        order_id = post(client, "/api/v1/orders", {"level": 4, "districts": ["B-1"]}).json()["id"]
    with django_capture_on_commit_callbacks(execute=True):
        post(client, f"/api/v1/orders/{order_id}/lift", {})
    orders = [m for m in store.since(live.PUBLIC_GROUP, start)[0] if m["type"] == "orders"]
    assert [(m["layer"], m["features"][0]["properties"]["in_force"]) for m in orders] == [("orders", True), ("orders", False)]
    assert orders[0]["features"][0]["properties"]["name_ja"] == "避難指示"
    assert "events" not in orders[0]["features"][0]["properties"]  # who acted is staff information


@pytest.mark.django_db
def test_crossing_two_thresholds_at_once_recommends_only_the_higher_level(upstream_rule, districts):
    from orders.triggers import rules_evaluate
    from sensors.models import StationState

    higher = TriggerRule.objects.create(
        municipality=upstream_rule.municipality, station=upstream_rule.station, threshold="flood_danger", level=4
    )
    higher.districts.set([districts["B-1"]])
    StationState.objects.update_or_create(
        station=upstream_rule.station, defaults={"value": 4.1, "observed_at": timezone.now()}
    )
    assert [r.level for r in rules_evaluate([upstream_rule.station_id])] == [4]
    assert list(Recommendation.objects.values_list("level", flat=True)) == [4]
