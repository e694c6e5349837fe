"""POST /ngsi/notify: Orion notifications from another broker, mapped onto our stations."""

import json
from datetime import datetime, timezone

import pytest
from django.core.exceptions import ValidationError

from ngsi.models import NotifyMapping
from sensors.models import Observation, StationState
from tests.ngsi.conftest import bearer

pytestmark = pytest.mark.django_db

URL = "/ngsi/notify"
# A neighbouring city's Orion: a water-level sensor in centimetres, as an IoT Agent would publish it.
NORMALIZED = {
    "subscriptionId": "5f9b2c1e0a1b2c3d4e5f6a7b",
    "data": [
        {
            "id": "urn:ngsi-ld:WaterLevelSensor:upstream-001",
            "type": "WaterLevelSensor",
            "waterLevel": {
                "type": "Number",
                "value": 342,
                "metadata": {"TimeInstant": {"type": "DateTime", "value": "2026-11-21T12:30:00.000Z"}},
            },
            "TimeInstant": {"type": "DateTime", "value": "2026-11-21T12:31:00.000Z", "metadata": {}},
        },
        {"id": "urn:ngsi-ld:Thing:unrelated", "type": "Thing", "temperature": {"type": "Number", "value": 20}},
    ],
}
KEY_VALUES = {
    "subscriptionId": "5f9b2c1e0a1b2c3d4e5f6a7b",
    "data": [
        {"id": "rain-gw-7", "type": "RainGauge", "rainfall": "4.5", "observedAt": "2026-11-21T21:40:00+09:00"},
        {"id": "rain-gw-8", "type": "RainGauge", "rainfall": 2.0, "observedAt": "2026-11-21T21:40:00+09:00"},
    ],
}


@pytest.fixture
def mappings(basin):
    return [
        NotifyMapping.objects.create(
            entity_id="urn:ngsi-ld:WaterLevelSensor:upstream-001", entity_type="WaterLevelSensor",
            attribute="waterLevel", station=basin["a-public"], scale=0.01,
        ),
        NotifyMapping.objects.create(
            entity_id_pattern=r"rain-gw-\d+", entity_type="RainGauge", attribute="rainfall",
            station=basin["a-rain"], time_attribute="observedAt",
        ),
        # Points at town B's station: a town A gateway may never feed it.
        NotifyMapping.objects.create(
            entity_id="urn:ngsi-ld:Thing:unrelated", attribute="temperature", station=basin["b-public"],
        ),
    ]


def post(client, body, token=None, **extra):
    raw = body if isinstance(body, (str, bytes)) else json.dumps(body)
    headers = bearer(token) if token else {}
    return client.post(URL, data=raw, content_type="application/json", **headers, **extra)


def ngsi_rows():
    return sorted(Observation.objects.filter(source="ngsi").values_list("station__code", "observed_at", "value"))


def test_normalized_notification_is_ingested_through_the_mapping(client, mappings, token_a):
    response = post(client, NORMALIZED, token_a, HTTP_NGSIV2_ATTRSFORMAT="normalized", HTTP_FIWARE_SERVICE="neighbour")
    assert response.status_code == 200, response.content
    assert response.json() == {
        "subscriptionId": "5f9b2c1e0a1b2c3d4e5f6a7b",
        "accepted": 1,
        "duplicates": 0,
        "rejected": [],
        "unmapped": [{"id": "urn:ngsi-ld:Thing:unrelated", "type": "Thing"}],
    }
    # 342 cm -> 3.42 m, at the attribute's TimeInstant.
    assert ngsi_rows() == [("A-PUBLIC", datetime(2026, 11, 21, 12, 30, tzinfo=timezone.utc), 3.42)]
    assert StationState.objects.get(station__code="A-PUBLIC").level == 2
    again = post(client, NORMALIZED, token_a)
    assert again.json()["duplicates"] == 1 and len(ngsi_rows()) == 1


def test_key_values_notification_with_an_id_pattern_and_a_time_attribute(client, mappings, token_a):
    response = post(client, KEY_VALUES, token_a, HTTP_NGSIV2_ATTRSFORMAT="keyValues")
    assert response.status_code == 200, response.content
    assert (response.json()["accepted"], response.json()["duplicates"]) == (1, 1)
    at = datetime(2026, 11, 21, 12, 40, tzinfo=timezone.utc)
    # Two gateways of one pattern map onto the same station and time: one reading, one duplicate.
    assert ngsi_rows() == [("A-RAIN", at, 4.5)]


def test_format_is_detected_without_the_header(client, mappings, token_a):
    assert post(client, KEY_VALUES, token_a).json()["accepted"] == 1
    assert post(client, NORMALIZED, token_a).json()["accepted"] == 1


def test_only_mappings_onto_the_tokens_own_stations_apply(client, mappings, token_b):
    response = post(client, NORMALIZED, token_b)
    assert response.status_code == 200
    # Town A's mapping is not town B's business: reported as unmapped, like an unknown entity.
    assert response.json()["unmapped"] == [{"id": "urn:ngsi-ld:WaterLevelSensor:upstream-001", "type": "WaterLevelSensor"}]
    assert response.json()["accepted"] == 1
    assert [row[0] for row in ngsi_rows()] == ["B-PUBLIC"]


def test_a_mapping_to_another_towns_station_is_not_applied(client, mappings, token_a):
    body = {"data": [{"id": "urn:ngsi-ld:Thing:unrelated", "type": "Thing", "temperature": {"value": 1.0}}]}
    report = post(client, body, token_a).json()
    assert (report["accepted"], report["unmapped"]) == (0, [{"id": "urn:ngsi-ld:Thing:unrelated", "type": "Thing"}])
    assert not Observation.objects.filter(station__code="B-PUBLIC", source="ngsi").exists()


def test_bad_values_are_reported_per_entity(client, mappings, token_a):
    body = {"data": [
        {"id": "rain-gw-1", "type": "RainGauge", "rainfall": "heavy", "observedAt": "2026-11-21T21:40:00+09:00"},
        {"id": "rain-gw-2", "type": "RainGauge", "rainfall": 500, "observedAt": "2026-11-21T21:40:00+09:00"},
        {"id": "rain-gw-3", "type": "RainGauge", "observedAt": "2026-11-21T21:40:00+09:00"},
        {"id": "rain-gw-4", "type": "RainGauge", "rainfall": 1.0},
        {"id": "rain-gw-5", "type": "RainGauge", "rainfall": 1.0, "observedAt": "soon"},
        {"id": "rain-gw-6", "type": "OtherType", "rainfall": 1.0, "observedAt": "2026-11-21T21:40:00+09:00"},
        {"id": "rain-gw-7", "type": "RainGauge", "rainfall": "1e999", "observedAt": "2026-11-21T21:40:00+09:00"},
    ]}
    report = post(client, body, token_a, HTTP_NGSIV2_ATTRSFORMAT="keyValues").json()
    assert report["accepted"] == 1  # 500 mm in 10 minutes: kept, flagged "range" (docs/api.md)
    assert [(r["entity"], r["error"].split(" ")[0]) for r in report["rejected"]] == [
        ("rain-gw-1", "value"), ("rain-gw-3", "attribute"), ("rain-gw-4", "time"), ("rain-gw-7", "value"),
        ("rain-gw-5", "'observed_at'"),
    ]
    assert report["unmapped"] == [{"id": "rain-gw-6", "type": "OtherType"}]
    assert list(Observation.objects.filter(source="ngsi").values_list("value", "quality")) == [(500.0, "range")]


@pytest.mark.parametrize(
    "body, headers, status",
    [
        ("{not json", {}, 400),
        ("[]", {}, 400),
        ('{"subscriptionId": "x"}', {}, 400),
        ('{"data": {}}', {}, 400),
        ('{"data": [1]}', {}, 400),
        ('{"data": [{"type": "T"}]}', {}, 400),
        ('{"data": [{"id": 5}]}', {}, 400),
        ('{"subscriptionId": 7, "data": []}', {}, 400),
        ('{"data": []}', {"HTTP_NGSIV2_ATTRSFORMAT": "legacy"}, 400),
        ('{"data": [{"id": "a", "v": NaN}]}', {}, 400),
    ],
)
def test_malformed_notifications_store_nothing(client, mappings, token_a, body, headers, status):
    response = post(client, body, token_a, **headers)
    assert response.status_code == status
    assert response.json()["error"] == "BadRequest"
    assert ngsi_rows() == []


def test_the_receiver_needs_a_gateway_token(client, mappings, user_a):
    assert post(client, NORMALIZED).status_code == 401
    client.force_login(user_a)
    assert post(client, NORMALIZED).status_code == 403
    assert ngsi_rows() == []


def test_oversized_notification(client, mappings, token_a, settings):
    settings.NGSI_MAX_BODY_BYTES = 200
    response = post(client, NORMALIZED, token_a)
    assert (response.status_code, response.json()["error"]) == (413, "RequestEntityTooLarge")


def test_mapping_validation(basin):
    for fields in ({"entity_id": "a", "entity_id_pattern": "a"}, {}, {"entity_id_pattern": "(a+)+"},
                   {"entity_id": "a", "scale": 0.0}, {"entity_id": "a", "scale": float("nan")}):
        mapping = NotifyMapping(attribute="x", station=basin["a-public"], **fields)
        with pytest.raises(ValidationError):
            mapping.full_clean()
    NotifyMapping(entity_id="a", attribute="x", station=basin["a-public"]).full_clean()
