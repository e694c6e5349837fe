"""Issue 16 item 5: dam release notices (放流通知) — posted by the dam's town (token or operator),
public on the API, the live map, CAP (event 放流, area = the reach) and Atom; ended by the operator
or by their end time."""

from __future__ import annotations

import json
from datetime import timedelta
from xml.etree import ElementTree

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from dashboard import live
from releases.models import DamRelease
from tenancy.models import Membership

NS = {"cap": "urn:oasis:names:tc:emergency:cap:1.2"}
ATOM = {"atom": "http://www.w3.org/2005/Atom"}
API = "/api/v1/releases"


def notice(**extra):
    start = timezone.now() - timedelta(minutes=5)
    return {
        "dam": "A-DAM", "started_at": start.isoformat(), "planned_discharge": 300, "current_discharge": 120.5,
        "reach": "水森川 水森ダム下流〜河口", "districts": ["川べり地区", "下町"], "downstream": ["town-b"],
        "river": "水森川", "message": "ゲート放流を開始しました", **extra,
    }


def post(client, body, token=None, **extra):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post(API, data=data, content_type="application/json", **headers, **extra)


def member(town, name, role):
    user = get_user_model().objects.create_user(name, password="pw-12345-abc")
    Membership.objects.create(user=user, municipality=town, role=role)
    return user


def test_the_dams_gateway_posts_a_notice_that_everyone_reads_with_the_advice(client, dam, towns, token_a):
    response = post(client, notice(), token_a)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["dam"]["code"] == "A-DAM" and body["in_force"] is True
    assert body["advice_ja"] == "川に近づかないでください。"
    assert body["downstream"] == ["town-a", "town-b"] and body["river_geometry"]["type"] == "LineString"
    public = Client().get(API).json()["releases"]
    assert [r["id"] for r in public] == [body["id"]]
    assert Client().get(f"{API}/{body['id']}").json()["reach"] == "水森川 水森ダム下流〜河口"


def test_the_notice_reaches_the_public_live_layer(client, dam, token_a, django_capture_on_commit_callbacks):
    before = live.live_store().current_seq()
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, notice(), token_a)
    messages, _ = live.live_store().since([live.PUBLIC_GROUP], before)
    released = [m for m in messages if m.get("layer") == "releases"]
    assert len(released) == 1 and released[0]["type"] == "releases"
    assert released[0]["releases"][0]["id"] == response.json()["id"]
    assert released[0]["releases"][0]["advice_en"] == "Keep away from the river."


def test_operators_of_the_dams_town_post_and_end_others_may_not(client, dam, towns, token_b):
    assert post(client, notice()).status_code == 401
    # Another town's gateway: the dam is not one of its own (the same words as no dam at all).
    refused = post(client, notice(), token_b)
    assert refused.status_code == 400 and "No dam" in refused.json()["dam"]
    client.force_login(member(towns[0], "a-viewer", Membership.Role.VIEWER))
    assert post(client, notice()).status_code == 403
    client.force_login(member(towns[0], "a-operator", Membership.Role.OPERATOR))
    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(member(towns[0], "a-operator-2", Membership.Role.OPERATOR))
    assert post(csrf_client, notice()).status_code == 403  # a session needs its CSRF token
    created = post(client, notice())
    assert created.status_code == 201
    release_id = created.json()["id"]
    client.force_login(member(towns[1], "b-operator", Membership.Role.OPERATOR))
    assert client.post(f"{API}/{release_id}/end").status_code == 403
    assert client.patch(f"{API}/{release_id}", data=json.dumps({"current_discharge": 1}),
                        content_type="application/json").status_code == 403
    client.force_login(get_user_model().objects.get(username="a-operator"))
    ended = client.post(f"{API}/{release_id}/end")
    assert ended.status_code == 200 and ended.json()["in_force"] is False
    assert client.post(f"{API}/{release_id}/end").status_code == 200  # a repeat is harmless
    assert Client().get(API).json()["releases"] == []


def test_the_current_discharge_is_updated(client, dam, token_a):
    release_id = post(client, notice(), token_a).json()["id"]
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token_a}"}
    updated = client.patch(f"{API}/{release_id}", data=json.dumps({"current_discharge": "２５０"}),
                           content_type="application/json", **headers)
    assert updated.status_code == 200 and updated.json()["current_discharge"] == 250.0
    for bad in ({"current_discharge": -1}, {"current_discharge": "NaN"}, {"planned_discharge": 1}, []):
        response = client.patch(f"{API}/{release_id}", data=json.dumps(bad), content_type="application/json", **headers)
        assert response.status_code == 400, bad


def test_a_notice_ends_by_itself_at_its_end_time(client, dam, token_a):
    now = timezone.now()
    body = notice(started_at=(now - timedelta(hours=2)).isoformat(), ends_at=(now - timedelta(minutes=1)).isoformat())
    response = post(client, body, token_a)
    assert response.status_code == 201 and response.json()["in_force"] is False
    assert Client().get(API).json()["releases"] == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"dam": None}, "dam"),
        ({"dam": "A-NOPE"}, "dam"),
        ({"planned_discharge": None}, "planned_discharge"),
        ({"planned_discharge": float("inf")}, None),
        ({"planned_discharge": 10**400}, None),
        ({"planned_discharge": -5}, "planned_discharge"),
        ({"planned_discharge": True}, "planned_discharge"),
        ({"planned_discharge": "三百"}, "planned_discharge"),
        ({"current_discharge": 1e9}, "current_discharge"),
        ({"started_at": "yesterday"}, "started_at"),
        ({"started_at": "2026-11-22T09:00:00"}, "started_at"),
        ({"started_at": "9999-12-31T23:59:59-14:00"}, "started_at"),
        ({"ends_at": "2000-01-01T00:00:00+09:00"}, "ends_at"),
        ({"reach": ""}, "reach"),
        ({"reach": "川" * 201}, "reach"),
        ({"reach": "水森川\x00"}, "reach"),
        ({"message": "x" * 1001}, "message"),
        ({"districts": "下町"}, "districts"),
        ({"districts": ["x"] * 51}, "districts"),
        ({"districts": ["\x07"]}, "districts"),
        ({"downstream": ["town-z"]}, "downstream"),
        ({"river": "どこにもない川"}, "river"),
        ({"extra'; DROP TABLE releases_damrelease; --": 1}, None),
    ],
)
def test_bad_notices_are_400_naming_the_field_and_store_nothing(client, dam, token_a, change, field):
    body = notice(**change)
    if field == "dam" and change["dam"] is None:
        body.pop("dam")
    data = json.dumps(body) if change.get("planned_discharge") not in (float("inf"),) else json.dumps(body).replace("Infinity", "1e999")
    response = post(client, data, token_a)
    assert response.status_code == 400, (change, response.content)
    assert response["Content-Type"].startswith("application/json")
    if field:
        assert field in response.json(), response.json()
    assert not DamRelease.objects.exists()


def test_malformed_json_is_a_json_400(client, dam, token_a):
    for data in ('{"dam": ', "[]", "null", '"x"'):
        response = post(client, data, token_a)
        assert response.status_code == 400 and response["Content-Type"].startswith("application/json"), data


def test_text_is_stored_as_text_and_escaped_in_cap(client, dam, token_a, assert_valid_cap):
    hostile = '<script>alert("x")</script>'
    release_id = post(client, notice(reach=hostile, message=hostile), token_a).json()["id"]
    document = client.get(f"{API}/{release_id}/cap").content
    assert b"<script>" not in document
    root = assert_valid_cap(document)
    assert root.find("cap:info/cap:area/cap:areaDesc", NS).text == hostile


def test_cap_says_release_with_the_reach_as_its_area_and_cancels_when_ended(client, dam, towns, token_a, assert_valid_cap):
    release_id = post(client, notice(), token_a).json()["id"]
    response = client.get(f"{API}/{release_id}/cap")
    assert response.status_code == 200 and response["Content-Type"].startswith("application/cap+xml")
    root = assert_valid_cap(response.content)
    assert root.findtext("cap:msgType", namespaces=NS) == "Alert"
    ja, en = root.findall("cap:info", NS)
    assert ja.findtext("cap:event", namespaces=NS) == "放流" and en.findtext("cap:event", namespaces=NS) == "Dam release"
    assert ja.findtext("cap:instruction", namespaces=NS) == "川に近づかないでください。"
    area = ja.find("cap:area", NS)
    assert area.findtext("cap:areaDesc", namespaces=NS) == "水森川 水森ダム下流〜河口"
    polygon = area.findtext("cap:polygon", namespaces=NS).split()
    assert polygon[0] == polygon[-1] and len(polygon) >= 4
    lats = [float(point.split(",")[0]) for point in polygon]
    assert min(lats) < 35.0 and max(lats) > 35.2  # the corridor along the river, lat first
    assert [g.findtext("cap:value", namespaces=NS) for g in area.findall("cap:geocode", NS)] == [t.code for t in towns]
    assert "120.5 m³/s" in ja.findtext("cap:description", namespaces=NS)

    client.post(f"{API}/{release_id}/end", HTTP_AUTHORIZATION=f"Bearer {token_a}")
    ended = assert_valid_cap(client.get(f"{API}/{release_id}/cap").content)
    assert ended.findtext("cap:msgType", namespaces=NS) == "Cancel"
    assert ended.findtext("cap:references", namespaces=NS).split(",")[1] == f"mizumori-release-{release_id}"
    assert client.get(f"{API}/999999/cap").status_code == 404


def test_the_atom_feed_lists_notices_with_typed_cap_links(client, dam, token_a):
    release_id = post(client, notice(), token_a).json()["id"]
    response = client.get("/releases/feed.atom")
    assert response.status_code == 200 and response["Content-Type"].startswith("application/atom+xml")
    root = ElementTree.fromstring(response.content)
    [entry] = root.findall("atom:entry", ATOM)
    assert "放流中" in entry.findtext("atom:title", namespaces=ATOM)
    link = entry.find("atom:link", ATOM)
    assert link.get("type") == "application/cap+xml" and link.get("href").endswith(f"/api/v1/releases/{release_id}/cap")
    assert root.findtext("atom:author/atom:name", namespaces=ATOM) == "Mizumori"


def test_the_public_page_and_the_downstream_hq_show_the_notice_escaped(client, dam, towns, token_a):
    hostile = '</script><img src=x onerror=alert(1)>'
    post(client, notice(reach=hostile, districts=["<b>下町</b>"]), token_a)
    page = Client().get("/").content.decode()
    assert "川に近づかないでください。" in page and "mizumori/releases.js" in page
    assert "<img src=x" not in page and "<b>下町" not in page
    assert "&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in page  # the panel, as text
    assert 'id="mz-releases-data"' in page
    hq = Client()
    hq.force_login(member(towns[1], "b-viewer", Membership.Role.VIEWER))
    assert "貴自治体の区域に関係します" in hq.get("/hq/").content.decode()
    # A town neither the dam's nor downstream sees the notice, without the mark.
    from tests.conftest import make_town

    elsewhere = Client()
    elsewhere.force_login(member(make_town("990051", "town-c", "town c"), "c-viewer", Membership.Role.VIEWER))
    hq_page = elsewhere.get("/hq/").content.decode()
    assert "川に近づかないでください。" in hq_page and "貴自治体の区域に関係します" not in hq_page
