"""GET /api/v1/events: what happened in a window, from the rows that record it, as the caller may see it."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import quote

import pytest
from django.contrib.auth import get_user_model

from alerts.models import Alert
from alerts.services import alert_acknowledge, stale_sensors_check
from geo.models import Shelter
from geo.services import shelter_status_set
from sensors.models import Threshold
from sensors.services import sharing_grant, sharing_withdraw, threshold_set
from tenancy.models import Membership

from .conftest import ingest

# levels 0 2 3 4 3 0 0 0 0 0: the alert is lowered only after 30 minutes below its threshold
STAGES = [2.5, 3.1, 3.6, 4.2, 3.7, 2.9, 2.5, 2.4, 2.4, 2.4]


@pytest.fixture
def history(towns, stations, clock, django_capture_on_commit_callbacks):
    """A storm at every station of both towns, an acknowledged alert, a shelter opened, a threshold
    edited, a gauge gone silent, a share granted and withdrawn; returns the window it spans."""
    town_a, town_b = towns
    operator = get_user_model().objects.create_user("a-op", password="pw-a-op-123")
    Membership.objects.create(user=operator, municipality=town_a, role=Membership.Role.OPERATOR)
    admin_b = get_user_model().objects.create_user("b-admin", password="pw-b-admin-123")
    Membership.objects.create(user=admin_b, municipality=town_b, role=Membership.Role.ADMIN)
    shelter = Shelter.objects.create(code="SH-A1", name_ja="第一小学校", name_en="First school",
                                     municipality=town_a, lon=140.0, lat=35.0)
    start = clock.now
    for step, stage in enumerate(STAGES):
        at = start + timedelta(minutes=10 * step)
        clock.now = at + timedelta(seconds=20)
        for station in stations.values():
            if station.code == "B-REGION" and step >= 3:
                continue  # goes silent
            ingest(station.code, at, stage, django_capture_on_commit_callbacks)
        if step == 3:
            clock.advance(seconds=10)
            alert = Alert.objects.get(station__code="A-PUBLIC", rule__kind="threshold")
            alert_acknowledge(alert, operator)
            shelter_status_set(shelter=shelter, status="open", actor=operator)
            threshold_set(threshold=Threshold.objects.get(station__code="A-PRIVATE", name="flooding"), value=5.5,
                          actor=operator)
            grant = sharing_grant(grantee=town_a, station=stations["b-private"], actor=admin_b)
        if step == 5:
            clock.advance(seconds=10)
            sharing_withdraw(grant=grant, actor=admin_b)
            with django_capture_on_commit_callbacks(execute=True):
                stale_sensors_check()
    clock.advance(minutes=5)
    return start - timedelta(minutes=1), clock.now


def events(client, window, **params) -> list[dict]:
    since, until = window
    params.setdefault("limit", 500)
    query = "&".join(f"{key}={quote(str(value))}" for key, value in params.items())
    response = client.get(f"/api/v1/events?since={quote(since.isoformat())}&until={quote(until.isoformat())}&{query}")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["count"] == len(body["results"]) or params["limit"] != 500
    return body["results"]


def test_town_staff_see_the_whole_story_of_what_they_may_see(client, history, user_a):
    client.force_login(user_a)
    found = events(client, history)
    kinds_of = {}
    for event in found:
        kinds_of.setdefault(event["subject"], []).append(event["kind"])
    assert [k for k in kinds_of["A-PUBLIC"] if k.startswith("level.")] == [
        "level.up", "level.up", "level.up", "level.down", "level.down"
    ]
    crossings = [(e["previous_level"], e["level"]) for e in found if e["subject"] == "A-PUBLIC" and e["kind"].startswith("level.")]
    assert crossings == [(0, 2), (2, 3), (3, 4), (4, 3), (3, 0)]
    ack = next(e for e in found if e["kind"] == "alert.acknowledged" and e["subject"] == "A-PUBLIC")
    assert ack["actor"] == "a-op" and "a-op" in ack["summary_en"]
    assert "alert.opened" in kinds_of["A-PUBLIC"] and "alert.resolved" in kinds_of["A-PUBLIC"]
    assert kinds_of["SH-A1"] == ["shelter.status"]
    assert kinds_of["A-PRIVATE"].count("threshold.changed") == 1
    assert "gauge.stale" in kinds_of["B-REGION"]
    # Town A was party to the share of B's private station: it sees both ends of it…
    assert kinds_of["B-PRIVATE"] == ["sharing.granted", "sharing.withdrawn"]
    # …but no reading of that station, which it may not see today.
    assert {e["subject"] for e in found if e["kind"].startswith(("level.", "alert.", "gauge."))} <= {
        "A-PRIVATE", "A-SHARED", "A-REGION", "A-PUBLIC", "B-SHARED", "B-REGION", "B-PUBLIC"
    }
    # Oldest first, each linking to the HQ map at its moment.
    assert [e["at"] for e in found] == sorted(e["at"] for e in found)
    assert all(e["map_url"].startswith("/hq/?at=") for e in found)
    # Gauge words only: never an order's or the weather agency's.
    for forbidden in ("避難指示", "緊急安全確保", "高齢者等避難", "警報"):
        assert not any(forbidden in e["summary_ja"] for e in found)


def test_the_public_sees_public_stations_and_shelters_without_staff_names(client, history):
    found = events(client, history)
    assert {e["subject"] for e in found} == {"A-PUBLIC", "B-PUBLIC", "SH-A1"}
    assert all(e["actor"] is None for e in found)
    assert not any(e["kind"] in ("alert.note", "sharing.granted", "threshold.changed") for e in found)
    assert all(e["map_url"].startswith("/?at=") for e in found)


def test_a_third_party_never_hears_of_a_share_between_others(client, history, user_b, towns):
    client.force_login(user_b)
    found = events(client, history)
    assert "A-PRIVATE" not in {e["subject"] for e in found}
    # B is the grantor of the share: it sees it; A's private threshold edit it does not.
    assert [e["kind"] for e in found if e["subject"] == "B-PRIVATE" and e["kind"].startswith("sharing.")] == [
        "sharing.granted", "sharing.withdrawn"
    ]
    assert not any(e["kind"] == "threshold.changed" for e in found)


def test_filters_by_town_and_kind_and_pages(client, history, user_a):
    client.force_login(user_a)
    found = events(client, history, municipality="town-b", kind="level")
    assert found and {e["municipality"] for e in found} == {"town-b"}
    assert {e["kind"] for e in found} <= {"level.up", "level.down"}
    all_levels = events(client, history, kind="level.up,level.down")
    page = events(client, history, kind="level", limit=2, offset=1)
    assert page == all_levels[1:3]


@pytest.mark.parametrize(
    "query, parameter",
    [
        ("kind=bogus", "kind"),
        ("kind=%3Cscript%3E", "kind"),
        ("since=yesterday", "since"),
        ("since=2026-11-22T09:00:00", "since"),
        ("until=' OR 1=1 --", "until"),
        ("since=2026-01-01T00:00:00Z&until=2026-06-01T00:00:00Z", "since"),
        ("limit=0", "limit"),
        ("limit=99999999999999999999999", "limit"),
        ("offset=-1", "offset"),
    ],
)
def test_bad_parameters_are_a_400_naming_them(client, towns, query, parameter):
    response = client.get(f"/api/v1/events?{query}")
    assert response.status_code == 400
    assert parameter in response.json()
