"""Tide as a forecast input for river gauges near the mouth (issue 16 item 3): the sea backs the
estuary up twice a day, so a model that reads the coast's tide gauge forecasts the estuary gauge
better than one that does not; the tide gauge is chosen by distance, through the owner's visibility."""

from __future__ import annotations

import numpy as np
import pytest

from forecasts import learn, predict
from forecasts.learn import Inputs, Series
from forecasts.selectors import forecast_inputs, tide_inputs
from geo.models import Basin
from sensors.models import StationKind, Visibility
from tests.conftest import make_station

from .synthetic import STEP, basin

M2_SECONDS = 12.42 * 3600


def estuary(days: int = 40, seed: int = 11):
    """The synthetic basin's downstream gauge moved to the mouth: the sea (two tides and a few storm
    surges, bells of 0.4-1 m over hours) reaches it an hour after the tide gauge sees it, at 0.6 ×."""
    times, inputs = basin(days=days, seed=seed)
    rng = np.random.default_rng(seed)
    t = times - times[0]
    sea = 0.2 + 0.6 * np.cos(2 * np.pi * t / M2_SECONDS) + 0.15 * np.cos(2 * np.pi * t / 43200 + 1.0)
    for _ in range(days // 4):
        sea += rng.uniform(0.4, 1.0) * np.exp(-(((t - rng.uniform(t[0], t[-1])) / (3 * 3600)) ** 2))
    reaching = np.concatenate(([sea[0]] * 6, sea[:-6]))
    own = Series(times, np.round(inputs.own.values + 0.6 * reaching, 2))
    tide = Series(times, np.round(sea, 2))
    return times, Inputs(own, inputs.upstream, inputs.rain, tide=[tide]), Inputs(own, inputs.upstream, inputs.rain)


def held_out_rmse(model, inputs: Inputs, times, split, lead: int) -> float:
    issue = times[(times > split) & (times < times[-1] - learn.HORIZON_SECONDS)]
    change, _ = model.predict(model.features(inputs, issue))
    y = learn.targets_at(inputs.own, issue, STEP, model.leads)
    ok = np.isfinite(y[:, lead])
    return float(np.sqrt(np.mean((change[ok, lead] - y[ok, lead]) ** 2)))


def test_reading_the_tide_gauge_improves_the_estuary_forecast():
    times, with_tide, without_tide = estuary()
    split = times[int(len(times) * 0.6)]
    model = learn.fit(with_tide, STEP, since=times[0], until=split)
    blind = learn.fit(without_tide, STEP, since=times[0], until=split)
    assert len(model.tide_mean) == 1 and blind.tide_mean == []
    assert learn.feature_names(1, tide_count=1)[5:9] == ["up0", "up0_d1", "up0_d3", "up0_d6"]
    assert learn.feature_names(1, tide_count=1)[9:12] == ["tide0", "tide0_d1", "tide0_d3"]
    # Within the hour the sea takes to reach the gauge, the tide gauge tells what is coming (measured:
    # about 0.72 and 0.78 of the blind model's error at 20 and 60 minutes).
    for lead in (1, 5):
        assert held_out_rmse(model, with_tide, times, split, lead) < 0.85 * held_out_rmse(blind, without_tide, times, split, lead)


def test_a_silent_tide_gauge_reads_as_its_mean_level_not_a_crash():
    times, with_tide, _ = estuary(days=20)
    model = learn.fit(with_tide, STEP, since=times[0], until=times[-1])
    at = times[-1]
    silent = Inputs(with_tide.own, with_tide.upstream, with_tide.rain, tide=[Series.of([])])
    gone = Inputs(with_tide.own, with_tide.upstream, with_tide.rain, tide=[])
    first = predict.model_forecast(model, silent, at, model.leads)
    assert first.points == predict.model_forecast(model, gone, at, model.leads).points
    assert first.points and all(np.isfinite(value) for point in first.points for value in point)


def test_an_old_model_without_tide_inputs_still_loads():
    times, _, without_tide = estuary(days=20)
    model = learn.fit(without_tide, STEP, since=times[0], until=times[-1])
    data = model.as_json()
    data.pop("tide_mean")
    again = learn.ArxModel.from_json(data)
    assert again.tide_mean == [] and again.features(without_tide, times[-5:]).shape == model.features(without_tide, times[-5:]).shape


@pytest.mark.django_db
def test_the_nearest_tide_gauge_the_owner_may_see_is_an_input_of_a_gauge_near_the_mouth(towns):
    a, b = towns
    Basin.objects.create(name_ja="水森川流域", name_en="Mizumori basin", geometry={
        "type": "Polygon", "coordinates": [[[139.9, 34.9], [140.3, 34.9], [140.3, 35.3], [139.9, 35.3], [139.9, 34.9]]]})
    mouth = make_station(a, "A-MOUTH", lon=140.10, lat=35.00)
    inland = make_station(a, "A-INLAND", lon=140.00, lat=35.20)
    near = make_station(a, "A-HARBOUR", kind=StationKind.TIDE, lon=140.12, lat=35.01)  # about 2 km
    make_station(b, "B-HARBOUR", kind=StationKind.TIDE, visibility=Visibility.PRIVATE, lon=140.101, lat=35.001)
    make_station(a, "A-FAR-TIDE", kind=StationKind.TIDE, lon=140.25, lat=35.05)  # about 15 km
    assert tide_inputs(mouth) == [near]  # B's private harbour gauge is closer, but not A's to read
    assert tide_inputs(inland) == []
    assert forecast_inputs(mouth).as_json()["tide"] == ["A-HARBOUR"]
    assert "tide" not in forecast_inputs(inland).as_json()
