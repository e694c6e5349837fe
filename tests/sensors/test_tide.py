"""Tide gauges (潮位): a station kind of its own, through ingestion, levels, alerts, the map and NGSI."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from alerts.models import Alert, AlertRule
from alerts.rules import default_rules
from alerts.vocabulary import RESERVED_WORDS
from dashboard.maps import KINDS, SHAPES
from sensors.models import Observation, StationKind, StationState, Visibility
from tests.alerts.conftest import level_scheme, minute_now  # noqa: F401 - the level scheme fixture
from tests.conftest import make_station

URL = "/api/v1/observations"


@pytest.fixture
def tide(towns):
    return make_station(towns[0], "A-TIDE", kind=StationKind.TIDE, datum="T.P.", river_name="水森湾")


def post(client, token, items):
    return client.post(URL, data=json.dumps({"observations": items}), content_type="application/json",
                       HTTP_AUTHORIZATION=f"Bearer {token}")


def reading(at, value, code="A-TIDE"):
    return {"station": code, "observed_at": at.isoformat(), "value": value}


def test_a_tide_reading_is_ingested_and_sets_the_level_of_its_thresholds(client, tide, token_a):
    at = minute_now()
    response = post(client, token_a, [reading(at, 1.35)])
    assert response.json() == {"accepted": 1, "duplicates": 0, "rejected": []}
    state = StationState.objects.get(station=tide)
    assert (state.value, state.level) == (1.35, 2)  # above 高潮注意潮位 (1.2 m T.P.), below 警戒 (1.8)


def test_physically_impossible_tide_levels_are_stored_flagged_range(client, tide, token_a):
    at = minute_now()
    response = post(client, token_a, [reading(at, 31.0), reading(at + timedelta(minutes=1), -15.5),
                                      reading(at + timedelta(minutes=2), -2.1)])
    body = response.json()
    # Out of the tide kind's range (-15 to 30 m): kept with a reason flag, never a level (issue 11).
    assert (body["accepted"], body["rejected"]) == (3, [])
    stored = list(Observation.objects.order_by("observed_at").values_list("value", "quality"))
    # A spring low tide below the datum is real and kept as ok.
    assert stored == [(31.0, "range"), (-15.5, "range"), (-2.1, "ok")]


def test_a_tide_gauge_has_threshold_and_stale_rules_but_no_rate_of_rise(tide):
    rules = default_rules(tide, list(tide.thresholds.all()))
    assert sorted(rule.kind for rule in rules) == [AlertRule.Kind.STALE, AlertRule.Kind.THRESHOLD]
    threshold_rule = next(rule for rule in rules if rule.kind == AlertRule.Kind.THRESHOLD)
    assert threshold_rule.hysteresis == 0.2


def test_a_storm_surge_opens_an_alert_in_gauge_words(client, tide, token_a, django_capture_on_commit_callbacks):
    at = minute_now() - timedelta(minutes=20)
    with django_capture_on_commit_callbacks(execute=True):
        post(client, token_a, [reading(at, 1.9)])
    with django_capture_on_commit_callbacks(execute=True):
        post(client, token_a, [reading(at + timedelta(minutes=10), 2.5)])
    alert = Alert.objects.get(station=tide, state="open")
    assert alert.level == 4  # 高潮危険潮位: level 4 and up is raised by the first reading
    document = client.get(f"/api/v1/alerts/{alert.pk}").json()
    text = json.dumps(document, ensure_ascii=False)
    assert "警戒レベル4相当" in text, text
    assert [word for word in RESERVED_WORDS if word in text] == []
    cap = client.get(f"/api/v1/alerts/{alert.pk}/cap").content.decode()
    assert "<event>潮位</event>" in cap
    assert [word for word in RESERVED_WORDS if word in cap] == []


def test_the_map_feature_and_the_symbol(client, tide, towns):
    make_station(towns[0], "A-TIDE-PRIVATE", kind=StationKind.TIDE, visibility=Visibility.PRIVATE)
    features = client.get("/api/v1/stations", {"kind": "tide"}).json()["features"]
    assert [feature["id"] for feature in features] == ["A-TIDE"]  # the private one stays with its town
    properties = features[0]["properties"]
    assert (properties["kind"], properties["unit"], properties["datum"]) == ("tide", "m", "T.P.")
    assert [t["label_ja"] for t in properties["thresholds"]] == ["高潮注意潮位", "高潮警戒潮位", "高潮危険潮位"]
    shape = KINDS["tide"].shape
    assert shape not in {style.shape for kind, style in KINDS.items() if kind != "tide"}
    # The public page's legend draws the shape, and hands it to stations.js in the map vocabulary.
    page = client.get("/").content.decode()
    vocabulary = json.loads(page.split('id="mz-map-vocabulary" type="application/json">')[1].split("</script>")[0])
    assert vocabulary["kinds"]["tide"] == {"shape": shape, "name": ["潮位", "Tide level"]}
    assert vocabulary["shapes"][shape]["attributes"] == SHAPES[shape][1]


def test_the_public_snapshot_carries_the_tide_layer(client, tide):
    snapshot = client.get("/api/v1/public/snapshot").json()
    assert "tide" in snapshot["layers"]
    assert [f["id"] for f in snapshot["features"] if f["properties"]["kind"] == "tide"] == ["A-TIDE"]


def test_the_ngsi_entity_is_water_observed_with_a_tide_measurand(client, tide, token_a):
    post(client, token_a, [reading(minute_now(), 0.84)])
    entity = client.get("/ngsi/v2/entities/urn:ngsi-ld:WaterObserved:A-TIDE").json()
    assert entity["type"] == "WaterObserved"
    assert entity["height"]["value"] == 0.84
    assert entity["height"]["metadata"] == {
        "unitCode": {"type": "Text", "value": "MTR"},
        "measurand": {"type": "Text", "value": "tideLevel"},
        "referenceDatum": {"type": "Text", "value": "T.P."},
    }
    written = client.patch("/ngsi/v2/entities/urn:ngsi-ld:WaterObserved:A-TIDE/attrs?options=keyValues",
                           data=json.dumps({"height": 0.91, "dateObserved": (minute_now() + timedelta(minutes=1)).isoformat()}),
                           content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token_a}")
    assert written.status_code == 204, written.content
    assert StationState.objects.get(station=tide).value == 0.91


def test_the_station_page_charts_the_tide_level_with_its_thresholds(client, tide, token_a):
    post(client, token_a, [reading(minute_now() - timedelta(minutes=10), 0.6), reading(minute_now(), 0.7)])
    page = client.get("/stations/A-TIDE/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "潮位の推移" in html and "高潮注意潮位" in html
    assert [word for word in RESERVED_WORDS if word in html] == []
