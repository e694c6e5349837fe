"""Forecast rain as a model input: read only from issues made by the forecast time, improving the
3-hour forecast on held-out data; and posted through the API by a town's gateway (all or nothing,
its own rain gauges only), reaching the stored forecasts through the change log."""

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from forecasts import backtest, learn, predict
from forecasts.learn import Inputs, RainForecasts

from .synthetic import STEP, basin, rain_forecasts, wetter
from .test_services import geography, stored_pair  # noqa: F401  (geography: a fixture, the basin and its river)


@pytest.fixture(scope="module")
def with_forecasts():
    times, inputs = basin(days=40, seed=7)
    forecasts = rain_forecasts(times, inputs.rain[0].values, seed=3)
    inputs = Inputs(inputs.own, inputs.upstream, inputs.rain, [forecasts])
    split = times[int(len(times) * 0.6)]
    model = learn.fit(inputs, STEP, since=times[0], until=split)
    return times, inputs, split, model


def later_issues_poisoned(forecasts: RainForecasts, after: float) -> RainForecasts:
    return RainForecasts(
        forecasts.issued,
        forecasts.valid,
        [values * 0 + 1e3 if issued > after else values for issued, values in zip(forecasts.issued, forecasts.values)],
    )


def test_a_model_that_reads_forecast_rain_is_learned_next_to_the_one_that_does_not(with_forecasts):
    times, inputs, split, model = with_forecasts
    sub = model.forecast_rain_model
    assert not model.forecast_rain and sub is not None and sub.forecast_rain
    assert "forecast_rain_next_180m" in learn.feature_names(sub.upstream_count, sub.extended, forecast_rain=True)
    # Stored and loaded again (ForecastModel.params) it is the same model.
    again = learn.ArxModel.from_json(json.loads(json.dumps(model.as_json())))
    assert again.forecast_rain_model.beta == sub.beta
    stored = learn.ArxModel.from_params(json.loads(json.dumps(model.as_params())), model.skill)
    assert stored.forecast_rain_model.as_json() == sub.as_json() | {"skill": []} and stored.as_json() == model.as_json() | {
        "with_forecast_rain": {k: v for k, v in model.with_forecast_rain.items() if k != "skill"}}


def test_a_stored_version_with_forecast_rain_forecasts_bit_for_bit_as_fitted(with_forecasts):
    """Both variants packed (learn.ArxModel.as_params) or as JSON lists (versions stored before
    2026-12-01): decoded, each serves exactly the fitted model's forecasts, forecast rain included."""
    from .test_learn import _list_params, _same_forecasts

    times, inputs, split, model = with_forecasts
    issues = times[int(len(times) * 0.7) :: 131][:12]
    for params in (model.as_params(), _list_params(model)):
        stored = learn.ArxModel.from_params(json.loads(json.dumps(params)), model.skill)
        assert _same_forecasts(model, stored, inputs, issues) >= 10
    assert any(predict.model_forecast(model, inputs, at).forecast_rain for at in issues)


def test_more_rain_forecast_or_fallen_never_lowers_the_forecast(with_forecasts):
    """Monotone by construction in forecast rain too (learn.monotone_columns), also for far more than
    any training issue held: the served forecast (either variant) never falls with more rain."""
    times, inputs, split, model = with_forecasts
    sub = model.forecast_rain_model
    rng = np.random.default_rng(5)
    issues = inputs.rain_forecast[0]
    heaviest = inputs.rain[0].until(split).values.max()
    checked = 0
    for at in times[int(len(times) * 0.7) :: 89][:15]:
        change, _ = sub.predict(sub.features(inputs, np.array([at])))
        served = predict.model_forecast(model, inputs, at, model.leads)
        # Far beyond any training issue, and a drizzle just now (the dryness inputs' scale).
        for factor, most, recent in ((2.0, 2 * heaviest, False), (20.0, 20 * heaviest, False),
                                     (1.0, learn.DRYNESS_MM, True)):
            more = RainForecasts(issues.issued, issues.valid, [values * factor + 0.5 for values in issues.values])
            wet = Inputs(inputs.own, inputs.upstream, [wetter(inputs.rain[0], at, rng, most, recent=recent)], [more])
            wet_change, _ = sub.predict(sub.features(wet, np.array([at])))
            assert (wet_change >= change - 1e-9).all()
            wet_served = predict.model_forecast(model, wet, at, model.leads)
            assert all(w[1] >= p[1] - 1e-9 for w, p in zip(wet_served.points, served.points))
            checked += (wet_change > change + 1e-3).any()
    assert checked  # the rain is read: more of it raised some forecast


def test_forecast_rain_is_read_only_from_issues_made_by_the_forecast_time(with_forecasts):
    times, inputs, split, model = with_forecasts
    sub = model.forecast_rain_model
    checked = 0
    for at in times[int(len(times) * 0.7) :: 61][:20]:
        clean = predict.model_forecast(sub, inputs, at, sub.leads)
        later = Inputs(inputs.own, inputs.upstream, inputs.rain, [later_issues_poisoned(inputs.rain_forecast[0], at)])
        assert predict.model_forecast(sub, later, at, sub.leads).points == clean.points
        # ... while the issue in force is read: an absurd one changes the forecast.
        current = Inputs(inputs.own, inputs.upstream, inputs.rain, [later_issues_poisoned(inputs.rain_forecast[0], at - 3601)])
        checked += predict.model_forecast(sub, current, at, sub.leads).points != clean.points
    assert checked == 20


def test_an_issue_too_old_or_too_short_is_not_used():
    issued = 1_000_000.0
    forecasts = RainForecasts.of([(issued, issued + 600 * h, 1.0) for h in range(1, 7)])  # one hour ahead
    at = np.array([issued - 600, issued, issued + 600, issued + learn.FORECAST_RAIN_MAX_AGE + 600])
    assert np.isnan(forecasts.ahead(at[:1], 3600)).all()  # before any issue
    assert forecasts.ahead(at[1:2], 3600).tolist() == [6.0]
    assert np.isnan(forecasts.ahead(at[2:3], 3600)).all()  # the issue does not reach t + 1 h
    assert np.isnan(forecasts.ahead(at[3:], 600)).all()  # too old
    assert np.isnan(learn.rain_forecast_total([], at, 3600)).all()


def test_forecast_rain_improves_the_3_hour_forecast_on_held_out_data(with_forecasts):
    times, inputs, split, model = with_forecasts
    without = Inputs(inputs.own, inputs.upstream, inputs.rain)
    since, until = split, times[-1] - 6 * 3600
    scores = {}
    for name, given in (("with", inputs), ("without", without)):
        replay = backtest.predictions(given, STEP, since=since, until=until)
        lead = int(3 * 3600 // STEP) - 1
        moving = np.abs(replay.observed[:, lead] - replay.level) > 0.05
        scores[name] = learn.skill_scores(replay.observed[moving, lead], replay.predicted["model"][moving, lead])["rmse"]
    assert scores["with"] < 0.9 * scores["without"], scores


# --- posted through the API ------------------------------------------------------------------------


def post(client, token, body):
    return client.post("/api/v1/rain-forecasts", data=json.dumps(body) if not isinstance(body, str) else body,
                       content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}")


def issue(code, issued_at, amounts, step=timedelta(minutes=10)):
    return {"station": code, "issued_at": issued_at.isoformat(),
            "values": [{"valid_at": (issued_at + step * (k + 1)).isoformat(), "value": v} for k, v in enumerate(amounts)]}


@pytest.fixture
def rain_gauges(towns):
    from sensors.models import StationKind, Visibility

    from ..conftest import make_station

    return {
        "a": make_station(towns[0], "RAIN-A", kind=StationKind.RAIN),
        "b": make_station(towns[1], "RAIN-B", kind=StationKind.RAIN, visibility=Visibility.PUBLIC),
        "river": make_station(towns[0], "RIVER-A"),
    }


@pytest.mark.django_db
def test_a_gateway_posts_forecast_rain_for_its_towns_rain_gauges(client, token_a, rain_gauges):
    from forecasts.models import RainForecast

    issued = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=5)
    response = post(client, token_a, {"forecasts": [issue("RAIN-A", issued, [1.0, 2.5, 0.0])]})
    assert response.status_code == 200 and response.json() == {"issues": 1, "intervals": 3}
    # Re-posting the issue replaces it.
    assert post(client, token_a, {"forecasts": [issue("RAIN-A", issued, [4.0])]}).json() == {"issues": 1, "intervals": 1}
    assert list(RainForecast.objects.values_list("value", flat=True)) == [4.0]
    assert client.post("/api/v1/rain-forecasts", data="{}", content_type="application/json").status_code == 401


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body, where",
    [
        ("{not json", None),
        ([], "forecasts"),
        ({"forecasts": []}, "forecasts"),
        ({"forecasts": ["x"]}, "forecasts[0]"),
        ({"forecasts": [{"station": "RAIN-B", "issued_at": "NOW", "values": []}]}, "forecasts[0].station"),
        ({"forecasts": [{"station": "RIVER-A", "issued_at": "NOW", "values": [{"valid_at": "+10", "value": 1}]}]}, "forecasts[0].station"),
        ({"forecasts": [{"station": "NO-SUCH", "issued_at": "NOW", "values": [{"valid_at": "+10", "value": 1}]}]}, "forecasts[0].station"),
        ({"forecasts": [{"station": "RAIN-A", "issued_at": "2026-11-30T10:00", "values": [{"valid_at": "+10", "value": 1}]}]}, "forecasts[0].issued_at"),
        ({"forecasts": [{"station": "RAIN-A", "issued_at": "NOW", "values": [{"valid_at": "+10", "value": -1}]}]}, "forecasts[0].values[0].value"),
        ({"forecasts": [{"station": "RAIN-A", "issued_at": "NOW", "values": [{"valid_at": "+10", "value": "NaN"}]}]}, "forecasts[0].values[0].value"),
        ({"forecasts": [{"station": "RAIN-A", "issued_at": "NOW", "values": [{"valid_at": "+10", "value": 1e400}]}]}, None),
        ({"forecasts": [{"station": "RAIN-A", "issued_at": "NOW", "values": [{"valid_at": "+0", "value": 1}]}]}, "forecasts[0].values[0].valid_at"),
        ({"forecasts": [{"station": "RAIN-A", "issued_at": "NOW", "values": [{"valid_at": "+1000", "value": 1}]}]}, "forecasts[0].values[0].valid_at"),
        ({"forecasts": [{"station": "RAIN-A", "issued_at": "NOW", "values": [{"valid_at": "+10", "value": 1}] * 200}]}, "forecasts[0].values"),
        ({"forecasts": [{"station": "RAIN-A\x00", "issued_at": "NOW", "values": [{"valid_at": "+10", "value": 1}]}]}, "forecasts[0].station"),
        ({"forecasts": [{"station": "RAIN-A", "issued_at": "X" * 5000, "values": [{"valid_at": "+10", "value": 1}]}]}, "forecasts[0].issued_at"),
        ({"forecasts": [issue("RAIN-A", datetime(2026, 1, 1, tzinfo=UTC), [1])]}, "forecasts[0].issued_at"),
    ],
)
def test_malformed_hostile_or_foreign_forecasts_store_nothing_and_say_where(client, token_a, rain_gauges, body, where):
    from forecasts.models import RainForecast

    now = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    if not isinstance(body, str):
        text = json.dumps(body).replace('"NOW"', json.dumps(now.isoformat()))
        for minutes in ("+0", "+10", "+1000"):
            text = text.replace(f'"{minutes}"', json.dumps((now + timedelta(minutes=int(minutes))).isoformat()))
        text = text.replace("Infinity", "1e400")
        body = text
    good = issue("RAIN-A", now, [1.0])
    if where and where.startswith("forecasts[0]"):
        # A good issue next to the bad one is refused with it: all or nothing.
        document = json.loads(body.replace("1e400", "1"))
        document["forecasts"].append(good)
        body = json.dumps(document)
    response = post(client, token_a, body)
    assert response.status_code == 400, response.content
    if where:
        assert where in [e["where"] for e in response.json()["errors"]], response.json()
        assert "RAIN-B" not in json.dumps(response.json())  # another town's gauge is not confirmed to exist
    assert not RainForecast.objects.exists()


@pytest.mark.django_db
def test_posted_forecast_rain_reaches_the_forecast_through_the_change_log(
    towns, geography, token_a, client, django_capture_on_commit_callbacks  # noqa: F811
):
    """A gauge trained with forecast rain in its history: a new issue for its rain gauge re-forecasts
    it, made by the model that reads forecast rain."""
    from forecasts.models import RainForecast, StationForecast
    from forecasts.services import forecast_train, forecasts_refresh

    times, synthetic, down, up, rain = stored_pair(towns[0])
    from sensors.services import station_state_recompute

    for station in (down, up, rain):
        station_state_recompute(station=station)
    forecasts = rain_forecasts(times, synthetic.rain[0].values, seed=5)
    received = datetime.now(UTC)
    RainForecast.objects.bulk_create(
        RainForecast(station=rain, issued_at=datetime.fromtimestamp(t, UTC), valid_at=datetime.fromtimestamp(v, UTC),
                     value=x, received_at=received)
        for t, valid, values in zip(forecasts.issued, forecasts.valid, forecasts.values)
        for v, x in zip(valid, values)
    )
    model = forecast_train(down)
    assert model.params["with_forecast_rain"] is not None and "forecast rain" in model.note
    forecasts_refresh([down.pk])
    last = datetime.fromtimestamp(times[-1], UTC)
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, token_a, {"forecasts": [issue("RAIN", last, [0.5] * 36)]})
    assert response.status_code == 200, response.content
    forecast = StationForecast.objects.get(station=down)
    assert forecast.forecast_rain and forecast.method == "arx"
    assert client.get("/api/v1/stations/DOWN/forecast").json()["forecast_rain"] is True
    # Heavy rain forecast now raises the forecast above what light rain gave: as heavy as the
    # heaviest 3 hours forecast in its training history ...
    light = forecast.points[-1][1]
    heaviest = float(np.nanmax(learn.rain_forecast_total([forecasts], forecasts.issued, 3 * 3600)))
    with django_capture_on_commit_callbacks(execute=True):
        post(client, token_a, {"forecasts": [issue("RAIN", last, [heaviest / 18] * 36)]})
    heavy = StationForecast.objects.get(station=down)
    assert heavy.forecast_rain and heavy.points[-1][1] > light
    # ... and far more than ever forecast in training is read too, and raises it further: the
    # rain-response never lowers a forecast as rain grows (learn._ridge), so nothing to guard.
    with django_capture_on_commit_callbacks(execute=True):
        post(client, token_a, {"forecasts": [issue("RAIN", last, [heaviest / 18 * 3] * 36)]})
    heavier = StationForecast.objects.get(station=down)
    assert heavier.forecast_rain and heavier.points[-1][1] > heavy.points[-1][1]
    assert client.get("/api/v1/stations/DOWN/forecast").json()["forecast_rain"] is True
