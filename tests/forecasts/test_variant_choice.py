"""Which model serves which lead: per gauge and lead the variant (readings alone, or with forecast
rain) chosen by its out-of-sample skill on the training rows only, stored with the model version;
a lead no variant wins against persistence and the trend is not served, and the API says so."""

import json
from datetime import UTC, datetime

import numpy as np
import pytest

from forecasts import learn, predict
from forecasts.learn import Inputs, RainForecasts, Series

from .synthetic import STEP
from .test_rain_forecast import with_forecasts  # noqa: F401  (a fixture)
from .test_services import geography, stored_pair  # noqa: F401  (geography: a fixture)


@pytest.fixture(scope="module")
def gauge(with_forecasts):  # noqa: F811
    """The synthetic basin with forecast rain, trained on its first 60 % (times, inputs, split, model)."""
    return with_forecasts


def poisoned_after(inputs: Inputs, after: float, seed: int = 1) -> Inputs:
    """Every reading and forecast-rain issue after `after` replaced by nonsense: a flood at every
    gauge, rain where none fell, issues of absurd amounts."""
    rng = np.random.default_rng(seed)

    def series(s: Series, scale: float) -> Series:
        later = s.times > after
        return Series(s.times, np.where(later, s.values + rng.uniform(0, scale, len(s.values)), s.values))

    forecasts = [
        RainForecasts(f.issued, f.valid, [v * 0 + 500.0 if issued > after else v for issued, v in zip(f.issued, f.values)])
        for f in inputs.rain_forecast
    ]
    return Inputs(series(inputs.own, 5.0), [series(s, 5.0) for s in inputs.upstream], [series(s, 50.0) for s in inputs.rain],
                  forecasts)


def test_the_choice_of_variant_per_lead_uses_no_held_out_data(gauge):
    times, inputs, split, model = gauge
    assert model.forecast_rain_model is not None
    poisoned = poisoned_after(inputs, split)
    again = learn.fit(poisoned, STEP, since=times[0], until=split)
    # The same choice, the same skill behind it, the same coefficients: nothing after `split` was read.
    assert again.skill == model.skill
    assert again.forecast_rain_model.skill == model.forecast_rain_model.skill
    assert again.as_json() == model.as_json()
    # ... while the poison is strong enough to change a choice made with it in the training span.
    later = times[int(len(times) * 0.8)]
    assert learn.fit(poisoned, STEP, since=times[0], until=later).skill != learn.fit(inputs, STEP, since=times[0], until=later).skill


def test_each_lead_records_the_variant_training_chose_and_why(gauge):
    times, inputs, split, model = gauge
    rain_model = model.forecast_rain_model
    serves = []
    for entry, rain_entry in zip(model.skill, rain_model.skill):
        chosen = entry["forecast_rain"]
        assert chosen == {
            "nse": rain_entry["nse"], "rmse": rain_entry["rmse"], "readings_only_rmse": rain_entry["readings_only_rmse"],
            "persistence_rmse": rain_entry["persistence_rmse"], "trend_rmse": rain_entry["trend_rmse"],
            "rows": rain_model.rows, "serves": rain_entry["serves"],
        }
        # Forecast rain serves a lead only where it beat the model of readings on the same rows, and
        # persistence and the trend.
        assert chosen["serves"] == (rain_entry["shown"] and chosen["rmse"] < chosen["readings_only_rmse"])
        assert not rain_entry["shown"] or chosen["rmse"] < min(chosen["persistence_rmse"], chosen["trend_rmse"])
        serves.append(chosen["serves"])
    # On this basin forecast rain earns the long leads (the rain that has not fallen yet) only.
    assert any(serves) and serves[-1]
    # Stored and loaded again (ForecastModel.params, .skill), the choice is the same.
    again = learn.ArxModel.from_json(json.loads(json.dumps(model.as_json())))
    assert learn.served_variants(again.skill, True) == learn.served_variants(model.skill, True)


def with_choice(model: learn.ArxModel, chosen: set[int], shown: int | None = None) -> learn.ArxModel:
    """The model with forecast rain chosen at these leads (0-based) and the model of readings shown
    at its first `shown` leads (all: None)."""
    skill = []
    for lead, entry in enumerate(model.skill):
        entry = json.loads(json.dumps(entry))
        entry["forecast_rain"]["serves"] = lead in chosen
        entry["shown"] = shown is None or lead < shown
        skill.append(entry)
    return learn.ArxModel.from_json(model.as_json() | {"skill": skill})


def test_each_lead_is_served_by_the_variant_chosen_for_it(gauge):
    times, inputs, split, model = gauge
    readings_only = learn.ArxModel.from_json({key: value for key, value in model.as_json().items() if key != "with_forecast_rain"})
    rain_model = model.forecast_rain_model
    mixed = with_choice(model, chosen=set(range(9, 36)))
    at = times[int(len(times) * 0.75)]
    served = predict.model_forecast(mixed, inputs, at)
    alone = predict.model_forecast(readings_only, inputs, at)
    rain = predict.model_forecast(learn.ArxModel.from_json(rain_model.as_json() | {"skill": model.skill}), inputs, at)
    assert served.forecast_rain and len(served.points) == 36
    assert served.points[:9] == alone.points[:9]
    assert served.points[9:] == rain.points[9:]
    # Without a current issue the model of readings serves every lead it shows.
    no_issue = Inputs(inputs.own, inputs.upstream, inputs.rain, [RainForecasts.of([])])
    plain = predict.model_forecast(mixed, no_issue, at)
    assert not plain.forecast_rain and plain.points == alone.points
    # A replay (the backtest's) serves the same per time and lead.
    run = predict.model_run(mixed, inputs, np.array([at]))
    assert run.chosen[0].tolist() == [learn.READINGS] * 9 + [learn.WITH_FORECAST_RAIN] * 27
    # A model stored before the choice existed (no "forecast_rain" in its skill) never serves forecast rain.
    old_skill = [{key: value for key, value in entry.items() if key not in ("forecast_rain", "trend_rmse")} for entry in model.skill]
    old = learn.ArxModel.from_json(model.as_json() | {"skill": old_skill})
    assert predict.model_forecast(old, inputs, at).points == alone.points


def test_forecast_rain_far_beyond_training_is_read_and_only_raises_the_forecast(gauge):
    times, inputs, split, model = gauge
    mixed = with_choice(model, chosen=set(range(9, 36)))
    at = times[int(len(times) * 0.75)]
    base = predict.model_forecast(mixed, inputs, at)
    assert base.forecast_rain
    # Ten times the heaviest interval any issue held, in every interval of every issue.
    issues = inputs.rain_forecast[0]
    heaviest = max(float(values.max()) for values in issues.values if len(values))
    flood = RainForecasts(issues.issued, issues.valid, [values * 0 + 10 * heaviest for values in issues.values])
    served = predict.model_forecast(mixed, Inputs(inputs.own, inputs.upstream, inputs.rain, [flood]), at)
    assert served.forecast_rain
    assert all(wet[1] >= point[1] - 1e-9 for wet, point in zip(served.points, base.points))
    assert served.points[-1][1] > base.points[-1][1]
    # A version stored with the training range that once limited it (before 2026-12) still decodes.
    old = learn.ArxModel.from_json(mixed.as_json() | {"input_range": [[0.0], [1.0]]})
    assert predict.model_forecast(old, Inputs(inputs.own, inputs.upstream, inputs.rain, [flood]), at).points == served.points


def test_a_lead_no_variant_wins_is_not_served(gauge):
    times, inputs, split, model = gauge
    at = times[int(len(times) * 0.75)]

    def leads_of(result):
        return [round((p[0] - at) / STEP) for p in result.points]

    # Readings shown to lead 12, forecast rain chosen at leads 13-20 (1-based): 20 leads with an issue.
    mixed = with_choice(model, chosen=set(range(12, 20)), shown=12)
    none = [learn.NOT_SHOWN] * (model.leads - 20)
    assert learn.served_variants(mixed.skill, True) == [learn.READINGS] * 12 + [learn.WITH_FORECAST_RAIN] * 8 + none
    assert leads_of(predict.model_forecast(mixed, inputs, at)) == list(range(1, 21))
    no_issue = Inputs(inputs.own, inputs.upstream, inputs.rain, [RainForecasts.of([])])
    assert leads_of(predict.model_forecast(mixed, no_issue, at)) == list(range(1, 13))
    # A lead no variant won is skipped, the leads around it stay: here the first ten minutes lost.
    gap = with_choice(model, chosen={5, 6}, shown=None)
    gap.skill[0]["shown"] = False
    assert learn.served_variants(gap.skill, True)[:8] == [learn.NOT_SHOWN] + [learn.READINGS] * 4 + [learn.WITH_FORECAST_RAIN] * 2 + [learn.READINGS]
    skipped = predict.model_forecast(gap, inputs, at)
    assert leads_of(skipped) == list(range(2, model.leads + 1))
    # ... and the warning probabilities read only the shown leads: P within 30 min is that of leads 2-3.
    line = predict.ThresholdLine("flood_caution", "氾濫注意水位", "Flood caution", 2, skipped.level_now + 0.01)
    annotated = predict.annotate(skipped, [line])
    by_step = annotated.exceedance_by_threshold[0]["by_step"]
    assert len(by_step) == len(skipped.points)
    assert annotated.exceedance_by_threshold[0]["within"]["30"] == round(max(by_step[:2]), 3)
    # No lead won by either: no learned forecast (the service serves the labelled trend).
    assert predict.model_forecast(with_choice(model, chosen=set(), shown=0), inputs, at) is None


def test_the_api_and_the_page_say_which_leads_are_not_shown_and_why(towns, geography, client, django_capture_on_commit_callbacks):  # noqa: F811
    from django.contrib.auth import get_user_model

    from forecasts.models import ForecastModel
    from forecasts.services import forecast_train
    from sensors.services import observation_ingest
    from tenancy.models import Membership

    times, synthetic, down, up, rain = stored_pair(towns[0])
    record = forecast_train(down)
    skill = [dict(entry) for entry in record.skill]
    assert all("trend_rmse" in entry for entry in skill)
    # As if the 1st and the 13th to 15th leads (10 min, 130-150 min) had lost to persistence or the
    # trend in training.
    for lead in (0, 12, 13, 14):
        skill[lead]["shown"] = False
    record.skill = skill
    record.save()
    ForecastModel.objects.filter(pk=record.pk).update(trained_at=datetime.now(UTC))  # a version this process has not decoded
    with django_capture_on_commit_callbacks(execute=True):
        observation_ingest(municipality=None, source="http",
                           items=[{"station": "DOWN", "observed_at": datetime.fromtimestamp(times[-1] + 600, UTC), "value": 1.0}])
    user = get_user_model().objects.create_user("a-user")
    Membership.objects.create(user=user, municipality=towns[0], role=Membership.Role.VIEWER)
    client.force_login(user)
    body = client.get("/api/v1/stations/DOWN/forecast").json()
    served = [None if lead in (0, 12, 13, 14) else "readings" for lead in range(len(skill))]
    assert [entry["served_by"] for entry in body["skill"]] == served
    assert body["method"] == "arx" and len(body["points"]) == len(skill) - 4 and body["horizon_minutes"] == len(skill) * 10
    assert body["leads_not_shown"]["minutes"] == [10, 130, 140, 150]
    assert body["leads_not_shown"]["text_en"].startswith("Not shown 10, 130–150 min ahead")
    assert "persistence" in body["leads_not_shown"]["text_en"] and "持続予測" in body["leads_not_shown"]["text_ja"]
    page = client.get("/stations/DOWN/").content.decode()
    assert 'id="forecast-leads-not-shown"' in page and "130–150" in page
