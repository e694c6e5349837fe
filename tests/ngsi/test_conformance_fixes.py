"""Issue 16 item 1: the NGSI-v2 conformance gaps found with other clients — JSON errors on every path
(also for POSTs with a session and no CSRF token), `/v2/types/`, `/v2/registrations`, invalid `q`
operators, notifications for late readings, and `POST /v2/op/query`."""

import json
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from ngsi.models import NotifyMapping
from sensors.models import Observation, StationState
from tenancy.models import Membership
from tests.ngsi.conftest import NGSI, T0, bearer, codes, entity_id

pytestmark = pytest.mark.django_db

QUERY = f"{NGSI}/op/query"


@pytest.fixture
def session_client(towns):
    """A logged-in operator of town A whose browser sends no CSRF token (a script reusing a cookie)."""
    user = get_user_model().objects.create_user("a-op", password="pw-a-op-12345")
    Membership.objects.create(user=user, municipality=towns[0], role=Membership.Role.OPERATOR)
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def post_json(client, path, body, token=None, **extra):
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post(path, data=data, content_type="application/json", **(bearer(token) if token else {}), **extra)


def query(client, body, token=None, **params):
    path = QUERY + ("?" + "&".join(f"{k}={v}" for k, v in params.items()) if params else "")
    return post_json(client, path, body, token)


# --- JSON errors everywhere ------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/ngsi/v2/op/query", "/ngsi/v2/op/notify", "/ngsi/v2/no/such/thing", "/ngsi/x"])
def test_posts_with_a_session_and_no_csrf_token_get_ngsi_json_errors(session_client, path):
    response = post_json(session_client, path, {"entities": []})
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"error", "description"}
    assert response.status_code in (400, 403)
    assert b"CSRF" not in response.content or body["error"] == "Forbidden"


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_the_catch_all_answers_json_for_every_method(client, db, method):
    response = getattr(client, method)("/ngsi/v2/nothing/here", data="{}", content_type="application/json")
    assert (response.status_code, response.json()) == (400, {"error": "BadRequest", "description": "service not found"})


# --- routes ---------------------------------------------------------------------------------------------


def test_types_with_the_trailing_slash_of_the_specification(client, basin):
    plain, slashed = client.get(f"{NGSI}/types"), client.get(f"{NGSI}/types/", data={"options": "count"})
    assert slashed.status_code == 200
    assert slashed.json() == plain.json() and [t["type"] for t in plain.json()] == ["WaterObserved", "WeatherObserved"]
    assert slashed["Fiware-Total-Count"] == "2"


def test_registrations_are_an_empty_list_as_in_an_orion_without_any(client, basin, token_a):
    assert client.get("/ngsi/v2").json()["registrations_url"] == "/v2/registrations"
    listed = client.get(f"{NGSI}/registrations", data={"options": "count"}, **bearer(token_a))
    assert (listed.status_code, listed.json(), listed["Fiware-Total-Count"]) == (200, [], "0")
    one = client.get(f"{NGSI}/registrations/5f9b2c1e0a1b2c3d4e5f6a7b")
    assert (one.status_code, one.json()["error"]) == (404, "NotFound")
    created = post_json(client, f"{NGSI}/registrations", {"dataProvided": {}, "provider": {}}, token_a)
    assert (created.status_code, created.json()["error"]) == (422, "Unprocessable")
    assert client.get(f"{NGSI}/registrations", data={"limit": "x"}).status_code == 400


@pytest.mark.parametrize("q", ["height>>1", "height<>1", "height><1", "height==>1", "height:=1", "height<=<1",
                               "height>~1", "height>=!1"])
def test_doubled_operators_in_q_are_bad_requests(client, basin, q):
    response = client.get(f"{NGSI}/entities", data={"q": q})
    assert (response.status_code, response.json()["error"]) == (400, "BadRequest"), q
    assert "Invalid operator" in response.json()["description"]


def test_op_notify_is_the_notification_receiver(client, basin, token_a):
    NotifyMapping.objects.create(entity_id="urn:ngsi-ld:WaterLevelSensor:up-1", attribute="waterLevel",
                                 station=basin["a-public"], scale=0.01)
    body = {"subscriptionId": "5f9b2c1e0a1b2c3d4e5f6a7b",
            "data": [{"id": "urn:ngsi-ld:WaterLevelSensor:up-1", "type": "WaterLevelSensor",
                      "waterLevel": {"type": "Number", "value": 342,
                                     "metadata": {"TimeInstant": {"type": "DateTime", "value": "2026-11-21T12:30:00Z"}}}}]}
    assert post_json(client, f"{NGSI}/op/notify", body).status_code == 401
    response = post_json(client, f"{NGSI}/op/notify", body, token_a)
    assert response.status_code == 200, response.content
    assert response.json()["accepted"] == 1
    assert StationState.objects.get(station__code="A-PUBLIC").value == 3.42


# --- late readings notify ----------------------------------------------------------------------------


@pytest.mark.usefixtures("eager_celery")
def test_a_write_stamped_older_than_the_latest_reading_still_notifies(
    client, basin, token_a, receiver, django_capture_on_commit_callbacks
):
    subscription = post_json(client, f"{NGSI}/subscriptions", {
        "subject": {"entities": [{"id": entity_id("A-PUBLIC")}], "condition": {"attrs": ["height"]}},
        "notification": {"http": {"url": receiver.url}, "attrs": ["height", "dateObserved"], "attrsFormat": "keyValues"},
    }, token_a)
    assert subscription.status_code == 201
    late = (T0 - timedelta(minutes=30)).isoformat()
    with django_capture_on_commit_callbacks(execute=True):
        response = post_json(client, f"{NGSI}/entities/{entity_id('A-PUBLIC')}/attrs?options=keyValues",
                             {"height": 2.9, "dateObserved": late}, token_a)
    assert response.status_code == 204, response.content
    # Stored, the latest state untouched ...
    assert Observation.objects.filter(station__code="A-PUBLIC", source=Observation.Source.NGSI, value=2.9).exists()
    assert StationState.objects.get(station__code="A-PUBLIC").value == 3.2
    # ... and the subscriber heard of the update, with the entity as it now stands.
    notifications = receiver.wait_for(1)
    assert len(notifications) == 1
    assert notifications[0]["json"]["data"] == [
        {"id": entity_id("A-PUBLIC"), "type": "WaterObserved", "height": 3.2, "dateObserved": "2026-11-21T21:00:00+09:00"}
    ]
    # The same reading again is a duplicate: nothing stored, nobody notified.
    with django_capture_on_commit_callbacks(execute=True):
        again = post_json(client, f"{NGSI}/entities/{entity_id('A-PUBLIC')}/attrs?options=keyValues",
                          {"height": 2.9, "dateObserved": late}, token_a)
    assert again.status_code == 204
    assert len(receiver.wait_for(2, timeout=0.5)) == 1


def test_late_readings_do_not_wake_the_latest_state_handlers(basin, token_a, client, django_capture_on_commit_callbacks):
    from events.models import OutboxEvent

    late = (T0 - timedelta(minutes=30)).isoformat()
    post_json(client, f"{NGSI}/entities/{entity_id('A-PUBLIC')}/attrs?options=keyValues",
              {"height": 2.9, "dateObserved": late}, token_a)
    kinds = set(OutboxEvent.objects.values_list("kind", "handler"))
    assert kinds == {("ngsi.readings_stored", "ngsi.notify")}


# --- POST /v2/op/query ---------------------------------------------------------------------------------


def test_op_query_with_subjects_expression_attrs_and_metadata(client, basin, token_a):
    body = {
        "entities": [{"idPattern": "PUBLIC$", "type": "WaterObserved"}, {"id": entity_id("A-RAIN", "rain")}],
        "attrs": ["height", "precipitation"],
        "expression": {"q": "dataProvider==town-a"},
        "metadata": ["unitCode"],
    }
    response = query(client, body)
    assert response.status_code == 200, response.content
    assert response.json() == [
        {"id": entity_id("A-PUBLIC"), "type": "WaterObserved",
         "height": {"type": "Number", "value": 3.2, "metadata": {"unitCode": {"type": "Text", "value": "MTR"}}}},
        {"id": entity_id("A-RAIN", "rain"), "type": "WeatherObserved",
         "precipitation": {"type": "Number", "value": 12.0, "metadata": {"unitCode": {"type": "Text", "value": "MMT"}}}},
    ]


def test_op_query_pages_orders_counts_and_formats_like_the_entity_list(client, basin, token_a):
    everything = query(client, {}, token_a, limit=1000)
    assert codes(everything.json()) == codes(client.get(f"{NGSI}/entities", data={"limit": 1000}, **bearer(token_a)).json())
    page = query(client, {"entities": [{"idPattern": ".*", "type": "WaterObserved"}]}, token_a,
                 limit=2, offset=1, orderBy="!height", options="count,keyValues")
    assert page["Fiware-Total-Count"] == "6"  # A's three gauges, A-DAM, B's region and public ones
    # Highest first: A-PUBLIC 3.2 (skipped by offset=1), A-REGION 2.5, B-PUBLIC 2.0, ...
    assert [(e["id"], e["height"]) for e in page.json()] == [(entity_id("A-REGION"), 2.5), (entity_id("B-PUBLIC"), 2.0)]
    values = query(client, {"entities": [{"id": entity_id("A-PUBLIC")}], "attrs": ["height", "alertLevel"]},
                   options="values")
    assert values.json() == [[3.2, 2]]
    geo = query(client, {"expression": {"georel": "near;maxDistance:11000", "geometry": "point", "coords": "35.05,140.10"}})
    assert codes(geo.json()) == ["A-PUBLIC", "A-RAIN", "B-PUBLIC"]


def test_op_query_sees_only_what_the_caller_may_see(client, basin, token_a):
    private = {"entities": [{"id": entity_id("B-PRIVATE")}, {"idPattern": "PRIVATE"}]}
    assert query(client, private).json() == []
    assert codes(query(client, private, token_a).json()) == ["A-PRIVATE"]
    tenant = post_json(client, QUERY, {"entities": [{"idPattern": ".*"}]}, token_a, HTTP_FIWARE_SERVICE="town_b")
    assert codes(tenant.json()) == ["B-PUBLIC", "B-RAIN", "B-REGION"]


@pytest.mark.parametrize(
    "body",
    [
        [],
        "null",
        {"entities": {}},
        {"entities": [{}]},
        {"entities": [{"type": "WaterObserved"}]},
        {"entities": ["x"]},
        {"entities": [{"id": 1}]},
        {"entities": [{"id": "a", "idPattern": "b"}]},
        {"entities": [{"idPattern": "(a+)+$"}]},
        {"entities": [{"id": "a", "color": "red"}]},
        {"entities": [{"id": "a"}] * 101},
        {"attrs": "height"},
        {"attrs": [1]},
        {"attrs": ["<script>alert(1)</script>"]},
        {"metadata": {}},
        {"expression": []},
        {"expression": {"q": 5}},
        {"expression": {"q": "height>>1"}},
        {"expression": {"q": "name=='x'; DROP TABLE sensors_station; --"}},
        {"expression": {"mq": "height.unitCode==MTR"}},
        {"expression": {"georel": "near;maxDistance:10", "geometry": "point"}},
        {"expression": {"q": "height>1", "scope": "x"}},
        {"entities": [{"idPattern": ".*"}], "restriction": {}},
        '{"entities": [{"idPattern": ".*"}], "entities": []}',
        '{"entities": [',
        '{"attrs": [NaN]}',
        '{"expression": {"q": "' + "9" * 5000 + '"}}',
    ],
)
def test_malformed_or_hostile_query_documents_are_bad_requests(client, basin, body):
    response = query(client, body)
    assert response.status_code == 400, (body, response.content)
    assert response.json()["error"] == "BadRequest"


def test_op_query_refuses_oversized_non_json_and_non_utf8_bodies(client, basin, settings):
    settings.NGSI_MAX_BODY_BYTES = 1024
    big = {"entities": [{"id": "x" * 40}] * 40}
    assert query(client, big).status_code == 413
    text = client.post(QUERY, data="{}", content_type="text/plain")
    assert (text.status_code, text.json()["error"]) == (415, "UnsupportedMediaType")
    binary = client.post(QUERY, data=b'{"entities": [{"id": "\xff\x00"}]}', content_type="application/json")
    assert (binary.status_code, binary.json()["error"]) == (400, "BadRequest")
    nul = query(client, {"entities": [{"id": "a\u0000b"}]})
    assert nul.status_code == 400 or nul.json() == []


def test_op_query_answers_an_unknown_entity_or_an_unmatchable_number_with_an_empty_list(client, basin):
    response = query(client, {"entities": [{"id": "urn:ngsi-ld:WaterObserved:NOPE"}]})
    assert (response.status_code, response.json()) == (200, [])
    # As in GET /v2/entities: a number no reading can equal matches nothing (not an error, not a 500).
    huge = query(client, {"expression": {"q": "height==1e999999"}})
    assert (huge.status_code, huge.json()) == (200, [])
