"""`GET /api/v1/stations?at=` is written from JSON text each process keeps per station and language
(sensors.selectors.FeatureJson) with only the time-dependent properties encoded per request. These
tests hold it to the bytes the API's renderer makes of the as-of dicts (`station_feature_collection_at`),
to every edit of what it keeps (no stale answer), and to who-sees-what."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import translation
from rest_framework.renderers import JSONRenderer

from sensors.models import Observation, SharingGrant, Station, StationKind, Threshold, Visibility
from sensors.selectors import station_feature_collection_at
from sensors.services import (
    from_micros,
    from_micros_many,
    sharing_grant,
    sharing_withdraw,
    station_visibility_set,
    threshold_set,
    to_micros,
)
from tenancy.selectors import ANONYMOUS, viewer_for_user
from tests.conftest import make_station

from .conftest import ingest


def answer_at(client, moment, **query):
    return client.get("/api/v1/stations", {"at": moment.isoformat(), **query})


def features_at(client, moment, **query) -> dict[str, dict]:
    response = answer_at(client, moment, **query)
    assert response.status_code == 200, response.content
    return {f["id"]: f["properties"] for f in response.json()["features"]}


def rendered(viewer, moment, lang="ja", **filters) -> bytes:
    """What the API's renderer writes of the as-of dicts: the answer before it was written from text."""
    with translation.override(lang):
        return JSONRenderer().render(station_feature_collection_at(viewer=viewer, at=moment, **filters))


def add_readings(station, rows, received_at) -> None:
    Observation.objects.bulk_create(
        Observation(
            station=station, observed_at=at, value=value, quality=quality, received_at=received_at, source="import"
        )
        for at, value, quality in rows
    )


@pytest.fixture
def varied(towns, stations, clock):
    """Stations of every kind and state the map shows: readings flagged, rain totals, a revised
    threshold, never a reading, names that JSON must escape; readings every 10 minutes for 2 hours."""
    town_a, town_b = towns
    now = clock.now
    river = stations["a-public"]
    rain = make_station(town_a, "A-RAIN", kind=StationKind.RAIN, visibility=Visibility.REGION)
    tide = make_station(town_b, "B-TIDE", kind=StationKind.TIDE, visibility=Visibility.PUBLIC, datum="T.P.")
    reservoir = make_station(
        town_b,
        "B-DAM",
        kind=StationKind.RESERVOIR,
        visibility=Visibility.PUBLIC,
        expected_interval=timedelta(minutes=10),
    )
    odd = make_station(
        town_a, "A-ODD", visibility=Visibility.PUBLIC, river_name="川\u2029名", lon=-0.0, lat=89.99999999999
    )
    Station.objects.filter(pk=odd.pk).update(name_ja='引用"符\\と\u2028改行</script>', name_en='Gauge 🌊 \u00e9\t"q"')
    make_station(town_a, "A-SILENT", visibility=Visibility.PUBLIC)  # never reported
    steps = [now - timedelta(minutes=120 - 10 * i) for i in range(13)]
    add_readings(
        river, [(at, 2.0 + i / 10, "ok") for i, at in enumerate(steps[:-1])] + [(steps[-1], 9.5, "range")], now
    )
    add_readings(rain, [(at, [0.0, 2.5, 6.5, 12.0, 14.0][i % 5], "ok") for i, at in enumerate(steps)], now)
    add_readings(tide, [(at, 1.0 + (i % 4) / 3, "ok") for i, at in enumerate(steps)], now)
    add_readings(reservoir, [(at, 50.0 + i, "ok") for i, at in enumerate(steps[:6])], now)  # then silent: stale
    add_readings(odd, [(at, 3.55, "suspect" if i == 5 else "ok") for i, at in enumerate(steps)], now)
    # A revised threshold: the level and the listed value of a moment are those in force then.
    clock.now = now - timedelta(minutes=55)
    threshold_set(threshold=Threshold.objects.get(station=river, name="flood_caution"), value=2.4)
    clock.now = now
    return {
        "moments": [now - timedelta(minutes=m) for m in (180, 90, 56, 55, 54, 30, 0)] + [steps[3]],
        "river": river,
        "rain": rain,
        "odd": odd,
    }


def test_the_written_map_is_byte_for_byte_what_the_renderer_makes_of_it(client, varied, towns, user_a):
    admin = get_user_model().objects.create_superuser("root", password="pw-root-123")
    viewers = [(None, ANONYMOUS), (user_a, viewer_for_user(user_a)), (admin, viewer_for_user(admin))]
    compared = 0
    for user, viewer in viewers:
        client.logout()
        if user:
            client.force_login(user)
        for moment in varied["moments"]:
            for lang in ("ja", "en"):
                response = client.get("/api/v1/stations", {"at": moment.isoformat()}, HTTP_ACCEPT_LANGUAGE=lang)
                assert response.status_code == 200
                assert response["Content-Type"] == "application/geo+json"
                assert response.content == rendered(viewer, moment, lang)
                compared += 1
        for filters in ({"kind": "rain"}, {"municipality": "town-b"}, {"kind": "river", "municipality": "town-a"}):
            moment = varied["moments"][-2]
            assert answer_at(client, moment, **filters).content == rendered(viewer, moment, **filters)
    assert compared == 3 * 8 * 2
    # The comparison went through what must be escaped and every kind of moving value.
    client.force_login(admin)
    body = answer_at(client, varied["moments"][-2]).content
    assert b'\\"' in body and b"\\\\" in body and b"\\u2028" in body and b"\\u2029" in body
    assert "\u2028".encode() not in body and "🌊".encode() in body
    props = features_at(client, varied["moments"][-2])
    assert props["A-PUBLIC"]["quality"] == "range" and props["A-PUBLIC"]["unconfirmed_level"] == 5
    assert props["A-RAIN"]["rain_hour_total"] > 0 and props["A-RAIN"]["accumulations"]
    assert props["B-DAM"]["stale"] is True and props["A-SILENT"]["value"] is None
    assert props["A-ODD"]["name_ja"] == '引用"符\\と\u2028改行</script>'


def test_a_revised_threshold_is_written_with_the_value_in_force_at_each_moment(client, varied):
    def flood_caution(moment):
        thresholds = features_at(client, moment)["A-PUBLIC"]["thresholds"]
        return next(t["value"] for t in thresholds if t["name"] == "flood_caution")

    moments = varied["moments"]
    # Back and forth across the revision: what is kept per set of values never answers for another.
    assert [flood_caution(moments[i]) for i in (2, 4, 6, 3, 2, 0)] == [3.0, 2.4, 2.4, 2.4, 3.0, 3.0]


def test_indented_json_asked_for_is_still_rendered(client, varied):
    moment = varied["moments"][-1]
    compact = answer_at(client, moment)
    indented = client.get("/api/v1/stations", {"at": moment.isoformat()}, HTTP_ACCEPT="application/json; indent=2")
    assert indented.status_code == 200 and b'\n  "type": "FeatureCollection"' in indented.content
    assert json.loads(indented.content) == json.loads(compact.content)
    table = client.get("/api/v1/stations", {"at": moment.isoformat(), "format": "csv"})
    assert table.status_code == 200 and "A-PUBLIC" in table.content.decode()


def test_what_is_kept_follows_every_edit_of_station_threshold_and_visibility(client, stations, towns, clock, user_b):
    ingest("A-PUBLIC", clock.now - timedelta(minutes=5), 2.5)
    moment = clock.now
    station = stations["a-public"]
    assert features_at(client, moment)["A-PUBLIC"]["name_ja"] == "A-PUBLIC 観測所"  # kept from here on

    Station.objects.filter(pk=station.pk).update(name_ja="新しい名前", lon=141.5)  # no save(): the triggers see it
    answer = answer_at(client, moment).json()
    feature = next(f for f in answer["features"] if f["id"] == "A-PUBLIC")
    assert (feature["properties"]["name"], feature["geometry"]["coordinates"]) == ("新しい名前", [141.5, 35.0])

    Threshold.objects.filter(station=station, name="flooding").update(label_ja="氾濫発生（改）")
    listed = features_at(client, moment)["A-PUBLIC"]["thresholds"]
    assert "氾濫発生（改）" in [t["label_ja"] for t in listed]

    clock.advance(minutes=1)
    threshold_set(threshold=Threshold.objects.get(station=station, name="flood_caution"), value=2.2)
    clock.advance(minutes=1)
    props = features_at(client, clock.now)["A-PUBLIC"]
    assert (next(t["value"] for t in props["thresholds"] if t["name"] == "flood_caution"), props["level"]) == (2.2, 2)
    props = features_at(client, moment)["A-PUBLIC"]  # before the revision: the value of then
    assert (next(t["value"] for t in props["thresholds"] if t["name"] == "flood_caution"), props["level"]) == (3.0, 0)

    station_visibility_set(station=Station.objects.get(code="A-REGION"), visibility=Visibility.PUBLIC)
    assert features_at(client, moment)["A-REGION"]["visibility"] == "public"
    station_visibility_set(station=Station.objects.get(code="A-REGION"), visibility=Visibility.PRIVATE)
    assert "A-REGION" not in features_at(client, moment)
    client.force_login(user_b)
    assert "A-REGION" not in features_at(client, moment)


def test_sharing_granted_and_withdrawn_reaches_the_written_map(client, stations, towns, clock, user_b):
    moment = clock.now
    client.force_login(user_b)
    assert {"A-SHARED", "A-REGION", "A-PUBLIC"} <= set(features_at(client, moment))
    assert "A-PRIVATE" not in features_at(client, moment)

    sharing_withdraw(grant=SharingGrant.objects.get(station=stations["a-shared"]))  # no station row written
    assert "A-SHARED" not in features_at(client, moment)

    sharing_grant(grantee=towns[1], station=stations["a-private"])
    props = features_at(client, moment)
    assert props["A-PRIVATE"]["visibility"] == "shared"
    assert "A-SHARED" not in props


def test_a_town_never_sees_another_towns_private_station_through_the_as_of_map(client, stations, towns, clock, user_a):
    for code in ("A-PRIVATE", "B-PRIVATE", "B-SHARED"):
        ingest(code, clock.now - timedelta(minutes=5), 3.7)
    moment = clock.now
    # A platform admin's read first: the process's copy then holds B-PRIVATE's text too.
    admin = get_user_model().objects.create_superuser("root", password="pw-root-123")
    client.force_login(admin)
    assert "B-PRIVATE" in features_at(client, moment)

    client.force_login(user_a)
    for query in ({}, {"municipality": "town-b"}, {"kind": "river"}):
        body = answer_at(client, moment, **query).content
        assert b"B-PRIVATE" not in body, query
    assert set(features_at(client, moment, municipality="town-b")) == {"B-SHARED", "B-REGION", "B-PUBLIC"}
    client.logout()
    assert set(features_at(client, moment)) == {"A-PUBLIC", "B-PUBLIC"}
    assert b"PRIVATE" not in answer_at(client, moment).content


@pytest.mark.parametrize("micros", [0, 1, -1, 1_795_907_100_123_456, -86_400_000_001, 253_402_300_799_999_999])
def test_times_from_microseconds_in_bulk_equal_one_by_one(micros):
    assert list(from_micros_many([micros, micros])) == [from_micros(micros)] * 2
    assert to_micros(next(from_micros_many([micros]))) == micros


def test_the_written_map_takes_a_fixed_number_of_queries_whatever_the_stations(client, towns, stations, clock):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def queries_for_the_map() -> int:
        answer_at(client, clock.now)  # loads the process's as-of catalog after the stations changed
        with CaptureQueriesContext(connection) as queries:
            features = features_at(client, clock.now)
        assert all(props["value"] is not None for props in features.values())
        return len(queries)

    for code in ("A-PUBLIC", "B-PUBLIC"):
        ingest(code, clock.now - timedelta(minutes=5), 2.5)
    few = queries_for_the_map()
    for index in range(20):
        make_station(towns[index % 2], f"X-{index}", visibility=Visibility.PUBLIC)
        ingest(f"X-{index}", clock.now - timedelta(minutes=5 + index), 2.0 + index / 10)
    # The visible ids, the catalog stamp, the readings.
    assert queries_for_the_map() == few <= 6, few
