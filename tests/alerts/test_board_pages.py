"""The HQ alert board and history pages, and the public's current alerts."""

import pytest
from django.test import Client
from django.utils import timezone

from alerts.models import Alert, AlertEvent, AlertRule
from dashboard.maps import alert_map_feature
from tenancy.models import Membership
from tests.alerts.conftest import make_member
from tests.public_page import public_document


def open_alert(station, level):
    rule, _ = AlertRule.objects.get_or_create(station=station, kind="threshold", name="board test")
    now = timezone.now()
    alert = Alert.objects.create(
        station=station, rule=rule, level=level, peak_level=level, opened_at=now, updated_at=now, state="open",
        last_value=3.6,
    )
    AlertEvent.objects.create(alert=alert, kind="opened", level=level, value=3.6, at=now)
    return alert


@pytest.fixture
def alerts(stations):
    return {
        "a-private": open_alert(stations["a-private"], 4),
        "a-public": open_alert(stations["a-public"], 3),
        "b-public": open_alert(stations["b-public"], 2),
        "b-private": open_alert(stations["b-private"], 5),
    }


def board_ids(response):
    return [int(i) for i in __import__("re").findall(r'data-alert-id="(\d+)"', response.content.decode())]


def test_board_lists_visible_open_alerts_most_severe_first(client, alerts, operator_a):
    client.force_login(operator_a)
    response = client.get("/hq/alerts/")
    assert board_ids(response) == [alerts["a-private"].pk, alerts["a-public"].pk, alerts["b-public"].pk]
    fragment = client.get("/hq/alerts/?fragment=1")
    assert "<html" not in fragment.content.decode() and board_ids(fragment) == board_ids(response)


def test_board_filters_by_town(client, alerts, operator_a):
    client.force_login(operator_a)
    assert board_ids(client.get("/hq/alerts/?town=town-b")) == [alerts["b-public"].pk]
    assert board_ids(client.get("/hq/alerts/?town=<script>")) == board_ids(client.get("/hq/alerts/"))


def test_board_needs_login(client, alerts):
    assert client.get("/hq/alerts/")["Location"].startswith("/accounts/login/")


def test_operator_acknowledges_and_the_board_says_who(client, alerts, operator_a):
    client.force_login(operator_a)
    alert = alerts["a-private"]
    client.post(f"/hq/alerts/{alert.pk}/act", {"action": "acknowledge"})
    client.post(f"/hq/alerts/{alert.pk}/act", {"action": "acknowledge"})  # idempotent
    assert AlertEvent.objects.filter(alert=alert, kind="acknowledged", actor=operator_a).count() == 1
    assert "a-operator" in client.get("/hq/alerts/").content.decode()


def test_acting_from_the_live_refreshed_board_returns_to_the_full_board_with_its_filters(client, alerts, operator_a):
    client.force_login(operator_a)
    fragment = client.get("/hq/alerts/?town=town-a&fragment=1").content.decode()
    query = __import__("re").search(r'name="query" value="([^"]*)"', fragment).group(1)
    assert "fragment" not in query
    response = client.post(
        f"/hq/alerts/{alerts['a-public'].pk}/act", {"action": "acknowledge", "query": "town=town-a&fragment=1"}
    )
    assert response.status_code == 302 and response["Location"] == "/hq/alerts/?town=town-a"
    assert "<html" in client.get(response["Location"]).content.decode()


def test_viewers_cannot_act_and_other_towns_private_alerts_are_404(client, alerts, towns, operator_b):
    viewer = make_member("a-viewer-2", towns[0], Membership.Role.VIEWER)
    client.force_login(viewer)
    assert client.post(f"/hq/alerts/{alerts['a-private'].pk}/act", {"action": "acknowledge"}).status_code == 403
    client.force_login(operator_b)
    assert client.post(f"/hq/alerts/{alerts['a-private'].pk}/act", {"action": "resolve"}).status_code == 404
    assert Alert.objects.get(pk=alerts["a-private"].pk).state == "open"


def test_acting_needs_csrf(alerts, operator_a):
    client = Client(enforce_csrf_checks=True)
    client.force_login(operator_a)
    assert client.post(f"/hq/alerts/{alerts['a-public'].pk}/act", {"action": "resolve"}).status_code == 403


def test_history_lists_events(client, alerts, operator_a):
    client.force_login(operator_a)
    page = client.get("/hq/alerts/history/").content.decode()
    assert "A-PRIVATE" in page and "B-PRIVATE" not in page


def test_public_current_alerts_are_level_3_and_up_on_public_stations(client, alerts):
    page = client.get("/alerts/current/").content.decode()
    assert "A-PUBLIC 観測所" in page
    assert "B-PUBLIC 観測所" not in page  # level 2
    assert "A-PRIVATE" not in page and "B-PRIVATE" not in page


def alert_labels(html):
    """The labels of the alert layer's features in the folium script."""
    import json

    decoder, labels, key = json.JSONDecoder(), [], '"label": '
    position = html.find(key)
    while position != -1:
        value, _ = decoder.raw_decode(html, position + len(key))
        labels.append(value)
        position = html.find(key, position + 1)
    return labels


def test_maps_draw_the_alerts_each_viewer_may_see(client, alerts, operator_a, operator_b):
    # The public page draws the alerts of its snapshot document (static/mizumori/live.js applyAlert).
    public = [alert_map_feature(alert)["properties"]["label"] for alert in public_document(client)["alerts"]]
    assert public == ["L3 A-PUBLIC 観測所 / A-PUBLIC gauge 3.60 m"]
    client.force_login(operator_a)
    hq_a = alert_labels(client.get("/hq/").content.decode())
    assert any("A-PRIVATE" in label for label in hq_a) and not any("B-PRIVATE" in label for label in hq_a)
    client.force_login(operator_b)
    hq_b = alert_labels(client.get("/hq/").content.decode())
    assert any("B-PRIVATE" in label for label in hq_b) and not any("A-PRIVATE" in label for label in hq_b)


def test_acknowledging_and_resolving_are_audited_for_the_owner_town(client, alerts, operator_a, towns):
    from tenancy.models import AuditEvent

    client.force_login(operator_a)
    client.post(f"/hq/alerts/{alerts['a-private'].pk}/act", {"action": "acknowledge"})
    client.post(f"/hq/alerts/{alerts['a-private'].pk}/act", {"action": "resolve", "confirm": "yes"})
    events = list(AuditEvent.objects.filter(municipality=towns[0], action__startswith="alert_").order_by("at")
                  .values_list("action", "actor"))
    assert events == [("alert_acknowledged", operator_a.pk), ("alert_resolved", operator_a.pk)]
