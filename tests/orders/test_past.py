"""Evacuation orders in the past and in the overview (issue 14): GET /api/v1/orders?at= gives the
orders in force at a moment as they stood then, the event timeline lists every step with a link to
the map then, the situation report lists the orders of its window, and the HQ overview counts the
orders in force per town."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from geo.models import Shelter
from geo.services import shelter_status_set
from orders.models import Order
from orders.services import order_change, order_issue, order_lift
from tenancy.selectors import viewer_for_user

from ..timeline.conftest import clock  # noqa: F401  (the controllable clock)


@pytest.fixture
def storm_orders(clock, members, districts, shelters, stations):  # noqa: F811
    """Town A: issued L3 for A-1 with SH-A opened (t0), raised to L4 for A-1 and A-2 (t1), lifted (t2).
    Returns the moments between the steps: before, t0+, t1+, t2+."""
    operator = members["a-operator"]
    viewer = viewer_for_user(operator)
    before = clock.now
    clock.advance(minutes=10)
    order = order_issue(viewer=viewer, actor=operator, level=3, districts=["A-1"], shelters=["SH-A"], open_shelters=True)
    after_issue = clock.advance(minutes=5)
    clock.advance(minutes=5)
    order_change(viewer=viewer, actor=operator, order=order, level=4, districts=["A-1", "A-2"], reason="氾濫危険水位")
    shelter_status_set(shelter=Shelter.objects.get(code="SH-A"), status="full", actor=operator)
    after_raise = clock.advance(minutes=5)
    clock.advance(minutes=5)
    order_lift(viewer=viewer, actor=operator, order=Order.objects.get(pk=order.pk))
    after_lift = clock.advance(minutes=5)
    return {"order": order.pk, "moments": (before, after_issue, after_raise, after_lift)}


def orders_at(client, at):
    response = client.get(f"/api/v1/orders?at={quote(at.isoformat())}")
    assert response.status_code == 200, response.content
    return [feature["properties"] for feature in response.json()["features"]]


@pytest.mark.django_db
def test_orders_as_of_a_moment_are_those_in_force_then_as_they_stood(client, members, storm_orders):
    before, after_issue, after_raise, after_lift = storm_orders["moments"]
    assert orders_at(client, before) == []
    assert orders_at(client, after_lift) == []

    (issued,) = orders_at(client, after_issue)
    assert (issued["id"], issued["level"], issued["name_ja"], issued["in_force"]) == (storm_orders["order"], 3, "高齢者等避難", True)
    assert [d["code"] for d in issued["districts"]] == ["A-1"]
    assert [(s["code"], s["status"]) for s in issued["shelters"]] == [("SH-A", "open")]
    assert "events" not in issued  # a resident: who acted is the town's record

    (raised,) = orders_at(client, after_raise)
    assert (raised["level"], raised["name_ja"], raised["reason"]) == (4, "避難指示", "氾濫危険水位")
    assert [d["code"] for d in raised["districts"]] == ["A-1", "A-2"]
    assert [(s["code"], s["status"]) for s in raised["shelters"]] == [("SH-A", "full")]

    # The issuing town's staff see the steps taken up to then, no later ones; a neighbour's do not.
    client.force_login(members["a-viewer"])
    (own,) = orders_at(client, after_issue)
    assert [(step["kind"], step["level"]) for step in own["events"]] == [("issued", 3)]
    client.force_login(members["b-operator"])
    (neighbour,) = orders_at(client, after_raise)
    assert neighbour["level"] == 4 and "events" not in neighbour


@pytest.mark.django_db
@pytest.mark.parametrize("query", ["at=yesterday", "at=2026-13-01T00:00:00Z", "at=2026-11-01T00:00:00Z&all=1"])
def test_a_bad_moment_is_a_clear_400(client, members, districts, query):
    response = client.get(f"/api/v1/orders?{query}")
    assert response.status_code == 400
    assert "at" in response.json()


@pytest.mark.django_db
def test_every_order_step_is_on_the_timeline_filterable_and_linked_to_the_map_then(client, members, storm_orders):
    before, _, _, after_lift = storm_orders["moments"]
    window = f"since={quote(before.isoformat())}&until={quote(after_lift.isoformat())}"

    public = client.get(f"/api/v1/events?{window}&kind=order").json()
    assert [event["kind"] for event in public["results"]] == ["order.issued", "order.raised", "order.lifted"]
    issued, raised, lifted = public["results"]
    assert issued["summary_ja"].startswith("避難情報発令: 警戒レベル3 高齢者等避難")
    assert raised["level"] == 4 and raised["detail"]["districts"] == ["A-1", "A-2"]
    assert {event["actor"] for event in public["results"]} == {None}
    assert lifted["map_url"].startswith("/?at=")
    assert client.get(f"/api/v1/events?{window}&kind=order.raised").json()["count"] == 1
    assert client.get(f"/api/v1/events?{window}&kind=order&municipality=town-b").json()["count"] == 0

    client.force_login(members["a-viewer"])
    staff = client.get(f"/api/v1/events?{window}&kind=order").json()["results"]
    assert [event["actor"] for event in staff] == ["a-operator"] * 3
    assert staff[0]["map_url"].startswith("/hq/?at=")
    client.force_login(members["b-operator"])
    neighbour = client.get(f"/api/v1/events?{window}&kind=order").json()["results"]
    assert len(neighbour) == 3 and {event["actor"] for event in neighbour} == {None}

    client.force_login(members["a-operator"])
    page = client.get(f"/hq/timeline/?{window}&kind=order").content.decode()
    assert page.count('data-event-kind="order.') == 3
    # The page's filter offers every kind on its own, too.
    page = client.get(f"/hq/timeline/?{window}&kind=order.lifted").content.decode()
    assert page.count('data-event-kind="order.') == 1 and '<option value="order.lifted" selected>' in page
    assert '<option value="alert.acknowledged">' in page and '<option value="gauge.stale">' in page


@pytest.mark.django_db
def test_the_hq_overview_counts_the_orders_in_force_per_town(client, members, districts, stations):
    operator = members["a-operator"]
    order = order_issue(viewer=viewer_for_user(operator), actor=operator, level=4, districts=["A-1"])
    client.force_login(members["b-viewer"])  # a neighbour sees town A's orders too: they are public
    fragment = client.get("/hq/overview/").content.decode()
    row = fragment.split('data-overview-town="town-a"')[1].split("</tr>")[0]
    assert 'data-overview="orders"' in row and "L4</span> ×1" in row
    order_lift(viewer=viewer_for_user(operator), actor=operator, order=order)
    row = client.get("/hq/overview/").content.decode().split('data-overview-town="town-a"')[1].split("</tr>")[0]
    assert 'data-overview="orders">0<' in row


@pytest.mark.django_db
def test_the_situation_report_lists_the_orders_of_its_window_at_their_highest(client, members, storm_orders):
    before, after_issue, _, after_lift = storm_orders["moments"]
    client.force_login(members["a-operator"])
    page = client.get("/hq/reports/situation/", {"since": before.isoformat(), "until": after_lift.isoformat()})
    assert page.status_code == 200
    orders = page.content.decode().split("避難情報 / Evacuation orders")[1].split("</table>")[0]
    assert "警戒レベル4 避難指示" in orders and "上町、下町" in orders and "発令中" not in orders
    # A window that ends before the raise: the order at level 3 for its one district then (its later
    # lift is dated all the same).
    early = client.get("/hq/reports/situation/", {"since": before.isoformat(), "until": after_issue.isoformat()})
    orders = early.content.decode().split("避難情報 / Evacuation orders")[1].split("</table>")[0]
    assert "警戒レベル3 高齢者等避難" in orders and "警戒レベル4" not in orders
    assert "上町" in orders and "下町" not in orders
