"""Forecasts through the database: training, the fallback, which gauges are inputs, the change-log
refresh and who may see a forecast."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from django.contrib.auth import get_user_model

from forecasts import learn
from forecasts.models import ForecastModel, Method, StationForecast
from forecasts.selectors import forecast_inputs
from forecasts.services import forecast_at, forecast_train, forecasts_refresh
from geo.models import Basin, River
from sensors.models import Observation, SharingGrant, StationKind, Visibility
from sensors.services import observation_ingest
from tenancy.models import Membership

from ..conftest import make_station
from .synthetic import basin

RIVER_JA = "試験川"


@pytest.fixture
def geography(db):
    area = Basin.objects.create(
        name_ja="試験流域", name_en="Test basin",
        geometry={"type": "Polygon", "coordinates": [[[139.9, 34.9], [140.3, 34.9], [140.3, 35.1], [139.9, 35.1], [139.9, 34.9]]]},
    )
    River.objects.create(
        name_ja=RIVER_JA, name_en="Test River", basin=area,
        geometry={"type": "LineString", "coordinates": [[139.95, 35.0], [140.25, 35.0]]},
    )
    return area


def gauge(town, code, lon, *, kind=StationKind.RIVER, visibility=Visibility.PUBLIC):
    return make_station(town, code, kind=kind, visibility=visibility, lon=lon, lat=35.0, river_name=RIVER_JA if kind == StationKind.RIVER else "")


def store(station, times, values):
    now = datetime.now(UTC)
    Observation.objects.bulk_create(
        Observation(station=station, observed_at=datetime.fromtimestamp(t, UTC), value=float(v), received_at=now, source="import")
        for t, v in zip(times, values)
    )


@pytest.fixture
def ingest(django_capture_on_commit_callbacks):
    """Ingest as a gateway would, with the change-log drain run on commit (as in production)."""

    def run(items):
        with django_capture_on_commit_callbacks(execute=True):
            return observation_ingest(municipality=None, items=items, source="http")

    return run


def test_inputs_are_upstream_gauges_and_basin_rain_the_owner_town_may_see(towns, geography):
    town_a, town_b = towns
    downstream = gauge(town_a, "DOWN", 140.20)
    own_upstream = gauge(town_a, "UP-A", 140.10)
    below = gauge(town_a, "BELOW", 140.24)
    neighbour_private = gauge(town_b, "UP-B", 140.05, visibility=Visibility.PRIVATE)
    gauge(town_a, "RAIN-A", 140.0, kind=StationKind.RAIN)
    outside = make_station(town_a, "RAIN-FAR", kind=StationKind.RAIN, lon=141.0, lat=36.0)
    inputs = forecast_inputs(downstream)
    assert [s.code for s in inputs.upstream] == ["UP-A"]
    assert [s.code for s in inputs.rain] == ["RAIN-A"]
    assert below not in inputs.upstream and outside not in inputs.rain and own_upstream in inputs.upstream
    # A neighbour's private gauge counts only once it is shared with the gauge's owner town.
    neighbour_private.visibility = Visibility.SHARED
    neighbour_private.save()
    assert "UP-B" not in [s.code for s in forecast_inputs(downstream).upstream]
    SharingGrant.objects.create(station=neighbour_private, grantor=town_b, grantee=town_a)
    assert [s.code for s in forecast_inputs(downstream).upstream] == ["UP-A", "UP-B"]
    # ... and a grant to somebody else does not count for town A's gauge.
    assert "DOWN" not in [s.code for s in forecast_inputs(neighbour_private).upstream]


def test_a_gauge_with_little_history_falls_back_to_the_trend_and_says_so(towns, geography, client, ingest):
    station = gauge(towns[0], "NEW", 140.2)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    observation_ingest(
        municipality=None,
        items=[{"station": "NEW", "observed_at": start + timedelta(minutes=10 * i), "value": 1.0 + 0.02 * i} for i in range(9)],
        source="http",
    )
    model = forecast_train(station)
    assert model.method == Method.TREND and "too little history" in model.note
    ingest([{"station": "NEW", "observed_at": start + timedelta(minutes=90), "value": 1.2}])
    body = client.get("/api/v1/stations/NEW/forecast").json()
    assert body["method"] == "trend"
    assert "trend" in body["method_note_en"] and "傾向" in body["method_note_ja"]
    assert body["points"] and all(p["lower"] <= p["median"] <= p["upper"] for p in body["points"])
    assert body["points"][-1]["median"] > 1.2  # still rising


def stored_pair(town, days=12):
    """DOWN, UP and RAIN of the synthetic basin with `days` of readings, ending an hour ago (so the
    station page's 24-hour chart shows the last readings and the band)."""
    start = (datetime.now(UTC) - timedelta(days=days, hours=1)).timestamp() // 600 * 600
    times, synthetic = basin(days=days, seed=11, start=start)
    down = gauge(town, "DOWN", 140.20)
    up = gauge(town, "UP", 140.10)
    rain = gauge(town, "RAIN", 140.0, kind=StationKind.RAIN)
    store(down, times, synthetic.own.values)
    store(up, times, synthetic.upstream[0].values)
    store(rain, times, synthetic.rain[0].values)
    return times, synthetic, down, up, rain


@pytest.fixture
def trained_pair(towns, geography):
    times, synthetic, down, up, rain = stored_pair(towns[0])
    model = forecast_train(down)
    return times, down, up, model


def test_a_stored_forecast_ignores_readings_after_its_time(trained_pair):
    times, down, up, model = trained_pair
    assert model.method == Method.ARX and model.inputs == {"upstream": ["UP"], "rain": ["RAIN"]}
    at = datetime.fromtimestamp(times[-200], UTC)
    before = forecast_at(down, at)
    Observation.objects.filter(station__in=[down, up], observed_at__gt=at).update(value=99.0)
    after = forecast_at(down, at)
    assert before.method == "arx" and before.points == after.points and before.crossing == after.crossing


def test_new_readings_refresh_the_forecast_through_the_change_log(trained_pair, ingest):
    times, down, up, model = trained_pair
    next_time = datetime.fromtimestamp(times[-1] + 600, UTC)
    # An upstream reading alone refreshes the downstream gauge's forecast (it is one of its inputs).
    ingest([{"station": "UP", "observed_at": next_time, "value": 2.0}])
    ingest([{"station": "DOWN", "observed_at": next_time, "value": 1.0}])
    forecast = StationForecast.objects.get(station=down)
    assert forecast.based_on == next_time and forecast.model == model
    assert len(forecast.points) >= 18
    # The upstream gauge's jump shows up in the forecast: it rises.
    assert forecast.points[-1][1] > 1.0


def test_a_reader_in_the_same_batch_gets_the_forecast_of_the_newest_reading(trained_pair, ingest):
    """The trigger rules run from the same change-log batch as the refresh, in no fixed order:
    forecast_current brings a forecast that is behind the gauge's newest reading up to it."""
    from forecasts.services import forecast_current

    times, down, up, model = trained_pair
    ingest([{"station": "DOWN", "observed_at": datetime.fromtimestamp(times[-1] + 600, UTC), "value": 1.0}])
    newest = datetime.fromtimestamp(times[-1] + 1200, UTC)
    # Stored without the drain running: the gauge's state moves on, its forecast does not (yet).
    observation_ingest(municipality=None, items=[{"station": "DOWN", "observed_at": newest, "value": 1.1}], source="http")
    assert StationForecast.objects.get(station=down).based_on < newest
    down.refresh_from_db()
    forecast = forecast_current(down)
    assert forecast.based_on == newest and forecast.level_now == 1.1 and forecast.method == Method.ARX
    # Only the gauge itself is recomputed for such a reader, not the gauges that read it.
    assert StationForecast.objects.filter(station=up).count() == 0


def test_the_forecast_is_visible_only_to_who_may_see_the_gauge(trained_pair, towns, client, ingest):
    times, down, up, model = trained_pair
    down.visibility = Visibility.PRIVATE
    down.save()
    ingest([{"station": "DOWN", "observed_at": datetime.fromtimestamp(times[-1] + 600, UTC), "value": 1.0}])
    missing = client.get("/api/v1/stations/NO-SUCH/forecast")
    assert client.get("/api/v1/stations/DOWN/forecast").json() == missing.json()
    outsider = get_user_model().objects.create_user("b-user")
    Membership.objects.create(user=outsider, municipality=towns[1], role=Membership.Role.ADMIN)
    assert client.get("/hq/forecasts/DOWN/").status_code == 302  # to the login page
    client.force_login(outsider)
    assert client.get("/api/v1/stations/DOWN/forecast").status_code == 404
    assert client.get("/hq/forecasts/DOWN/").status_code == 404
    assert "mz-forecast" not in client.get("/stations/UP/").content.decode()
    insider = get_user_model().objects.create_user("a-user")
    Membership.objects.create(user=insider, municipality=towns[0], role=Membership.Role.VIEWER)
    client.force_login(insider)
    body = client.get("/api/v1/stations/DOWN/forecast").json()
    assert body["method"] == "arx" and body["points"]
    page = client.get("/stations/DOWN/").content.decode()
    assert 'id="station-forecast"' in page and '"bands"' in page
    skill = client.get("/hq/forecasts/DOWN/").content.decode()
    assert 'id="backtest-steps"' in skill and "persistence" in skill and "氾濫危険水位" in skill


def test_forecast_train_command_rejects_unknown_codes(db):
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="NOPE"):
        call_command("forecast_train", "NOPE")
    assert not ForecastModel.objects.exists()


def test_ngsi_water_observed_carries_the_forecast(trained_pair, ingest, client):
    times, down, up, model = trained_pair
    ingest([{"station": "DOWN", "observed_at": datetime.fromtimestamp(times[-1] + 600, UTC), "value": 1.0}])
    entity = client.get("/ngsi/v2/entities/urn:ngsi-ld:WaterObserved:DOWN").json()
    forecast = entity["forecast"]
    assert forecast["type"] == "StructuredValue"
    value = forecast["value"]
    assert value["method"] == "arx" and len(value["points"]) >= 18
    assert all(p["lower"] <= p["median"] <= p["upper"] for p in value["points"])
    # A gauge without a forecast has no such attribute.
    assert "forecast" not in client.get("/ngsi/v2/entities/urn:ngsi-ld:WaterObserved:UP").json()


def test_a_gauge_that_fell_silent_while_its_inputs_report_has_no_forecast(trained_pair, ingest, client):
    times, down, up, model = trained_pair
    ingest([{"station": "DOWN", "observed_at": datetime.fromtimestamp(times[-1] + 600, UTC), "value": 1.0}])
    assert StationForecast.objects.filter(station=down).exists()
    # The upstream gauge reports for another hour; the downstream one does not.
    ingest([{"station": "UP", "observed_at": datetime.fromtimestamp(times[-1] + 600 * k, UTC), "value": 0.6} for k in range(2, 9)])
    assert not StationForecast.objects.filter(station=down).exists()
    assert client.get("/api/v1/stations/DOWN/forecast").json()["method"] is None


@pytest.mark.parametrize("code", ["%00", "A%00B", "%3Cscript%3Ealert(1)%3C%5Cscript%3E", "'%20OR%201=1--", "X" * 5000, "9" * 400])
def test_hostile_codes_get_the_same_404_as_a_missing_station(client, db, code):
    response = client.get(f"/api/v1/stations/{code}/forecast")
    assert response.status_code == 404
    assert response.json() == {"detail": "No station with this code."}


def test_retraining_is_due_for_missing_old_or_outgrown_models(trained_pair):
    from forecasts.services import RETRAIN_AFTER, RETRAIN_AFTER_READINGS, forecasts_retrain_due
    from forecasts.tasks import forecasts_retrain_due_task

    times, down, up, model = trained_pair
    assert [m.station.code for m in forecasts_retrain_due()] == ["UP"]  # it had no model yet
    assert forecasts_retrain_due() == []
    store(down, times[-1] + 600 * np.arange(1, RETRAIN_AFTER_READINGS + 1), np.ones(RETRAIN_AFTER_READINGS))
    assert [(m.station.code, m.version) for m in forecasts_retrain_due()] == [("DOWN", 2)]
    ForecastModel.objects.update(trained_at=datetime.now(UTC) - RETRAIN_AFTER)
    assert forecasts_retrain_due_task.delay().get() == 2


def test_a_version_stored_with_json_lists_serves_the_same_forecast(trained_pair, ingest):
    """Versions stored before 2026-12-01 keep their arrays as JSON lists, newer ones packed
    (learn.ArxModel.as_params): a process decoding either stores the same forecast."""
    from forecasts import services

    from .test_learn import _list_params

    times, down, up, model = trained_pair
    assert isinstance(model.params["beta"], dict)
    ingest([{"station": "DOWN", "observed_at": datetime.fromtimestamp(times[-1] + 600, UTC), "value": 1.0}])
    packed = StationForecast.objects.get(station=down)
    model.params = _list_params(learn.ArxModel.from_params(model.params, model.skill))
    model.save()
    services._LOADED.clear()  # as a new process: the version is decoded from the database again
    forecasts_refresh([down.pk])
    listed = StationForecast.objects.get(station=down)
    assert isinstance(ForecastModel.objects.get(pk=model.pk).params["beta"], list)
    assert listed.method == packed.method == Method.ARX
    assert (listed.points, listed.exceedance, listed.crossing) == (packed.points, packed.exceedance, packed.crossing)


def test_a_damaged_version_falls_back_to_the_trend_without_stopping_the_refresh(trained_pair, ingest, caplog):
    """A stored version that cannot be decoded (damaged params) gets its gauge the labelled trend and
    one logged error; the refresh goes on (it runs in the change-log drain, where raising would fail
    the batch for every gauge, every batch)."""
    from forecasts import services

    times, down, up, model = trained_pair
    model.params = model.params | {"beta": {"shape": [3]}}  # the packed array's bytes lost
    model.save()
    services._LOADED.clear()  # as a new process
    with caplog.at_level("ERROR", logger="forecasts.services"):
        ingest([{"station": "DOWN", "observed_at": datetime.fromtimestamp(times[-1] + 600, UTC), "value": 1.0}])
        forecasts_refresh([down.pk])
    forecast = StationForecast.objects.get(station=down)
    assert forecast.method == Method.TREND
    errors = [record for record in caplog.records if "cannot be decoded" in record.getMessage()]
    assert len(errors) == 1 and "'beta'" in errors[0].getMessage()
    # The periodic retrain replaces it, and the gauge is served by the learned model again.
    from forecasts.services import forecasts_retrain_due

    retrained = [m for m in forecasts_retrain_due() if m.station_id == down.pk]
    assert retrained and retrained[0].method == Method.ARX and retrained[0].pk != model.pk
    assert StationForecast.objects.get(station=down).method == Method.ARX


def test_a_version_of_older_inputs_is_migrated_not_served_and_retrained(trained_pair, ingest):
    """The migration path: a version of features version 4 kept its skill twice (params and the
    column); migration 0005 leaves it in the column only; the version is not served (its free
    rain-response could forecast a fall on unseen rain: the labelled trend serves) and the periodic
    retrain replaces it. (A version stored before versions were recorded reads as version 1.)"""
    from importlib import import_module

    from django.apps import apps

    from forecasts.services import forecasts_retrain_due

    times, down, up, model = trained_pair
    assert "skill" not in model.params and model.skill  # one home: the column
    unversioned = {key: value for key, value in model.params.items() if key != "features_version"}
    assert not learn.ArxModel.from_params(unversioned, model.skill).current
    model.params = model.params | {"features_version": 4, "skill": model.skill}
    model.save()
    import_module("forecasts.migrations.0005_skill_one_home").drop_skill_from_params(apps, None)
    migrated = ForecastModel.objects.get(pk=model.pk)
    assert "skill" not in migrated.params and migrated.skill == model.skill
    ingest([{"station": "DOWN", "observed_at": datetime.fromtimestamp(times[-1] + 600, UTC), "value": 1.0}])
    assert StationForecast.objects.get(station=down).method == Method.TREND
    assert ("DOWN", model.version + 1) in [(m.station.code, m.version) for m in forecasts_retrain_due()]
    retrained = ForecastModel.objects.get(station=down, version=model.version + 1)
    assert "skill" not in retrained.params and retrained.skill
    assert StationForecast.objects.get(station=down).method == Method.ARX
