"""Who sees what through the evacuation doors, for anonymous and every role of town A and B, against
the shared fixtures' stations: a town never sees another town's private gauge (nor its
recommendations, trigger rules or who acted on its orders) through any of them, and only the owning
town's operators and admins act. Written out independently of the code under test."""

import json
import re

import pytest
from django.contrib.auth import get_user_model

from orders.models import Order, Recommendation, TriggerRule
from orders.services import order_issue, recommendation_open
from orders.triggers import PLATFORM, station_evidence
from sensors.selectors import station_list
from tenancy.models import Membership

PRINCIPALS = ["anonymous"] + [f"{town}-{role}" for town in "ab" for role in Membership.Role.values]
HIDDEN_FROM_B = "A-PRIVATE"


@pytest.fixture
def world(stations, districts, shelters):
    """Town A's order for A-1 triggered (in its evidence) by its private gauge, and an open
    recommendation on A's board from the same gauge; a member of each role in each town."""
    users = {}
    for prefix, town in zip("ab", (districts["A-1"].municipality, districts["B-1"].municipality)):
        for role in Membership.Role.values:
            user = get_user_model().objects.create_user(f"{prefix}-{role}", password="pw-12345-abc")
            Membership.objects.create(user=user, municipality=town, role=role)
            users[f"{prefix}-{role}"] = user
    private = station_list(viewer=PLATFORM).get(code=HIDDEN_FROM_B)
    threshold = private.thresholds.get(name="evacuation_decision")
    evidence = station_evidence(private, threshold, fired_by="reading")
    from tenancy.selectors import viewer_for_user

    order = order_issue(
        viewer=viewer_for_user(users["a-operator"]), actor=users["a-operator"], level=3, districts=["A-1"], evidence=evidence
    )
    rule = TriggerRule.objects.create(municipality=districts["A-1"].municipality, station=private,
                                      threshold="evacuation_decision", level=3)
    rule.districts.set([districts["A-1"]])
    recommendation = recommendation_open(municipality_id=rule.municipality_id, level=3, districts=[districts["A-1"]],
                                         evidence=evidence, rule=rule)
    return {"users": users, "order": order, "recommendation": recommendation}


def town_of(principal):
    return None if principal == "anonymous" else principal.split("-")[0]


def may_act_for_a(principal):
    return principal in ("a-operator", "a-admin")


def post(client, url, body):
    return client.post(url, data=json.dumps(body), content_type="application/json")


@pytest.mark.django_db
@pytest.mark.parametrize("principal", PRINCIPALS)
def test_every_order_door_agrees_with_the_rule(client, world, principal):
    if principal != "anonymous":
        client.force_login(world["users"][principal])
    order, recommendation = world["order"], world["recommendation"]
    own = town_of(principal) == "a"
    texts = []

    # Orders in force: everyone sees A's order; its steps (who, evidence) only town A.
    listing = client.get("/api/v1/orders", {"all": "1"})
    assert [f["id"] for f in listing.json()["features"]] == [order.pk]
    props = listing.json()["features"][0]["properties"]
    assert ("events" in props) is own
    assert [g["code"] for g in props["gauges"]] == ([HIDDEN_FROM_B] if own else [])
    texts.append(listing.content.decode())
    cap = client.get(f"/api/v1/orders/{order.pk}/cap")
    assert cap.status_code == 200
    texts.append(cap.content.decode())
    texts.append(client.get("/api/v1/districts").content.decode())
    page = client.get("/hq/" if principal != "anonymous" else "/")
    texts.append(page.content.decode())
    texts.append(client.get("/").content.decode())

    # Recommendations: the owning town's board only, else as if there were none (404, not 403).
    if principal == "anonymous":
        assert client.get("/api/v1/recommendations").status_code in (401, 403)
    else:
        listed = client.get("/api/v1/recommendations").json()["results"]
        assert [r["id"] for r in listed] == ([recommendation.pk] if own else [])
        texts.append(json.dumps(listed))
        dismissed = post(client, f"/api/v1/recommendations/{recommendation.pk}/dismiss", {"reason": "test"})
        assert dismissed.status_code == (200 if may_act_for_a(principal) else 403 if own else 404)
        texts.append(dismissed.content.decode())

    # Acting on A's order: only A's operators and admins; nothing changes otherwise.
    changed = post(client, f"/api/v1/orders/{order.pk}/change", {"level": 4})
    lifted = post(client, f"/api/v1/orders/{order.pk}/lift", {})
    issued = post(client, "/api/v1/orders", {"level": 5, "districts": ["A-2"]})
    expected = (200, 200, 201) if may_act_for_a(principal) else ((401,) * 3 if principal == "anonymous" else (403,) * 3)
    assert (changed.status_code, lifted.status_code, issued.status_code) == expected
    for response in (changed, lifted, issued):
        texts.append(response.content.decode())
    if not may_act_for_a(principal):
        order.refresh_from_db()
        assert (order.level, order.lifted_at, Order.objects.count()) == (3, None, 1)
        assert Recommendation.objects.get().state == "open"

    if not own and principal != "a-admin":
        for text in texts:
            assert not re.search(rf"\b{HIDDEN_FROM_B}\b", text), text[:300]
