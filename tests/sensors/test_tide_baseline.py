"""The astronomical-tide baseline of a tide gauge (issue 16 item 3): harmonic constants as data, the
predicted tide and the anomaly (observed − predicted) on the API and the station page; fitting the
constants from the gauge's own readings; bad constants refused saying where."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.utils import timezone

from sensors.models import Observation, StationKind, TideHarmonics, Visibility
from sensors.services import tide_harmonics_set
from sensors.tide import Constituent, Harmonics, TideError, fit, harmonics_from_document, predict
from tests.conftest import make_station

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
HARBOUR = Harmonics(0.25, EPOCH, (Constituent("M2", 0.62, 140.0), Constituent("S2", 0.21, 170.0),
                                  Constituent("K1", 0.24, 200.0), Constituent("O1", 0.19, 180.0)))


def test_the_prediction_is_the_sum_of_its_constituents():
    at = EPOCH + timedelta(hours=5)
    expected = 0.25 + sum(
        c.amplitude * math.cos(math.radians({"M2": 28.9841042, "S2": 30.0, "K1": 15.0410686, "O1": 13.9430356}[c.name] * 5 - c.phase))
        for c in HARBOUR.constituents
    )
    assert predict(HARBOUR, [at])[0] == pytest.approx(expected, abs=1e-9)
    assert predict(HARBOUR, [EPOCH])[0] == pytest.approx(0.25 + sum(c.amplitude * math.cos(math.radians(c.phase)) for c in HARBOUR.constituents))


def test_fitting_a_month_of_noisy_readings_recovers_the_constants():
    times = [EPOCH + timedelta(minutes=10 * i) for i in range(6 * 24 * 30)]
    values = [v + 0.02 * math.sin(i * 1.7) for i, v in enumerate(predict(HARBOUR, times))]
    fitted = fit(times, values, epoch=EPOCH)
    assert fitted.mean_level == pytest.approx(0.25, abs=0.01)
    for truth, got in zip(HARBOUR.constituents, fitted.constituents):
        assert got.name == truth.name
        assert got.amplitude == pytest.approx(truth.amplitude, abs=0.01)
        assert abs((got.phase - truth.phase + 180) % 360 - 180) < 3


@pytest.mark.parametrize(
    ("times", "names", "message"),
    [
        ([EPOCH + timedelta(hours=i) for i in range(20)], ("M2",), "at least 48 h"),
        ([EPOCH + timedelta(days=i) for i in range(5)], ("M2", "S2"), "too few"),
        ([EPOCH + timedelta(hours=i) for i in range(100)], ("M2", "X9"), "unknown constituent"),
    ],
)
def test_a_fit_without_enough_readings_or_with_unknown_constituents_is_refused(times, names, message):
    with pytest.raises(TideError, match=message):
        fit(times, [0.0] * len(times), epoch=EPOCH, names=names)


@pytest.mark.parametrize(
    ("document", "where"),
    [
        ([], "harmonics"),
        ({"epoch": "2026-01-01T00:00:00+09:00", "constituents": [{"name": "M2", "amplitude": 1, "phase": 0}]}, "mean_level"),
        ({"mean_level": float("nan"), "epoch": "2026-01-01T00:00:00+09:00", "constituents": []}, "mean_level"),
        ({"mean_level": 0.1, "epoch": "2026-01-01T00:00:00", "constituents": [{"name": "M2", "amplitude": 1, "phase": 0}]}, "epoch"),
        ({"mean_level": 0.1, "epoch": "tomorrow", "constituents": [{"name": "M2", "amplitude": 1, "phase": 0}]}, "epoch"),
        ({"mean_level": 0.1, "epoch": "2026-01-01T00:00:00Z", "constituents": []}, "constituents"),
        ({"mean_level": 0.1, "epoch": "2026-01-01T00:00:00Z", "constituents": [{"name": "M2", "amplitude": 99, "phase": 0}]},
         r"constituents\[0\].amplitude"),
        ({"mean_level": 0.1, "epoch": "2026-01-01T00:00:00Z", "constituents": [{"name": "<script>", "amplitude": 1, "phase": 0}]},
         r"constituents\[0\].name"),
        ({"mean_level": 0.1, "epoch": "2026-01-01T00:00:00Z",
          "constituents": [{"name": "M2", "amplitude": 1, "phase": 0}, {"name": "M2", "amplitude": 1, "phase": 0}]}, "given twice"),
        ({"mean_level": 0.1, "epoch": "2026-01-01T00:00:00Z", "constituents": [{"name": "M2", "amplitude": True, "phase": 0}]},
         "amplitude"),
        ({"mean_level": 0.1, "epoch": "2026-01-01T00:00:00Z", "constituents": ["M2"] * 50}, "at most"),
    ],
)
def test_bad_constants_are_refused_saying_where(document, where):
    with pytest.raises(TideError, match=where):
        harmonics_from_document(document)


@pytest.fixture
def harbour(towns):
    station = make_station(towns[0], "A-TIDE", kind=StationKind.TIDE, datum="T.P.", river_name="水森湾")
    tide_harmonics_set(station=station, harmonics=HARBOUR, source="test")
    return station


def readings(station, surge: float, count: int = 6):
    """The last hour: the astronomical tide plus `surge` metres."""
    now = timezone.now().replace(second=0, microsecond=0)
    times = [now - timedelta(minutes=10 * i) for i in range(count)][::-1]
    Observation.objects.bulk_create(
        Observation(station=station, observed_at=at, value=round(value + surge, 3), quality="ok", received_at=now)
        for at, value in zip(times, predict(HARBOUR, times))
    )
    return times


def test_the_api_gives_the_predicted_tide_and_the_anomaly_of_every_reading(harbour):
    readings(harbour, surge=0.8)
    body = Client().get("/api/v1/stations/A-TIDE/tide").json()
    assert (body["station"], body["unit"], body["datum"]) == ("A-TIDE", "m", "T.P.")
    assert [c["name"] for c in body["harmonics"]["constituents"]] == ["M2", "S2", "K1", "O1"]
    assert len(body["series"]) == 6
    for point in body["series"]:
        assert point["anomaly"] == pytest.approx(0.8, abs=0.002)
        assert point["observed"] == pytest.approx(point["predicted"] + 0.8, abs=0.002)


def test_without_constants_the_series_says_so_with_nulls(towns):
    station = make_station(towns[0], "A-TIDE2", kind=StationKind.TIDE, datum="T.P.")
    Observation.objects.create(station=station, observed_at=timezone.now(), value=0.4, quality="ok", received_at=timezone.now())
    body = Client().get("/api/v1/stations/A-TIDE2/tide").json()
    assert body["harmonics"] is None and body["series"][0]["predicted"] is None and body["series"][0]["anomaly"] is None


def test_other_kinds_hidden_stations_and_bad_windows_are_refused(towns, stations, harbour):
    assert Client().get("/api/v1/stations/A-PUBLIC/tide").json() == {"detail": "A-PUBLIC is not a tide gauge."}
    hidden = make_station(towns[0], "A-TIDE-P", kind=StationKind.TIDE, visibility=Visibility.PRIVATE)
    tide_harmonics_set(station=hidden, harmonics=HARBOUR)
    missing = Client().get("/api/v1/stations/NOPE/tide")
    private = Client().get("/api/v1/stations/A-TIDE-P/tide")
    assert missing.status_code == private.status_code == 404 and missing.json() == private.json()
    response = Client().get("/api/v1/stations/A-TIDE/tide?since=yesterday")
    assert response.status_code == 400 and "since" in response.json()


def test_the_station_page_shows_the_anomaly_and_charts_the_astronomical_tide(client, harbour):
    readings(harbour, surge=0.55)
    html = client.get("/stations/A-TIDE/").content.decode()
    assert "潮位偏差" in html and "+0.55 m" in html
    chart = json.loads(html.split('id="station-chart-data" type="application/json">', 1)[1].split("</script>", 1)[0])
    observed, predicted = chart["series"][0]["values"], chart["series"][1]["values"]
    assert chart["series"][1]["key"] == "predicted" and chart["series"][1]["dash"]
    assert [round(o - p, 2) for o, p in zip(observed, predicted)] == [0.55] * len(observed)


def test_the_command_fits_the_constants_from_the_gauges_readings(towns):
    station = make_station(towns[0], "A-TIDE", kind=StationKind.TIDE, datum="T.P.")
    now = timezone.now().replace(second=0, microsecond=0)
    times = [now - timedelta(minutes=10 * i) for i in range(6 * 24 * 20)]
    Observation.objects.bulk_create(
        Observation(station=station, observed_at=at, value=value, quality="ok", received_at=now) for at, value in zip(times, predict(HARBOUR, times))
    )
    out = StringIO()
    call_command("tide_harmonics", "A-TIDE", "--fit", "--days", "25", stdout=out)
    assert "4 constituents stored" in out.getvalue()
    stored = TideHarmonics.objects.get(station=station)
    check = [now - timedelta(hours=h) for h in range(0, 48, 5)]
    fitted = harmonics_from_document({"mean_level": stored.mean_level, "constituents": stored.constituents}, epoch=stored.epoch)
    assert predict(fitted, check) == pytest.approx(predict(HARBOUR, check), abs=0.01)


def test_the_command_reads_a_file_and_refuses_bad_ones(towns, tmp_path):
    make_station(towns[0], "A-TIDE", kind=StationKind.TIDE)
    good = tmp_path / "harbour.json"
    good.write_text(json.dumps(HARBOUR.as_document()), encoding="utf-8")
    call_command("tide_harmonics", "A-TIDE", "--file", str(good), stdout=StringIO())
    shown = StringIO()
    call_command("tide_harmonics", "A-TIDE", "--show", stdout=shown)
    assert json.loads(shown.getvalue()) == HARBOUR.as_document()
    bad = tmp_path / "bad.json"
    for content, message in [(b"\xff\xfe", "not UTF-8 JSON"), (b"{", "not UTF-8 JSON"),
                             (json.dumps({"mean_level": 1}).encode(), "epoch")]:
        bad.write_bytes(content)
        with pytest.raises(CommandError, match=message):
            call_command("tide_harmonics", "A-TIDE", "--file", str(bad))
    with pytest.raises(CommandError, match="only tide gauges"):
        make_station(towns[0], "A-RIVER")
        call_command("tide_harmonics", "A-RIVER", "--show")
    with pytest.raises(CommandError, match="No station"):
        call_command("tide_harmonics", "NOPE", "--show")
