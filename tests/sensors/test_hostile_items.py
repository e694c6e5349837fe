"""Per-item errors for input that used to crash ingestion (issue 10 items 1, 6, 8): unrepresentable
times, NUL in station codes, integers longer than Python converts, and the NFKC rule for digits and
codes, through HTTP JSON, HTTP CSV, the CSV import command and the service itself."""

from __future__ import annotations

import csv
import json
from datetime import datetime, timedelta, timezone
from io import StringIO

import pytest
from django.core.management import call_command

from sensors.models import Observation
from sensors.parsers import number_from_text
from sensors.services import (
    ItemError,
    normalized_text,
    observation_ingest,
    parse_observed_at,
    parse_station_code,
)

URL = "/api/v1/observations"
T0 = datetime(2026, 11, 21, 12, 0, tzinfo=timezone.utc)
JST = timezone(timedelta(hours=9))
VALID_TIME = T0.astimezone(JST).isoformat()
UNREPRESENTABLE = ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "9999-12-31T23:59:59.999999-00:01"]


def post_json(client, token, body):
    raw = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post(URL, data=raw, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}")


def post_csv(client, token, text):
    return client.post(URL, data=text, content_type="text/csv", HTTP_AUTHORIZATION=f"Bearer {token}")


def stored():
    return sorted(Observation.objects.values_list("station__code", "observed_at", "value"))


@pytest.fixture
def existing(stations, token_a, client):
    response = post_json(client, token_a, {"observations": [{"station": "A-PUBLIC", "observed_at": VALID_TIME, "value": 1.0}]})
    assert response.json()["accepted"] == 1
    return stored()


# --- the parse functions -------------------------------------------------------------------------


@pytest.mark.parametrize("raw", UNREPRESENTABLE)
def test_unrepresentable_times_are_item_errors(raw):
    with pytest.raises(ItemError, match="outside the representable range"):
        parse_observed_at(raw, now=T0)


def test_an_aware_datetime_beyond_the_range_is_an_item_error_too():
    edge = datetime(9999, 12, 31, 23, 0, tzinfo=timezone(timedelta(hours=-14)))
    with pytest.raises(ItemError, match="outside the representable range"):
        parse_observed_at(edge, now=T0)


def test_full_width_text_is_read_as_ascii():
    assert normalized_text("　ＫＡＷ－０１ ") == "KAW-01"
    assert parse_station_code(" A-PUBLIC\t") == "A-PUBLIC"
    assert parse_observed_at("２０２６-１１-２１T２１:００:００＋０９:００", now=T0 + timedelta(days=1)) == T0
    assert number_from_text("１.５") == 1.5 and number_from_text("－２") == -2.0


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("A-\x00PUBLIC", "control character"),
        ("\x00", "control character"),
        ("A\u200bPUBLIC", "control character"),  # zero-width space: looks like A-PUBLIC, is not
        ("   ", "non-empty"),
        ("Ａ" * 41, "longer than 40"),
    ],
)
def test_station_codes_that_cannot_be_ours(raw, reason):
    with pytest.raises(ItemError, match=reason):
        parse_station_code(raw)


@pytest.mark.parametrize("raw", ["١٫٥", "١٥", "१५", "٢٠٢٦-01-01T00:00:00+09:00"])
def test_digits_of_other_scripts_are_refused_with_the_reason(stations, raw):
    report = observation_ingest(
        municipality=None,
        items=[
            {"station": "A-PUBLIC", "observed_at": VALID_TIME, "value": number_from_text(raw)},
            {"station": "A-PUBLIC", "observed_at": raw, "value": 1.0},
        ],
        source="http",
        now=T0,
    )
    assert report.accepted == 0
    assert all("digits other than 0-9" in rejection["error"] or "not an ISO 8601" in rejection["error"]
               for rejection in report.rejected)
    assert any("digits other than 0-9" in rejection["error"] for rejection in report.rejected)


# --- HTTP JSON -------------------------------------------------------------------------------------


def test_json_unrepresentable_times_are_per_item_400s_not_500s(client, existing, token_a):
    t1 = (T0 + timedelta(minutes=10)).astimezone(JST).isoformat()
    body = {"observations": [{"station": "A-PUBLIC", "observed_at": raw, "value": 2.0} for raw in UNREPRESENTABLE]}
    body["observations"].append({"station": "A-PUBLIC", "observed_at": t1, "value": 2.0})
    response = post_json(client, token_a, body)
    assert response.status_code == 200, response.content
    reply = response.json()
    assert reply["accepted"] == 1
    assert [r["index"] for r in reply["rejected"]] == [0, 1, 2]
    assert all("outside the representable range" in r["error"] for r in reply["rejected"])
    assert stored() == sorted(existing + [("A-PUBLIC", T0 + timedelta(minutes=10), 2.0)])


def test_json_nul_in_the_station_code_is_a_per_item_error(client, existing, token_a):
    body = {"observations": [
        {"station": "A-PUBLIC\x00", "observed_at": VALID_TIME, "value": 9.0},
        {"station": "\x00" * 10_000, "observed_at": VALID_TIME, "value": 9.0},
    ]}
    response = post_json(client, token_a, body)
    assert response.status_code == 200, response.content
    errors = [r["error"] for r in response.json()["rejected"]]
    assert len(errors) == 2 and all("control character" in error for error in errors)
    assert all(len(error) < 250 for error in errors)  # the echo is bounded
    assert stored() == existing


def test_json_integer_with_5000_digits_is_a_per_item_error(client, existing, token_a):
    t1 = (T0 + timedelta(minutes=10)).astimezone(JST).isoformat()
    body = (
        '{"observations": ['
        f'{{"station": "A-PUBLIC", "observed_at": "{t1}", "value": {"9" * 5000}}},'
        f'{{"station": "A-PUBLIC", "observed_at": "{t1}", "value": -{"1" * 400}}},'
        f'{{"station": "A-REGION", "observed_at": "{t1}", "value": 2}}'
        "]}"
    )
    response = post_json(client, token_a, body)
    assert response.status_code == 200, response.content
    reply = response.json()
    assert reply["accepted"] == 1
    assert [(r["index"], "finite" in r["error"]) for r in reply["rejected"]] == [(0, True), (1, True)]
    assert ("A-REGION", T0 + timedelta(minutes=10), 2.0) in stored()


def test_json_full_width_and_padded_codes_match_and_foreign_digits_do_not(client, existing, token_a):
    t1 = (T0 + timedelta(minutes=10)).astimezone(JST).isoformat()
    body = {"observations": [
        {"station": "Ａ－ＲＥＧＩＯＮ", "observed_at": t1, "value": 1.5},
        {"station": " A-PRIVATE ", "observed_at": t1, "value": 2.5},
        {"station": "A-PUBLIC", "observed_at": t1, "value": "١٫٥"},
    ]}
    response = post_json(client, token_a, body)
    reply = response.json()
    assert reply["accepted"] == 2
    assert reply["rejected"] == [
        {"index": 2, "error": "'value' '١٫٥' has digits other than 0-9 (ASCII or full-width digits only)"}
    ]


def test_reading_a_station_with_a_nul_in_its_code_is_a_404(client, existing):
    assert client.get("/api/v1/stations/A-PUBLIC%00/observations").status_code == 404
    assert client.get("/stations/A-PUBLIC%00/").status_code == 404


# --- HTTP CSV --------------------------------------------------------------------------------------


def test_csv_hostile_cells_are_per_item_errors(client, existing, token_a):
    t1 = (T0 + timedelta(minutes=10)).astimezone(JST).isoformat()
    rows = [
        ["A-PUBLIC", "9999-12-31T23:59:59-14:00", "2"],
        ["A-PUBLIC", t1, "9" * 5000],
        ["A-PUBLIC", t1, "١٥"],
        ["Ａ－ＰＵＢＬＩＣ", t1, "１.５"],
        ["A-REGION\u200b", t1, "1"],
    ]
    text = StringIO()
    writer = csv.writer(text)
    writer.writerow(["station", "observed_at", "value"])
    writer.writerows(rows)
    response = post_csv(client, token_a, text.getvalue())
    assert response.status_code == 200, response.content
    reply = response.json()
    assert reply["accepted"] == 1
    errors = {r["index"]: r["error"] for r in reply["rejected"]}
    assert "outside the representable range" in errors[0]
    assert "is not a number" in errors[1] and len(errors[1]) < 200
    assert "digits other than 0-9" in errors[2]
    assert "control character" in errors[4]
    assert stored() == sorted(existing + [("A-PUBLIC", T0 + timedelta(minutes=10), 1.5)])


def test_csv_with_a_nul_byte_is_refused_as_a_document(client, existing, token_a):
    response = post_csv(client, token_a, f"station,observed_at,value\nA-PUBLIC\x00,{VALID_TIME},2\n")
    assert response.status_code == 400
    assert "NUL" in response.json()["detail"]
    assert stored() == existing


# --- CSV import command ------------------------------------------------------------------------


def test_import_command_rejects_unrepresentable_rows_and_stores_the_rest(tmp_path, stations):
    t1 = (T0 + timedelta(minutes=10)).astimezone(JST).isoformat()
    path = tmp_path / "readings.csv"
    path.write_text(
        "station,observed_at,value\n"
        "A-PUBLIC,0001-01-01T00:00:00+14:00,1\n"
        f"Ａ－ＰＵＢＬＩＣ,{t1},１.５\n"
        f"A-PUBLIC,{VALID_TIME},{'7' * 5000}\n",
        encoding="utf-8",
    )
    out = StringIO()
    call_command("import_observations", str(path), "--no-progress", stdout=out, stderr=StringIO())
    assert stored() == [("A-PUBLIC", T0 + timedelta(minutes=10), 1.5)]
    with (tmp_path / "readings.csv.rejected.csv").open(encoding="utf-8-sig", newline="") as stream:
        rejected = list(csv.DictReader(stream))
    assert [row["line"] for row in rejected] == ["2", "4"]
    assert "outside the representable range" in rejected[0]["error"]
