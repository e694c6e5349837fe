"""GET /api/v1/stations and /api/v1/stations/<code>/observations: only what the caller may see."""

import csv
import io
from datetime import datetime, timedelta, timezone

import pytest
from django.utils import timezone as dj_timezone

from sensors.models import Station, StationKind
from sensors.services import observation_ingest
from tests.conftest import make_station, response_bytes

NOW = dj_timezone.now().replace(microsecond=0)


def ingest(code, minutes_ago, value):
    report = observation_ingest(
        municipality=None,
        items=[{"station": code, "observed_at": NOW - timedelta(minutes=minutes_ago), "value": value}],
        source="http",
    )
    assert report.accepted == 1, report.as_dict()


def codes(response):
    assert response.status_code == 200, response.content
    return sorted(feature["properties"]["code"] for feature in response.json()["features"])


def test_anonymous_sees_public_stations_only(client, stations):
    assert codes(client.get("/api/v1/stations")) == ["A-PUBLIC", "B-PUBLIC"]


def test_town_user_sees_own_private_region_and_public(client, stations, user_a):
    client.force_login(user_a)
    assert codes(client.get("/api/v1/stations")) == [
        "A-PRIVATE", "A-PUBLIC", "A-REGION", "A-SHARED", "B-PUBLIC", "B-REGION", "B-SHARED",
    ]


def test_gateway_token_reads_as_its_town(client, stations, token_b):
    response = client.get("/api/v1/stations", HTTP_AUTHORIZATION=f"Bearer {token_b}")
    assert codes(response) == ["A-PUBLIC", "A-REGION", "A-SHARED", "B-PRIVATE", "B-PUBLIC", "B-REGION", "B-SHARED"]


def test_feature_shape_follows_the_contract(client, stations):
    ingest("A-PUBLIC", 5, 3.6)
    response = client.get("/api/v1/stations?municipality=town-a")
    assert response["Content-Type"] == "application/geo+json"
    (feature,) = response.json()["features"]
    assert feature["type"] == "Feature"
    assert feature["geometry"] == {"type": "Point", "coordinates": [140.0, 35.0]}
    props = feature["properties"]
    assert {k: props[k] for k in ("code", "kind", "municipality", "unit", "value", "level", "stale", "visibility")} == {
        "code": "A-PUBLIC", "kind": "river", "municipality": "town-a", "unit": "m", "value": 3.6, "level": 3,
        "stale": False, "visibility": "public",
    }
    assert datetime.fromisoformat(props["observed_at"]) == NOW - timedelta(minutes=5)
    assert props["observed_at"].endswith("+09:00")
    assert [(t["name"], t["level"], t["value"]) for t in props["thresholds"]] == [
        ("standby", None, 2.0), ("flood_caution", 2, 3.0), ("evacuation_decision", 3, 3.5),
        ("flood_danger", 4, 4.0), ("flooding", 5, 5.0),
    ]
    assert props["name"] and props["name_ja"] and props["name_en"]


def test_station_without_data_has_null_level_and_is_stale(client, stations):
    props = client.get("/api/v1/stations?municipality=town-b").json()["features"][0]["properties"]
    assert (props["value"], props["observed_at"], props["level"], props["stale"]) == (None, None, None, True)


def test_stale_after_twice_the_expected_interval_unless_event_reporting(client, towns):
    make_station(towns[0], "OLD")
    make_station(towns[0], "EVENT", expected_interval=None)
    ingest("OLD", 25, 1.0)
    ingest("EVENT", 600, 1.0)
    stale = {f["properties"]["code"]: f["properties"]["stale"] for f in client.get("/api/v1/stations").json()["features"]}
    assert stale == {"OLD": True, "EVENT": False}


def test_rain_level_uses_the_one_hour_total(client, towns):
    make_station(towns[0], "RAIN", kind=StationKind.RAIN)
    for minutes_ago, amount in [(70, 25.0), (50, 10.0), (40, 10.0), (30, 10.0), (10, 5.0)]:
        ingest("RAIN", minutes_ago, amount)
    props = client.get("/api/v1/stations?kind=rain").json()["features"][0]["properties"]
    # 10 + 10 + 10 + 5 within the hour; the 25 mm 70 minutes ago is outside it.
    assert props["accumulations"] == {"3600": 35.0}
    assert props["level"] == 3


def test_filters_are_validated(client, stations):
    response = client.get("/api/v1/stations?kind=volcano")
    assert response.status_code == 400
    assert "kind" in response.json()
    assert codes(client.get("/api/v1/stations?municipality=no-such-town")) == []


def test_observations_json_default_window_is_last_24_hours(client, stations):
    ingest("A-PUBLIC", 60 * 25, 1.0)
    ingest("A-PUBLIC", 30, 1.5)
    ingest("A-PUBLIC", 10, 2.0)
    body = client.get("/api/v1/stations/A-PUBLIC/observations").json()
    assert body["station"] == "A-PUBLIC" and body["unit"] == "m"
    assert [o["value"] for o in body["observations"]] == [1.5, 2.0]
    assert all(o["quality"] == "ok" for o in body["observations"])


def test_observations_since_until_and_csv(client, stations):
    for minutes_ago, value in [(50, 1.0), (40, 1.1), (30, 1.2), (20, 1.3)]:
        ingest("A-PUBLIC", minutes_ago, value)
    since = (NOW - timedelta(minutes=45)).astimezone(timezone(timedelta(hours=9))).isoformat()
    until = (NOW - timedelta(minutes=25)).isoformat()
    response = client.get("/api/v1/stations/A-PUBLIC/observations", {"since": since, "until": until, "format": "csv"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response_bytes(response).decode())))
    assert rows[0] == ["station", "observed_at", "value", "quality"]
    assert [(r[0], float(r[2])) for r in rows[1:]] == [("A-PUBLIC", 1.1), ("A-PUBLIC", 1.2)]


def test_unencoded_plus_in_query_time_is_understood(client, stations):
    ingest("A-PUBLIC", 10, 1.0)
    since = (NOW - timedelta(hours=1)).astimezone(timezone(timedelta(hours=9))).isoformat()
    response = client.get(f"/api/v1/stations/A-PUBLIC/observations?since={since}")
    assert response.status_code == 200, response.content
    assert len(response.json()["observations"]) == 1


@pytest.mark.parametrize(
    "query, field",
    [
        ("since=tomorrow", "since"),
        ("since=2026-11-21T10:00:00", "since"),
        ("until=2026-13-01T00:00:00Z", "until"),
        ("since=2026-11-21T10:00:00Z&until=2026-11-20T10:00:00Z", "since"),
        ("since=2020-01-01T00:00:00Z&until=2026-01-01T00:00:00Z", "since"),
        ("format=xml", "format"),
        ("since=" + "9" * 5000, "since"),
    ],
)
def test_bad_observation_queries_are_400_with_the_field_named(client, stations, query, field):
    response = client.get(f"/api/v1/stations/A-PUBLIC/observations?{query}")
    assert response.status_code == 400
    assert field in response.json()


@pytest.mark.parametrize("code", ["A-PRIVATE", "A-REGION", "NO-SUCH-STATION"])
def test_hidden_and_missing_stations_are_the_same_404_for_anonymous(client, stations, code):
    for fmt in ("json", "csv"):
        response = client.get(f"/api/v1/stations/{code}/observations?format={fmt}")
        assert response.status_code == 404
        assert response.json() == {"detail": "No station with this code."}


def test_other_towns_private_history_is_404_for_a_town_user(client, stations, user_a):
    ingest("B-PRIVATE", 10, 1.0)
    client.force_login(user_a)
    assert client.get("/api/v1/stations/B-PRIVATE/observations").status_code == 404
    assert client.get("/api/v1/stations/B-REGION/observations").status_code == 200
    assert client.get("/api/v1/stations/A-PRIVATE/observations").status_code == 200


def test_other_towns_private_history_is_the_same_404_through_every_format(client, stations, user_a, token_a):
    # The history reads the station alone (visible_station_get), not through the station list: the
    # visibility rule must still hold for every door and format, and the refusal must not tell
    # "hidden" from "missing" (no name, unit or reading of the hidden station in it).
    ingest("B-PRIVATE", 10, 4.25)
    b_private = Station.objects.get(code="B-PRIVATE")
    Station.objects.filter(code="A-PUBLIC").update(is_active=False)  # a retired station is not served either
    doors = [({}, None), ({"HTTP_AUTHORIZATION": f"Bearer {token_a}"}, None), ({}, user_a)]
    for headers, user in doors:
        client.logout()
        if user:
            client.force_login(user)
        for code in ("B-PRIVATE", "A-PUBLIC", "NO-SUCH-STATION", "B-PRIVATE%00"):
            for fmt in ("json", "csv", "xml"):
                response = client.get(f"/api/v1/stations/{code}/observations?format={fmt}", **headers)
                body = response_bytes(response)
                if fmt == "xml":
                    assert response.status_code == 400, (code, headers, user)
                    continue
                assert response.status_code == 404, (code, fmt, headers, user)
                assert response.json() == {"detail": "No station with this code."}
                assert b"4.25" not in body and b_private.name_en.encode() not in body


def test_history_reads_the_station_and_its_rows_in_two_queries(client, stations, django_assert_num_queries):
    for minutes in range(30):
        ingest("A-PUBLIC", minutes, 1.0 + minutes / 10)
    for fmt in ("json", "csv"):
        with django_assert_num_queries(2):  # the visible station, its readings
            response = client.get(f"/api/v1/stations/A-PUBLIC/observations?format={fmt}")
            assert response.status_code == 200
            body = response_bytes(response)
        assert body.count(b"+09:00") >= 30


def test_station_list_query_count_does_not_grow_with_stations(client, towns, django_assert_max_num_queries):
    for i in range(40):
        make_station(towns[0], f"S{i:02d}")
        ingest(f"S{i:02d}", 5, 1.0)
    with django_assert_max_num_queries(4):
        assert len(codes(client.get("/api/v1/stations"))) == 40


def test_openapi_schema_documents_the_endpoints(client):
    response = client.get("/api/schema/?format=json")
    assert response.status_code == 200
    paths = response.json()["paths"] if response["Content-Type"].startswith("application/json") else None
    if paths is None:
        import yaml

        paths = yaml.safe_load(response.content)["paths"]
    assert {"/api/v1/observations", "/api/v1/stations", "/api/v1/stations/{code}/observations"} <= set(paths)


def test_station_export_as_csv_lists_what_the_caller_may_see(client, stations, user_a):
    ingest("A-PUBLIC", 5, 3.6)
    response = client.get("/api/v1/stations?format=csv")
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0][:4] == ["code", "name_ja", "name_en", "kind"]
    assert sorted(row[0] for row in rows[1:]) == ["A-PUBLIC", "B-PUBLIC"]
    client.force_login(user_a)
    rows = list(csv.reader(io.StringIO(client.get("/api/v1/stations?format=csv").content.decode())))
    assert "A-PRIVATE" in {row[0] for row in rows} and "B-PRIVATE" not in {row[0] for row in rows}
    assert client.get("/api/v1/stations?format=xlsx").status_code == 400


def test_csv_export_defuses_spreadsheet_formulas(client, towns):
    station = make_station(towns[0], "F-1", visibility="public")
    Station.objects.filter(pk=station.pk).update(name_en='=HYPERLINK("http://evil")')
    rows = list(csv.reader(io.StringIO(client.get("/api/v1/stations?format=csv").content.decode())))
    assert rows[1][2].startswith("'=")
