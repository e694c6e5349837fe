"""Orders over the REST API: issue, raise, extend, lift; who may; what is kept; CAP of each step."""

import json

import pytest

from geo.models import Shelter
from orders.models import Order, OrderEvent
from tenancy.models import AuditEvent

NS = {"cap": "urn:oasis:names:tc:emergency:cap:1.2"}


def post(client, url, body):
    return client.post(url, data=json.dumps(body), content_type="application/json")


def issue(client, **body):
    body = {"level": 3, "districts": ["A-1", "A-2"], "reason": "上流の水位上昇", **body}
    return post(client, "/api/v1/orders", body)


@pytest.mark.django_db
def test_an_operator_issues_raises_and_lifts_an_order_and_every_step_is_kept(client, members, districts, shelters, assert_valid_cap):
    client.force_login(members["a-operator"])
    response = issue(client, shelters=["SH-A"], open_shelters=True)
    assert response.status_code == 201, response.content
    order = response.json()
    props = order
    assert (props["level"], props["name_ja"], props["title_en"]) == (3, "高齢者等避難", "Level 3: Older people and those needing help evacuate")
    assert props["action_ja"] == "危険な場所から高齢者等は避難"
    assert [d["code"] for d in props["districts"]] == ["A-1", "A-2"]
    assert order["geometry"]["type"] == "MultiPolygon" and len(order["geometry"]["coordinates"]) == 2
    assert props["shelters"][0]["status"] == "open"
    assert Shelter.objects.get(code="SH-A").status == Shelter.Status.OPEN
    order_id = props["id"]

    # Anyone (a resident) sees it in force, without the staff's history.
    client.logout()
    public = client.get("/api/v1/orders").json()
    assert [f["id"] for f in public["features"]] == [order_id]
    assert "events" not in public["features"][0]["properties"]

    client.force_login(members["a-operator"])
    raised = post(client, f"/api/v1/orders/{order_id}/change", {"level": 4, "reason": "氾濫危険水位に到達"})
    assert raised.status_code == 200, raised.content
    assert raised.json()["order"]["name_ja"] == "避難指示"
    same = post(client, f"/api/v1/orders/{order_id}/change", {"level": 4})
    assert same.json()["recorded"] is False
    extended = post(client, f"/api/v1/orders/{order_id}/change", {"districts": ["A-1"]})
    assert [d["code"] for d in extended.json()["order"]["districts"]] == ["A-1"]
    lifted = post(client, f"/api/v1/orders/{order_id}/lift", {"reason": "水位低下"})
    assert lifted.status_code == 200 and lifted.json()["order"]["in_force"] is False
    assert post(client, f"/api/v1/orders/{order_id}/lift", {}).json()["recorded"] is False
    assert post(client, f"/api/v1/orders/{order_id}/change", {"level": 5}).status_code == 409

    assert client.get("/api/v1/orders").json()["features"] == []
    history = client.get("/api/v1/orders", {"all": "1"}).json()["features"][0]["properties"]["events"]
    assert [(e["kind"], e["level"], e["actor"]) for e in history] == [
        ("issued", 3, "a-operator"), ("raised", 4, "a-operator"), ("extended", 4, "a-operator"), ("lifted", 4, "a-operator"),
    ]
    audited = AuditEvent.objects.filter(action=AuditEvent.Action.ORDER_CHANGED).order_by("at", "pk")
    assert [a.detail["kind"] for a in audited] == ["issued", "raised", "extended", "lifted"]
    assert {a.actor.username for a in audited} == {"a-operator"}

    # Each step's CAP validates against the OASIS schema and references all the earlier ones.
    identifiers = []
    for index, step in enumerate(history):
        response = client.get(f"/api/v1/orders/{order_id}/cap", {"event": step["id"]})
        assert response.status_code == 200 and response["Content-Type"].startswith("application/cap+xml")
        root = assert_valid_cap(response.content)
        assert root.findtext("cap:msgType", namespaces=NS) == ["Alert", "Update", "Update", "Cancel"][index]
        references = root.findtext("cap:references", namespaces=NS) or ""
        assert all(identifier in references for identifier in identifiers)
        identifiers.append(root.findtext("cap:identifier", namespaces=NS))
        infos = root.findall("cap:info", NS)
        assert [i.findtext("cap:language", namespaces=NS) for i in infos] == ["ja-JP", "en-US"]
        polygon = infos[0].find("cap:area/cap:polygon", NS).text
        assert polygon.startswith("35.000000,140.000000") and polygon.split()[0] == polygon.split()[-1]
    assert "避難指示" in client.get(f"/api/v1/orders/{order_id}/cap", {"event": history[1]["id"]}).content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize("principal", ["anonymous", "a-viewer", "b-operator", "b-admin"])
def test_who_may_not_issue_or_lift_for_town_a(client, members, districts, principal):
    client.force_login(members["a-operator"])
    order_id = issue(client).json()["id"]
    client.logout()
    if principal != "anonymous":
        client.force_login(members[principal])
    expected = 401 if principal == "anonymous" else 403
    assert issue(client).status_code == expected
    assert post(client, f"/api/v1/orders/{order_id}/lift", {}).status_code == expected
    assert post(client, f"/api/v1/orders/{order_id}/change", {"level": 5}).status_code == expected
    assert Order.objects.count() == 1
    assert Order.objects.get().lifted_at is None and Order.objects.get().level == 3
    assert OrderEvent.objects.count() == 1


@pytest.mark.django_db
def test_a_neighbours_operator_cannot_order_for_a_mix_of_towns(client, members, districts):
    client.force_login(members["b-operator"])
    response = issue(client, districts=["B-1", "A-1"])
    assert response.status_code == 400 and "districts" in response.json()
    assert issue(client, districts=["B-1"]).status_code == 201


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body, field",
    [
        ({"level": 2}, "level"),
        ({"level": "4"}, "level"),
        ({"level": True}, "level"),
        ({"level": 10**30}, "level"),
        ({"districts": []}, "districts"),
        ({"districts": "A-1"}, "districts"),
        ({"districts": ["NOPE'; DROP TABLE orders_order;--"]}, "districts"),
        ({"districts": ["A-1\x00"]}, "districts"),
        ({"districts": ["x" * 10_000]}, "districts"),
        ({"districts": [f"D{i}" for i in range(600)]}, "districts"),
        ({"shelters": ["SH-B"]}, "shelters"),
        ({"shelters": [{"code": "SH-A"}]}, "shelters"),
        ({"reason": "x" * 5000}, "reason"),
        ({"reason": "bad\x00nul"}, "reason"),
        ({"reason": ["<script>"]}, "reason"),
        ({"open_shelters": "yes"}, "open_shelters"),
    ],
)
def test_bad_input_is_a_clear_400_and_stores_nothing(client, members, districts, shelters, body, field):
    client.force_login(members["a-operator"])
    response = issue(client, **body)
    assert response.status_code == 400, response.content
    assert field in response.json()
    assert Order.objects.count() == 0 and AuditEvent.objects.filter(action="order_changed").count() == 0
    assert Shelter.objects.get(code="SH-A").status == Shelter.Status.CLOSED


@pytest.mark.django_db
def test_malformed_documents_are_400_json(client, members, districts):
    client.force_login(members["a-operator"])
    for raw in ("{not json", "[1, 2]", '"text"', "null"):
        response = client.post("/api/v1/orders", data=raw, content_type="application/json")
        assert response.status_code == 400, raw
        assert response["Content-Type"].startswith("application/json")
    assert Order.objects.count() == 0


@pytest.mark.django_db
def test_hostile_text_is_stored_as_text_and_escaped_in_cap(client, members, districts, assert_valid_cap):
    client.force_login(members["a-operator"])
    reason = "<script>alert(1)</script> & ]]>"
    order_id = issue(client, reason=reason).json()["id"]
    assert client.get("/api/v1/orders").json()["features"][0]["properties"]["reason"] == reason
    document = client.get(f"/api/v1/orders/{order_id}/cap").content
    root = assert_valid_cap(document)
    assert b"<script>" not in document
    assert reason in root.find("cap:info", NS).findtext("cap:description", namespaces=NS)
    assert client.get(f"/api/v1/orders/{order_id}/cap", {"event": "1e9"}).status_code == 400
    assert client.get(f"/api/v1/orders/{order_id}/cap", {"event": "999999"}).status_code == 404


@pytest.mark.django_db
def test_districts_are_public_geojson(client, districts):
    body = client.get("/api/v1/districts").json()
    assert body["type"] == "FeatureCollection"
    assert [f["properties"]["code"] for f in body["features"]] == ["A-1", "A-2", "B-1"]
    assert body["features"][0]["properties"] == {"code": "A-1", "name_ja": "上町", "name_en": "Kamimachi", "municipality": "town-a"}
    only_b = client.get("/api/v1/districts", {"municipality": "town-b"}).json()
    assert [f["id"] for f in only_b["features"]] == ["B-1"]


@pytest.mark.django_db
def test_the_schema_declares_the_order_endpoints(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    for path in ("/api/v1/orders", "/api/v1/orders/{order_id}/lift", "/api/v1/orders/{order_id}/cap", "/api/v1/districts"):
        assert path in schema["paths"], path
    assert "201" in schema["paths"]["/api/v1/orders"]["post"]["responses"]


@pytest.mark.django_db
def test_the_atom_feed_lists_orders_in_force_and_lifted_with_their_cap(client, members, districts):
    from orders.services import order_issue, order_lift
    from tenancy.selectors import viewer_for_user

    operator = members["a-operator"]
    viewer = viewer_for_user(operator)
    lifted = order_issue(viewer=viewer, actor=operator, level=3, districts=["A-2"])
    order_lift(viewer=viewer, actor=operator, order=lifted)
    order_issue(viewer=viewer, actor=operator, level=4, districts=["A-1"], reason="<script>x</script>")
    body = client.get("/orders/feed.atom").content.decode()
    assert body.count("<entry>") == 2
    assert "【警戒レベル4 避難指示】" in body and "(lifted)" in body
    assert f"/api/v1/orders/{lifted.pk}/cap" in body
    assert "<script>" not in body


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/v1/districts", "/api/v1/orders"])
def test_hostile_query_parameters_are_a_clear_400(client, districts, path):
    for value in ("town-a\x00", "x" * 500, "\u202e"):
        response = client.get(path, {"municipality": value})
        assert response.status_code == 400 and "municipality" in response.json(), value
    assert client.get(path, {"municipality": "' OR 1=1 --"}).json()["features"] == []
