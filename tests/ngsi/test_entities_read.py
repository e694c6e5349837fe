"""Reading entities: version, the entity shape, every list filter, paging and formats."""

import pytest

from tests.ngsi.conftest import NGSI, NOT_FOUND, bearer, codes, entity_id

pytestmark = pytest.mark.django_db


def get(client, path, token=None, **extra):
    headers = bearer(token) if token else {}
    return client.get(path, **headers, **extra)


def listed(client, token=None, **params):
    response = get(client, f"{NGSI}/entities", token, data={"limit": 1000, **params})
    assert response.status_code == 200, response.content
    return codes(response.json())


def test_version_is_orion_shaped(client, db):
    response = client.get("/ngsi/version")
    assert response.status_code == 200
    orion = response.json()["orion"]
    assert set(orion) == {"version", "uptime", "git_hash", "compile_time", "compiled_by", "compiled_in",
                          "release_date", "doc"}
    major, minor, _ = (int(part) for part in orion["version"].split("."))
    assert (major, minor) >= (3, 6)  # what NGSI clients such as filip require
    assert orion["uptime"].endswith(" s")


def test_a_river_gauge_as_a_normalized_water_observed_entity(client, basin):
    response = client.get(f"{NGSI}/entities/{entity_id('A-PUBLIC')}")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    entity = response.json()
    assert entity["id"] == "urn:ngsi-ld:WaterObserved:A-PUBLIC"
    assert entity["type"] == "WaterObserved"
    assert entity["location"] == {
        "type": "geo:json", "value": {"type": "Point", "coordinates": [140.0, 35.0]}, "metadata": {}
    }
    assert entity["height"] == {"type": "Number", "value": 3.2, "metadata": {"unitCode": {"type": "Text", "value": "MTR"}}}
    # Stored in UTC, shown in TIME_ZONE with its offset.
    assert entity["dateObserved"] == {"type": "DateTime", "value": "2026-11-21T21:00:00+09:00", "metadata": {}}
    assert entity["alertLevel"] == {"type": "Number", "value": 2, "metadata": {}}
    assert entity["dataProvider"]["value"] == "town-a"
    assert entity["name"]["value"] == "A-PUBLIC 観測所"
    assert entity["alternateName"]["value"] == "A-PUBLIC gauge"
    assert entity["thresholds"]["type"] == "StructuredValue"
    assert {"name": "flood_caution", "level": 2, "value": 3.0, "windowMinutes": None} in entity["thresholds"]["value"]


def test_rain_gauge_and_reservoir_use_their_smart_data_model_attributes(client, basin):
    rain = client.get(f"{NGSI}/entities/{entity_id('A-RAIN', 'rain')}", data={"options": "keyValues"}).json()
    assert rain["type"] == "WeatherObserved"
    assert rain["precipitation"] == 12.0
    assert rain["location"] == {"type": "Point", "coordinates": [140.1, 35.05]}
    assert {"name": "rain_1h_heavy", "level": 3, "value": 30.0, "windowMinutes": 60} in rain["thresholds"]
    dam = client.get(f"{NGSI}/entities/{entity_id('A-DAM')}").json()
    # 87.5 % of capacity is Smart Data Models' fillingLevel 0.875 (parts per one).
    assert dam["fillingLevel"]["value"] == 0.875
    assert dam["fillingLevel"]["metadata"]["unitCode"]["value"] == "C62"
    assert "height" not in dam


def test_a_station_without_readings_has_null_values(client, towns):
    from tests.conftest import make_station

    make_station(towns[0], "A-NEW")
    entity = client.get(f"{NGSI}/entities/{entity_id('A-NEW')}", data={"options": "keyValues"}).json()
    assert (entity["height"], entity["dateObserved"], entity["alertLevel"]) == (None, None, None)


def test_free_text_avoids_the_characters_orion_forbids_in_values(client, towns):
    from tests.conftest import make_station

    station = make_station(towns[0], "A-ODD")
    station.name_en = 'Ōkawa (upper) "gauge"; x=1 <b>'
    station.save()
    entity = client.get(f"{NGSI}/entities/{entity_id('A-ODD')}", data={"options": "keyValues"}).json()
    assert entity["alternateName"] == "Ōkawa （upper） ＂gauge＂； x＝1 ＜b＞"


def test_missing_entities_and_wrong_types_are_orion_not_found(client, basin):
    for path in (
        f"{NGSI}/entities/urn:ngsi-ld:WaterObserved:NOPE",
        f"{NGSI}/entities/A-PUBLIC",
        f"{NGSI}/entities/{entity_id('A-PUBLIC')}?type=WeatherObserved",
        f"{NGSI}/entities/urn:ngsi-ld:WeatherObserved:A-PUBLIC",
    ):
        response = client.get(path)
        assert (response.status_code, response.json()) == (404, NOT_FOUND), path


def test_attrs_attribute_and_value_endpoints(client, basin):
    base = f"{NGSI}/entities/{entity_id('A-PUBLIC')}/attrs"
    attrs = client.get(base, data={"attrs": "height,alertLevel"}).json()
    assert list(attrs) == ["height", "alertLevel"] and "id" not in attrs
    assert client.get(base, data={"options": "keyValues", "attrs": "height"}).json() == {"height": 3.2}
    assert client.get(base, data={"options": "values", "attrs": "alertLevel,height"}).json() == [2, 3.2]
    assert client.get(f"{base}/height").json()["value"] == 3.2
    assert client.get(f"{base}/height/value").json() == 3.2
    assert client.get(f"{base}/location/value").json() == {"type": "Point", "coordinates": [140.0, 35.0]}
    missing = client.get(f"{base}/colour")
    assert (missing.status_code, missing.json()["error"]) == (404, "NotFound")


def test_list_of_public_stations_for_anonymous_with_default_limit_and_count(client, basin):
    response = client.get(f"{NGSI}/entities", data={"options": "count"})
    assert response["Fiware-Total-Count"] == "4"
    assert codes(response.json()) == ["A-DAM", "A-PUBLIC", "A-RAIN", "B-PUBLIC"]
    assert "Fiware-Total-Count" not in client.get(f"{NGSI}/entities")


def test_limit_offset_and_order(client, basin, token_a):
    first = get(client, f"{NGSI}/entities", token_a, data={"limit": 2, "options": "count"})
    second = get(client, f"{NGSI}/entities", token_a, data={"limit": 2, "offset": 2})
    assert first["Fiware-Total-Count"] == "8"  # town A's five, B's public gauge and its two region ones
    assert [e["id"] for e in first.json()] == [entity_id("A-DAM"), entity_id("A-PRIVATE")]
    assert [e["id"] for e in second.json()] == [entity_id("A-PUBLIC"), entity_id("A-RAIN", "rain")]
    by_height = get(client, f"{NGSI}/entities", token_a, data={"type": "WaterObserved", "q": "height", "orderBy": "!height"})
    assert [e["height"]["value"] for e in by_height.json()] == [3.2, 2.5, 2.0, 1.0, 0.5]
    past_the_end = get(client, f"{NGSI}/entities", token_a, data={"offset": 100, "options": "count"})
    assert past_the_end.json() == [] and past_the_end["Fiware-Total-Count"] == "8"


@pytest.mark.parametrize(
    "params, error",
    [
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "max: 1000"),
        ({"limit": "ten"}, "decimal"),
        ({"offset": -1}, "offset"),
        ({"options": "count,bogus"}, "options"),
        ({"options": "keyValues,values"}, "only one"),
        ({"id": "x", "idPattern": "x"}, "together"),
        ({"mq": "height.unitCode==MTR"}, "mq"),
        ({"orderBy": "a b"}, "orderBy"),
    ],
)
def test_bad_list_parameters_are_bad_requests(client, basin, params, error):
    response = client.get(f"{NGSI}/entities", data=params)
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "BadRequest" and error in body["description"]


def test_key_values_and_attrs_projection(client, basin):
    rows = client.get(f"{NGSI}/entities", data={"options": "keyValues", "attrs": "height", "type": "WaterObserved"}).json()
    assert rows == [
        {"id": entity_id("A-DAM"), "type": "WaterObserved"},
        {"id": entity_id("A-PUBLIC"), "type": "WaterObserved", "height": 3.2},
        {"id": entity_id("B-PUBLIC"), "type": "WaterObserved", "height": 2.0},
    ]
    values = client.get(f"{NGSI}/entities", data={"options": "values", "attrs": "dataProvider", "type": "WaterObserved"})
    assert values.json() == [["town-a"], ["town-a"], ["town-b"]]
    unique = client.get(f"{NGSI}/entities", data={"options": "unique", "attrs": "dataProvider", "type": "WaterObserved"})
    assert unique.json() == [["town-a"], ["town-b"]]


def test_id_and_type_filters(client, basin):
    ids = f"{entity_id('A-PUBLIC')},{entity_id('B-PUBLIC')},{entity_id('A-PRIVATE')},urn:ngsi-ld:WaterObserved:NOPE"
    assert listed(client, id=ids) == ["A-PUBLIC", "B-PUBLIC"]
    assert listed(client, type="WeatherObserved") == ["A-RAIN"]
    assert listed(client, type="WeatherObserved,WaterObserved") == ["A-DAM", "A-PUBLIC", "A-RAIN", "B-PUBLIC"]
    assert listed(client, type="Thing") == []
    assert listed(client, typePattern="^Weather") == ["A-RAIN"]


def test_id_pattern_is_a_search_over_visible_entities(client, basin):
    assert listed(client, idPattern="PUBLIC$") == ["A-PUBLIC", "B-PUBLIC"]
    assert listed(client, idPattern=":A-") == ["A-DAM", "A-PUBLIC", "A-RAIN"]
    assert listed(client, idPattern="PRIVATE") == []


@pytest.mark.parametrize(
    "pattern", ["(a+)+$", "(a|aa)*b", "(.*)*", r"(\w+\s?)+$", r"(a)\1", "x" * 300, "[unclosed", "(?P<x"]
)
def test_catastrophic_or_broken_id_patterns_are_refused(client, basin, pattern):
    response = client.get(f"{NGSI}/entities", data={"idPattern": pattern})
    assert response.status_code == 400
    assert response.json()["error"] == "BadRequest"


@pytest.mark.parametrize(
    "q, expected",
    [
        ("height>3", ["A-PUBLIC"]),
        ("height>=2", ["A-PUBLIC", "B-PUBLIC"]),
        ("height<2.5", ["B-PUBLIC"]),
        ("height<=2", ["B-PUBLIC"]),
        ("height==3.2", ["A-PUBLIC"]),
        ("height:3.2", ["A-PUBLIC"]),
        ("height!=3.2", ["B-PUBLIC"]),
        ("height==1..2.5", ["B-PUBLIC"]),
        ("height!=1..2.5", ["A-PUBLIC"]),
        ("height==2,3.2", ["A-PUBLIC", "B-PUBLIC"]),
        ("alertLevel==2;height>1", ["A-PUBLIC"]),
        ("dataProvider==town-b", ["B-PUBLIC"]),
        ("dataProvider=='town-a'", ["A-DAM", "A-PUBLIC", "A-RAIN"]),
        ("dataProvider~=^town-", ["A-DAM", "A-PUBLIC", "A-RAIN", "B-PUBLIC"]),
        ("precipitation", ["A-RAIN"]),
        ("!height", ["A-DAM", "A-RAIN"]),
        ("fillingLevel>0.8", ["A-DAM"]),
        ("dateObserved>2026-11-21T11:59:00Z", ["A-DAM", "A-PUBLIC", "A-RAIN", "B-PUBLIC"]),
        ("dateObserved<2026-11-21T20:59:00+09:00", []),
        ("dateObserved==2026-11-21T12:00:00Z..2026-11-21T12:00:00Z", ["A-DAM", "A-PUBLIC", "A-RAIN", "B-PUBLIC"]),
        ("height>abc", []),
        ("location.type==Point", ["A-DAM", "A-PUBLIC", "A-RAIN", "B-PUBLIC"]),
    ],
)
def test_simple_query_language(client, basin, q, expected):
    assert listed(client, q=q) == expected


@pytest.mark.parametrize("q", ["height>", ">3", "height>1,2", "height>1..2", "height==1..2..3", "a b==1",
                               "height=='unterminated", ";", "height~=(a+)+"])
def test_malformed_q_is_a_bad_request(client, basin, q):
    response = client.get(f"{NGSI}/entities", data={"q": q})
    assert response.status_code == 400, q
    assert response.json()["error"] == "BadRequest"


def test_near_takes_coords_as_lat_lon(client, basin):
    # A-RAIN is at lat 35.05, lon 140.10: about 10.4 km from the river gauges at 35.0, 140.0.
    near = {"georel": "near;maxDistance:10000", "geometry": "point", "coords": "35.05,140.10"}
    assert listed(client, **near) == ["A-RAIN"]
    assert listed(client, **{**near, "georel": "near;maxDistance:11000"}) == ["A-PUBLIC", "A-RAIN", "B-PUBLIC"]
    assert listed(client, **{**near, "georel": "near;minDistance:11000"}) == ["A-DAM"]
    # The same point written lon,lat is a latitude of 140: refused, not silently misread.
    swapped = client.get(f"{NGSI}/entities", data={**near, "coords": "140.10,35.05"})
    assert swapped.status_code == 400 and "lat,lon" in swapped.json()["description"]


def test_covered_by_polygon_and_box_with_lat_lon_coords(client, basin):
    # A box around A-DAM (35.30 N, 140.50 E) only.
    box = {"georel": "coveredBy", "geometry": "box", "coords": "35.2,140.4;35.4,140.6"}
    assert listed(client, **box) == ["A-DAM"]
    polygon = {"georel": "coveredBy", "geometry": "polygon",
               "coords": "34.9,139.9;34.9,140.2;35.1,140.2;35.1,139.9;34.9,139.9"}
    assert listed(client, **polygon) == ["A-PUBLIC", "A-RAIN", "B-PUBLIC"]
    assert listed(client, **{**polygon, "georel": "intersects"}) == ["A-PUBLIC", "A-RAIN", "B-PUBLIC"]
    assert listed(client, **{**polygon, "georel": "disjoint"}) == ["A-DAM"]
    point = {"georel": "equals", "geometry": "point", "coords": "35.3,140.5"}
    assert listed(client, **point) == ["A-DAM"]
    line = {"georel": "intersects", "geometry": "line", "coords": "35.0,139.0;35.0,141.0"}
    assert listed(client, **line) == ["A-PUBLIC", "B-PUBLIC"]


@pytest.mark.parametrize(
    "geo",
    [
        {"georel": "near;maxDistance:10", "geometry": "point"},
        {"georel": "near", "geometry": "point", "coords": "35,140"},
        {"georel": "near;maxDistance:10", "geometry": "polygon", "coords": "35,140"},
        {"georel": "near;maxDistance:-1", "geometry": "point", "coords": "35,140"},
        {"georel": "within", "geometry": "point", "coords": "35,140"},
        {"georel": "coveredBy", "geometry": "circle", "coords": "35,140"},
        {"georel": "coveredBy", "geometry": "polygon", "coords": "35,140;36,140;36,141"},
        {"georel": "coveredBy", "geometry": "polygon", "coords": "35,140;36,141;35,141;36,140;35,140"},
        {"georel": "coveredBy", "geometry": "box", "coords": "35,140"},
        {"georel": "coveredBy", "geometry": "point", "coords": "35;140"},
        {"georel": "coveredBy", "geometry": "point", "coords": "nan,140"},
        {"georel": "coveredBy", "geometry": "point", "coords": ";".join(["35,140"] * 1001)},
    ],
)
def test_malformed_geo_queries_are_bad_requests(client, basin, geo):
    response = client.get(f"{NGSI}/entities", data=geo)
    assert response.status_code == 400, geo
    assert response.json()["error"] == "BadRequest"


def test_types(client, basin, token_a):
    types = client.get(f"{NGSI}/types", data={"options": "count"})
    assert types["Fiware-Total-Count"] == "2"
    assert [(t["type"], t["count"]) for t in types.json()] == [("WaterObserved", 3), ("WeatherObserved", 1)]
    assert types.json()[1]["attrs"]["precipitation"] == {"types": ["Number"]}
    assert client.get(f"{NGSI}/types", data={"options": "values"}).json() == ["WaterObserved", "WeatherObserved"]
    assert get(client, f"{NGSI}/types/WeatherObserved", token_a).json()["count"] == 2
    assert client.get(f"{NGSI}/types/Thing").status_code == 404


def test_paths_the_subset_does_not_serve(client, db):
    response = client.get("/ngsi/v2/op/forward")
    assert (response.status_code, response.json()) == (400, {"error": "BadRequest", "description": "service not found"})
    deleted = client.delete(f"{NGSI}/entities/{entity_id('A-PUBLIC')}")
    assert (deleted.status_code, deleted.json()["error"]) == (405, "MethodNotAllowed")


def test_resources_and_trailing_slash_alias(client, basin):
    assert client.get("/ngsi/v2").json()["entities_url"] == "/v2/entities"
    assert codes(client.get(f"{NGSI}/entities/").json()) == ["A-DAM", "A-PUBLIC", "A-RAIN", "B-PUBLIC"]
