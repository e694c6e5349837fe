"""Issue 16 item 7: /api/schema/ describes the GeoJSON and CSV bodies of the station API, and what
the API sends fits that description (a station of every kind, with and without readings)."""

import csv
import io
from datetime import timedelta

import yaml
from django.utils import timezone
from jsonschema import Draft4Validator

from sensors.models import StationKind
from sensors.services import observation_ingest
from tests.conftest import make_station, response_bytes


def _nullable_to_json_schema(schema):
    """OpenAPI 3.0's `nullable: true` as JSON Schema's type list, so jsonschema can check bodies."""
    if isinstance(schema, dict):
        converted = {key: _nullable_to_json_schema(value) for key, value in schema.items() if key != "nullable"}
        if schema.get("nullable"):
            converted["type"] = [schema["type"], "null"]
        return converted
    if isinstance(schema, list):
        return [_nullable_to_json_schema(item) for item in schema]
    return schema


def _operation(client, path):
    document = yaml.safe_load(client.get("/api/schema/").content)
    return document["paths"][path]["get"]["responses"]["200"]["content"]


def test_station_geojson_and_csv_are_described_and_answered_as_described(client, towns):
    for kind in StationKind.values:
        make_station(towns[0], f"A-{kind.upper()}", kind=kind)
    observation_ingest(municipality=None, source="seed",
                       items=[{"station": "A-RIVER", "observed_at": timezone.now() - timedelta(minutes=5), "value": 1.5}])
    content = _operation(client, "/api/v1/stations")
    assert set(content) == {"application/geo+json", "text/csv"}
    geojson = _nullable_to_json_schema(content["application/geo+json"]["schema"])
    assert geojson["properties"]["type"]["enum"] == ["FeatureCollection"]
    body = client.get("/api/v1/stations").json()
    assert {feature["properties"]["kind"] for feature in body["features"]} == set(StationKind.values)
    errors = [f"{list(e.path)}: {e.message}" for e in Draft4Validator(geojson).iter_errors(body)]
    assert not errors, errors[:5]

    described_columns = content["text/csv"]["schema"]["description"].split(": ", 1)[1].split(". ")[0].split(",")
    rows = list(csv.reader(io.StringIO(client.get("/api/v1/stations", {"format": "csv"}).content.decode())))
    assert rows[0] == described_columns
    example = next(iter(content["text/csv"]["examples"].values()))["value"]
    assert example.splitlines()[0].split(",") == described_columns


def test_observation_csv_columns_are_described(client, towns):
    make_station(towns[0], "A-OBS")
    content = _operation(client, "/api/v1/stations/{code}/observations")
    described = content["text/csv"]["schema"]["description"].split(": ", 1)[1].split(" (")[0].split(",")
    answered = client.get("/api/v1/stations/A-OBS/observations", {"format": "csv"})
    header = response_bytes(answered).decode().splitlines()[0]
    assert header.split(",") == described


def test_quality_is_an_enum_of_the_flags_and_flagged_readings_answer_as_described(client, towns):
    """Issue 11: clients can rely on the four quality flags; a flag outside them would fail validation."""
    from sensors.models import Observation

    make_station(towns[0], "A-Q")
    now = timezone.now()
    observation_ingest(municipality=None, source="seed", items=[
        {"station": "A-Q", "observed_at": now - timedelta(minutes=20), "value": 1.0},
        {"station": "A-Q", "observed_at": now - timedelta(minutes=10), "value": 9999.0},  # out of range: kept, flagged
    ])
    assert set(Observation.objects.filter(station__code="A-Q").values_list("quality", flat=True)) == {"ok", "range"}

    stations = _nullable_to_json_schema(_operation(client, "/api/v1/stations")["application/geo+json"]["schema"])
    quality = stations["properties"]["features"]["items"]["properties"]["properties"]["properties"]["quality"]
    assert set(quality["enum"]) == {"ok", "suspect", "range", "flatline", None}

    history = _nullable_to_json_schema(
        _operation(client, "/api/v1/stations/{code}/observations")["application/json"]["schema"]
    )
    item = history["properties"]["observations"]["items"]
    assert item["properties"]["quality"]["enum"] == ["ok", "suspect", "range", "flatline"]
    body = client.get("/api/v1/stations/A-Q/observations").json()
    assert [o["quality"] for o in body["observations"]] == ["ok", "range"]
    assert not [e.message for e in Draft4Validator(history).iter_errors(body)]
    body["observations"][0]["quality"] = "bogus"
    assert [e.message for e in Draft4Validator(history).iter_errors(body)]
    stations_body = client.get("/api/v1/stations").json()
    assert not [e.message for e in Draft4Validator(stations).iter_errors(stations_body)]
