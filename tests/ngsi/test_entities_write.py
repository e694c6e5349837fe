"""Writing through NGSI: a measured attribute becomes an observation; everything else is refused
with an NGSI error and stores nothing."""

import json
from datetime import datetime, timedelta, timezone

import pytest
from django.utils import timezone as dj_timezone

from events.models import OutboxEvent
from sensors.models import Observation, StationState
from tests.ngsi.conftest import NGSI, NOT_FOUND, T0, bearer, entity_id

pytestmark = pytest.mark.django_db

T1 = T0 + timedelta(minutes=10)
JST = timezone(timedelta(hours=9))


def stored():
    return sorted(Observation.objects.values_list("station__code", "observed_at", "value", "source"))


def send(client, method, path, body, token=None, content_type="application/json", **extra):
    raw = body if isinstance(body, (str, bytes)) else json.dumps(body)
    headers = bearer(token) if token else {}
    return getattr(client, method)(path, data=raw, content_type=content_type, **headers, **extra)


def attrs_path(code, kind="river"):
    return f"{NGSI}/entities/{entity_id(code, kind)}/attrs"


def test_patch_of_the_measured_attribute_becomes_an_observation(client, basin, token_a):
    # An hour after the 1.0 m reading, so a rise to 3.6 m is plausible (not flagged as a spike).
    later = T0 + timedelta(hours=1)
    body = {
        "height": {"type": "Number", "value": 3.6},
        "dateObserved": {"type": "DateTime", "value": later.astimezone(JST).isoformat()},
    }
    response = send(client, "patch", attrs_path("A-PRIVATE"), body, token_a)
    assert response.status_code == 204, response.content
    row = Observation.objects.get(station__code="A-PRIVATE", observed_at=later)
    assert (row.value, row.source, row.quality) == (3.6, Observation.Source.NGSI, Observation.Quality.OK)
    state = StationState.objects.get(station__code="A-PRIVATE")
    assert (state.value, state.observed_at, state.level) == (3.6, later, 3)
    entity = client.get(f"{NGSI}/entities/{entity_id('A-PRIVATE')}", **bearer(token_a)).json()
    assert entity["height"]["value"] == 3.6 and entity["alertLevel"]["value"] == 3


def test_post_attrs_key_values_and_time_instant_metadata(client, basin, token_a):
    response = send(client, "post", attrs_path("A-RAIN", "rain") + "?options=keyValues",
                    {"precipitation": 7.5, "dateObserved": T1.isoformat()}, token_a)
    assert response.status_code == 204, response.content
    with_metadata = {"height": {"value": 2.9, "metadata": {"TimeInstant": {"type": "DateTime", "value": "2026-11-21T12:20:00.000Z"}}}}
    assert send(client, "post", attrs_path("A-PUBLIC"), with_metadata, token_a).status_code == 204
    assert ("A-RAIN", T1, 7.5, "ngsi") in stored()
    assert ("A-PUBLIC", T0 + timedelta(minutes=20), 2.9, "ngsi") in stored()
    assert StationState.objects.get(station__code="A-RAIN").accumulations == {"3600": 19.5}


def test_reservoir_filling_level_is_converted_to_percent(client, basin, token_a):
    body = {"fillingLevel": {"value": 0.9}, "dateObserved": {"value": T1.isoformat()}}
    assert send(client, "patch", attrs_path("A-DAM"), body, token_a).status_code == 204
    assert Observation.objects.get(station__code="A-DAM", observed_at=T1).value == 90.0
    # Beyond the plausible range (a level sent in percent, say): stored, flagged "range", not lost.
    too_full = {"fillingLevel": {"value": 2.5}, "dateObserved": {"value": (T1 + timedelta(minutes=10)).isoformat()}}
    assert send(client, "patch", attrs_path("A-DAM"), too_full, token_a).status_code == 204
    assert Observation.objects.get(station__code="A-DAM", observed_at=T1 + timedelta(minutes=10)).quality == "range"


def test_put_value_text_plain_and_attribute_object(client, basin, token_a):
    before = dj_timezone.now()
    response = send(client, "put", f"{attrs_path('A-PUBLIC')}/height/value", "3.4", token_a, content_type="text/plain")
    assert response.status_code == 204, response.content
    latest = Observation.objects.filter(station__code="A-PUBLIC").latest("observed_at")
    assert latest.value == 3.4 and latest.observed_at >= before - timedelta(seconds=1)
    attribute = {"type": "Number", "value": 1.25, "metadata": {"TimeInstant": {"value": T1.isoformat()}}}
    assert send(client, "put", f"{attrs_path('A-REGION')}/height", attribute, token_a).status_code == 204
    assert ("A-REGION", T1, 1.25, "ngsi") in stored()
    assert send(client, "put", f"{attrs_path('A-REGION')}/height/value", "1.5", token_a).status_code == 204


def test_batch_update_is_one_ingestion_batch(client, basin, token_a, settings):
    body = {
        "actionType": "update",
        "entities": [
            {"id": entity_id("A-PUBLIC"), "type": "WaterObserved", "height": {"value": 4.2},
             "dateObserved": {"value": T1.isoformat()}},
            {"id": entity_id("A-RAIN", "rain"), "precipitation": {"value": 1.0}, "dateObserved": {"value": T1.isoformat()}},
        ],
    }
    settings.EVENTS_DRAIN = "workers"  # keep the change-log rows to look at
    OutboxEvent.objects.all().delete()  # the fixture's own readings
    response = send(client, "post", f"{NGSI}/op/update", body, token_a)
    batches = list(OutboxEvent.objects.filter(handler="alerts.evaluate").values_list("payload", flat=True))
    assert response.status_code == 204, response.content
    assert ("A-PUBLIC", T1, 4.2, "ngsi") in stored() and ("A-RAIN", T1, 1.0, "ngsi") in stored()
    assert len(batches) == 1 and len(batches[0]["stations"]) == 2
    for action in ("append", "replace"):
        body["actionType"] = action
        assert send(client, "post", f"{NGSI}/op/update", body, token_a).status_code == 204  # duplicates: kept once
    assert Observation.objects.filter(observed_at=T1).count() == 2


def test_upsert_adds_a_reading_and_creation_is_refused(client, basin, token_a):
    entity = {"id": entity_id("A-PUBLIC"), "type": "WaterObserved", "height": 3.3, "dateObserved": T1.isoformat()}
    assert send(client, "post", f"{NGSI}/entities?options=upsert,keyValues", entity, token_a).status_code == 204
    assert ("A-PUBLIC", T1, 3.3, "ngsi") in stored()
    exists = send(client, "post", f"{NGSI}/entities?options=keyValues", entity, token_a)
    assert (exists.status_code, exists.json()["error"]) == (422, "Unprocessable")
    assert "Already Exists" in exists.json()["description"]
    new = send(client, "post", f"{NGSI}/entities", {"id": "urn:ngsi-ld:WaterObserved:NEW-1", "type": "WaterObserved"}, token_a)
    foreign = send(client, "post", f"{NGSI}/entities?options=upsert", {"id": entity_id("B-PRIVATE"), "height": {"value": 1}}, token_a)
    assert new.status_code == foreign.status_code == 422
    # Another town's station gets the same words as one that does not exist.
    assert new.json() == foreign.json()
    assert "register stations in the platform" in new.json()["description"]


def test_town_b_cannot_write_town_a_stations_visible_or_not(client, basin, token_b):
    before = stored()
    for code in ("A-PRIVATE", "A-REGION", "A-PUBLIC"):
        response = send(client, "patch", attrs_path(code), {"height": {"value": 1.0}}, token_b)
        assert (response.status_code, response.json()) == (404, NOT_FOUND), code
        value = send(client, "put", f"{attrs_path(code)}/height/value", "1.0", token_b, content_type="text/plain")
        assert value.status_code == 404
    batch = {"actionType": "update", "entities": [{"id": entity_id("B-PUBLIC"), "height": {"value": 1.0}},
                                                  {"id": entity_id("A-PUBLIC"), "height": {"value": 1.0}}]}
    assert send(client, "post", f"{NGSI}/op/update", batch, token_b).status_code == 404
    scoped = send(client, "patch", attrs_path("B-PUBLIC"), {"height": {"value": 1.0}}, token_b, HTTP_FIWARE_SERVICE="town_a")
    assert scoped.status_code == 404
    assert stored() == before


def test_writes_need_a_gateway_token(client, basin, user_a):
    anonymous = send(client, "patch", attrs_path("A-PUBLIC"), {"height": {"value": 1.0}})
    assert (anonymous.status_code, anonymous.json()["error"]) == (401, "Unauthorized")
    assert anonymous["WWW-Authenticate"] == "Bearer"
    client.force_login(user_a)
    session = send(client, "patch", attrs_path("A-PUBLIC"), {"height": {"value": 1.0}})
    assert (session.status_code, session.json()["error"]) == (403, "Forbidden")
    assert Observation.objects.filter(source="ngsi").count() == 0


@pytest.mark.parametrize(
    "body, status, words",
    [
        ({"alertLevel": {"value": 5}}, 422, "derived from the latest reading"),
        ({"location": {"value": {"type": "Point", "coordinates": [0, 0]}}}, 422, "station register"),
        ({"colour": {"value": "blue"}}, 422, "no writable attribute 'colour'"),
        ({"precipitation": {"value": 1.0}}, 422, "no writable attribute 'precipitation'"),
        ({"dateObserved": {"value": "2026-11-21T21:10:00+09:00"}}, 422, "together with 'height'"),
        ({"height": {"value": 1.0}, "dateObserved": {"value": "2099-01-01T00:00:00+09:00"}}, 422, "'dateObserved'"),
        ({"height": {"value": "3.1"}}, 400, "must be a finite number"),
        ({"height": {"value": True}}, 400, "must be a finite number"),
        ({"height": {"value": None}}, 400, "must be a finite number"),
        ('{"height": {"value": 1e400}}', 400, "must be a finite number"),
        ('{"height": {"value": ' + "9" * 400 + "}}", 400, "must be a finite number"),
        ('{"height": {"value": ' + "9" * 5000 + "}}", 400, "must be a finite number"),  # read as infinity, not a 500
        ({"height": {"value": 1.0, "type": "Text"}}, 400, "numeric type"),
        ({"height": {"type": "Number"}}, 400, "no 'value'"),
        ({"height": 3.1}, 400, "JSON object"),
        ({"height": {"value": 1.0, "extra": 1}}, 400, "Unrecognized field"),
        ({"height": {"value": 1.0, "metadata": []}}, 400, "metadata"),
        ({"height": {"value": 1.0}, "dateObserved": {"value": "yesterday"}}, 400, "ISO 8601"),
        ({"height": {"value": 1.0}, "dateObserved": {"value": 20261121}}, 400, "ISO 8601"),
        ({"bad name": {"value": 1.0}}, 400, "Invalid characters"),
        ({}, 400, "Empty payload"),
        ([], 400, "JSON object"),
        ("[1, 2", 400, "malformed JSON"),
        ('{"height": {"value": NaN}}', 400, "NaN"),
        ('{"height": {"value": 1.0}, "height": {"value": 2.0}}', 400, "Duplicate key"),
        ("[" * 100_000 + "]" * 100_000, 400, "nested too deeply"),
        (b"\xff\xfe{}", 400, "UTF-8"),
        ("", 400, "Empty payload"),
    ],
)
def test_hostile_and_malformed_writes_store_nothing(client, basin, token_a, body, status, words):
    before = stored()
    response = send(client, "patch", attrs_path("A-PUBLIC"), body, token_a)
    assert response.status_code == status, response.content
    error = response.json()
    assert set(error) == {"error", "description"}
    assert error["error"] == {400: "BadRequest", 422: "Unprocessable"}[status]
    assert words in error["description"]
    assert stored() == before
    assert StationState.objects.get(station__code="A-PUBLIC").value == 3.2


def test_wrong_media_type_and_oversized_bodies(client, basin, token_a, settings):
    before = stored()
    xml = send(client, "patch", attrs_path("A-PUBLIC"), "<height>1</height>", token_a, content_type="application/xml")
    assert (xml.status_code, xml.json()["error"]) == (415, "UnsupportedMediaType")
    text = send(client, "patch", attrs_path("A-PUBLIC"), "1.0", token_a, content_type="text/plain")
    assert text.status_code == 415
    huge = {"height": {"value": 1.0, "metadata": {"note": {"value": "x" * (1024 * 1024)}}}}
    too_large = send(client, "patch", attrs_path("A-PUBLIC"), huge, token_a)
    assert (too_large.status_code, too_large.json()["error"]) == (413, "RequestEntityTooLarge")
    settings.NGSI_MAX_BODY_BYTES = 64
    padded = {"height": {"value": 1.0, "type": "Number", "metadata": {"note": {"value": "x" * 20}}}}
    assert send(client, "patch", attrs_path("A-PUBLIC"), padded, token_a).status_code == 413
    assert stored() == before


@pytest.mark.parametrize(
    "body, status",
    [
        ({"actionType": "delete", "entities": [{"id": entity_id("A-PUBLIC")}]}, 422),
        ({"actionType": "appendStrict", "entities": [{"id": entity_id("A-PUBLIC"), "height": {"value": 1}}]}, 422),
        ({"actionType": "upsert", "entities": []}, 400),
        ({"actionType": "update", "entities": []}, 400),
        ({"actionType": "update", "entities": {"id": "x"}}, 400),
        ({"actionType": "update", "entities": ["x"]}, 400),
        ({"actionType": "update", "entities": [{"type": "WaterObserved"}]}, 400),
        ({"actionType": "update", "entities": [{"id": entity_id("A-PUBLIC"), "height": {"value": 1}},
                                               {"id": entity_id("A-PUBLIC"), "alertLevel": {"value": 1}}]}, 422),
        ({"actionType": "update", "entities": [{"id": entity_id("A-PUBLIC"), "height": {"value": 1}}], "x": 1}, 400),
        ({"entities": [{"id": entity_id("A-PUBLIC"), "height": {"value": 1}}]}, 400),
    ],
)
def test_refused_batch_updates_store_nothing(client, basin, token_a, body, status):
    before = stored()
    response = send(client, "post", f"{NGSI}/op/update", body, token_a)
    assert response.status_code == status, response.content
    assert stored() == before


def test_partial_batch_update_reports_what_was_refused(client, basin, token_a):
    body = {"actionType": "update", "entities": [
        {"id": entity_id("A-PUBLIC"), "height": {"value": 2.2}, "dateObserved": {"value": T1.isoformat()}},
        {"id": entity_id("A-REGION"), "height": {"value": 2.0}, "dateObserved": {"value": "2099-01-01T00:00:00+09:00"}},
    ]}
    response = send(client, "post", f"{NGSI}/op/update", body, token_a)
    assert response.status_code == 422
    error = response.json()
    assert error["error"] == "PartialUpdate"
    assert entity_id("A-REGION") in error["description"] and "in the future" in error["description"]
    assert ("A-PUBLIC", T1, 2.2, "ngsi") in stored()
    assert not Observation.objects.filter(station__code="A-REGION", source="ngsi").exists()


def test_naive_date_observed_is_utc_as_in_orion(client, basin, token_a):
    body = {"height": {"value": 2.0}, "dateObserved": {"value": "2026-11-21T12:10:00"}}
    assert send(client, "patch", attrs_path("A-PUBLIC"), body, token_a).status_code == 204
    assert Observation.objects.filter(station__code="A-PUBLIC", observed_at=datetime(2026, 11, 21, 12, 10, tzinfo=timezone.utc)).exists()
