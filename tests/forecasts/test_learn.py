"""The model without the database: no look-ahead, calibrated intervals, skill over persistence."""

import numpy as np
import pytest

from forecasts import learn, predict
from forecasts.learn import Inputs, RainForecasts, Series

from .synthetic import STEP, basin, rain_forecasts, wetter


@pytest.fixture(scope="module")
def trained():
    times, inputs = basin(days=40, seed=7)
    split = times[int(len(times) * 0.6)]
    model = learn.fit(inputs, STEP, since=times[0], until=split)
    return times, inputs, split, model


def truncated(inputs: Inputs, until: float) -> Inputs:
    return Inputs(inputs.own.until(until), [s.until(until) for s in inputs.upstream], [s.until(until) for s in inputs.rain])


def poisoned(inputs: Inputs, after: float) -> Inputs:
    """Every reading after `after` replaced by absurd values."""

    def poison(series: Series) -> Series:
        values = series.values.copy()
        values[series.times > after] = 1e6
        return Series(series.times, values)

    return Inputs(poison(inputs.own), [poison(s) for s in inputs.upstream], [poison(s) for s in inputs.rain])


def test_a_forecast_does_not_change_when_future_data_is_poisoned(trained):
    times, inputs, split, model = trained
    for at in times[int(len(times) * 0.7) :: 97][:20]:
        clean = predict.model_forecast(model, inputs, at, model.leads)
        dirty = predict.model_forecast(model, poisoned(inputs, at), at, model.leads)
        alone = predict.model_forecast(model, truncated(inputs, at), at, model.leads)
        assert clean.points == dirty.points == alone.points


def test_training_does_not_read_past_its_window(trained):
    times, inputs, split, model = trained
    again = learn.fit(poisoned(inputs, split), STEP, since=times[0], until=split)
    assert again.beta == model.beta and again.quantiles == model.quantiles


def test_more_rain_never_lowers_the_forecast(trained):
    """The rain-response is monotone by construction (learn.monotone_columns): more rain, also far
    more than in any training storm, never lowers any lead's forecast, nor its median as served.
    Also a drizzle around the dryness inputs' scale (learn.DRYNESS_MM), where they change most, and
    rain that has just fallen, which only their shortest window reads."""
    times, inputs, split, model = trained
    assert model.extended  # the dryness inputs are read
    rng = np.random.default_rng(11)
    heaviest = inputs.rain[0].until(split).values.max()
    drizzle = (0.05 * learn.DRYNESS_MM, learn.DRYNESS_MM, 3 * learn.DRYNESS_MM)
    perturbations = [(most, recent) for most in (heaviest, 10 * heaviest, *drizzle) for recent in (False, True)]
    for at in times[int(len(times) * 0.7) :: 89][:15]:
        change, _ = model.predict(model.features(inputs, np.array([at])))
        served = predict.model_forecast(model, inputs, at, model.leads)
        for most, recent in perturbations:
            wet = Inputs(inputs.own, inputs.upstream, [wetter(inputs.rain[0], at, rng, most, recent=recent)])
            wet_change, _ = model.predict(model.features(wet, np.array([at])))
            assert (wet_change >= change - 1e-9).all()
            wet_served = predict.model_forecast(model, wet, at, model.leads)
            for wet_point, point in zip(wet_served.points, served.points):
                assert all(w >= p - 1e-9 for w, p in zip(wet_point[1:], point[1:]))  # median, lower, upper
            # ... nor the probability of reaching a level (the spread does not read rain).
            value = served.level_now + 0.2
            assert (wet_served.exceedance(value)[-1] >= served.exceedance(value)[-1] - 1e-12).all()


def allowed_coefficients(monotone, width: int, rng: np.random.Generator) -> np.ndarray:
    """Random raw coefficients that `monotone` (learn.monotone_columns) allows: any sign for a
    column it does not name; in a chain of nested totals the weight of the rain in each interval
    (the suffix sums) >= 0; >= 0 for a rising column, <= 0 for a falling one."""
    chains, rising, falling = monotone
    coefficients = rng.normal(0, 1, width)
    for chain in chains:
        weights = rng.exponential(1, len(chain))  # per interval, shortest window first
        coefficients[chain] = weights - np.append(weights[1:], 0.0)
    coefficients[rising] = rng.exponential(1, len(rising))
    coefficients[falling] = -rng.exponential(1, len(falling))
    return coefficients


@pytest.mark.parametrize("extended, forecast_rain", [(False, False), (True, False), (True, True)])
def test_every_input_that_rain_moves_is_constrained_so_that_more_rain_never_lowers_a_forecast(extended, forecast_rain):
    """Whatever the training: an input that changes when rain is added (fallen or forecast) is one
    monotone_columns names, and every set of coefficients it allows gives a change (each lead's: a
    linear function of the inputs) that does not fall when rain is added anywhere in the day before —
    a drizzle at the dryness scale, just now, or 100 times the heaviest step. Fails for a new
    rain-dependent input left unconstrained, or constrained with the wrong sign (a product with a
    level that can be negative)."""
    times, inputs = basin(days=10, seed=5)
    issues = [rain_forecasts(times, inputs.rain[0].values, seed=2)] if forecast_rain else []
    own = Series(inputs.own.times, inputs.own.values - 1.0)  # levels below 0 too
    inputs = Inputs(own, inputs.upstream, inputs.rain, issues)
    rng = np.random.default_rng(23)
    calm = learn.calm_levels(inputs)
    monotone = learn.monotone_columns(len(inputs.upstream), extended, forecast_rain)
    named = {c for chain in monotone[0] for c in chain} | set(monotone[1]) | set(monotone[2])
    heaviest = inputs.rain[0].values.max()
    at = times[200::37]
    x = learn.features_at(inputs, at, STEP, calm, extended, forecast_rain)
    coefficients = np.column_stack([allowed_coefficients(monotone, x.shape[1], rng) for _ in range(50)])
    for most in (0.05 * learn.DRYNESS_MM, learn.DRYNESS_MM, 100 * heaviest):
        more = [RainForecasts(f.issued, f.valid, [v + rng.uniform(0, most, len(v)) for v in f.values]) for f in issues]
        for recent in (False, True):
            for row, t in enumerate(at):
                wet = Inputs(own, inputs.upstream, [wetter(inputs.rain[0], t, rng, most, recent=recent)], more)
                delta = learn.features_at(wet, np.array([t]), STEP, calm, extended, forecast_rain)[0] - x[row]
                moved = set(np.flatnonzero(np.abs(delta) > 1e-12))
                names = learn.feature_names(len(inputs.upstream), extended, forecast_rain)
                assert moved <= named, [names[c] for c in moved - named]
                assert np.isfinite(delta).all() and (delta @ coefficients >= -1e-9).all()


def test_the_80_percent_interval_covers_70_to_90_percent_of_held_out_data(trained):
    times, inputs, split, model = trained
    issue = times[(times > split) & (times < times[-1] - learn.HORIZON_SECONDS)]
    x = model.features(inputs, issue)
    y = learn.targets_at(inputs.own, issue, STEP, model.leads)
    change, sigma = model.predict(x)
    for lead in (5, 17, 35):  # 1 h, 3 h, 6 h
        lower = change[:, lead] + sigma[:, lead] * model.quantile(lead, learn.LOWER_Q, sigma[:, lead])
        upper = change[:, lead] + sigma[:, lead] * model.quantile(lead, learn.UPPER_Q, sigma[:, lead])
        ok = np.isfinite(y[:, lead])
        inside = (y[ok, lead] >= lower[ok]) & (y[ok, lead] <= upper[ok])
        assert 0.70 <= inside.mean() <= 0.90, (lead, inside.mean())
        # ... and, out to 3 hours, on the rising and falling water too, not only in calm weather.
        # (At 6 hours the moving water's coverage drops to about 60 %: docs/performance.md.)
        if lead <= 17:
            moving = np.abs(y[ok, lead]) > 0.05
            assert moving.sum() > 50
            assert 0.6 <= inside[moving].mean() <= 0.95, (lead, inside[moving].mean())


def test_the_model_beats_persistence_on_held_out_data(trained):
    times, inputs, split, model = trained
    issue = times[(times > split) & (times < times[-1] - learn.HORIZON_SECONDS)]
    x = model.features(inputs, issue)
    y = learn.targets_at(inputs.own, issue, STEP, model.leads)
    change, _ = model.predict(x)
    for lead in (5, 17):
        ok = np.isfinite(y[:, lead])
        model_rmse = np.sqrt(np.mean((y[ok, lead] - change[ok, lead]) ** 2))
        persistence_rmse = np.sqrt(np.mean(y[ok, lead] ** 2))
        assert model_rmse < 0.7 * persistence_rmse
    assert learn.shown_leads(model.skill) >= 18  # 3 hours shown


def test_too_little_history_gives_no_learned_model():
    times, inputs = basin(days=40, seed=3)
    short = truncated(inputs, times[200])
    assert learn.fit(short, STEP, since=times[0], until=times[200]) is None


@pytest.mark.parametrize("persistence", [1, 2])
def test_crossing_time_and_probability_follow_the_band(monkeypatch, persistence):
    monkeypatch.setattr(predict, "WARNING_PERSISTENCE", persistence)
    result = predict.Result(method="arx", based_on=0.0, level_now=3.0)
    result.points = [[600.0 * i, 3.0 + 0.1 * i, 3.0 + 0.05 * i, 3.0 + 0.2 * i] for i in range(1, 19)]
    # This forecast and the one before it (a reading earlier): P(level >= value) per step.
    result.exceedance = lambda value: np.array([[1.0 if p[1] - 0.15 >= value else 0.0 for p in result.points],
                                                [1.0 if p[1] >= value else 0.0 for p in result.points]])
    result.consecutive = np.array([False, True])
    danger = predict.ThresholdLine("flood_danger", "氾濫危険水位", "Flood danger", 4, 4.0)
    predict.annotate(result, [predict.ThresholdLine("caution", "氾濫注意水位", "Flood caution", 2, 2.0), danger])
    crossing = result.crossing
    assert crossing["name"] == "flood_danger"
    assert crossing["earliest"] == pytest.approx(3000.0)  # upper: 3 + 0.2 i = 4 at i = 5
    assert crossing["at"] == pytest.approx(6000.0)  # median at i = 10
    assert crossing["latest"] is None  # lower reaches only 3.9 within the horizon
    assert result.danger_probability_1h == 0.0  # the median reaches it after 100 minutes
    [above] = [e for e in result.exceedance_by_threshold if e["name"] == "flood_danger"]
    # Reached by this forecast at step 10, by the one before at step 12: with a persistence of two
    # forecasts sustained from step 12 on; with one, the sustained probabilities are this forecast's.
    assert above["by_step"].index(1.0) == 9
    if persistence == 2:
        assert above["sustained_by_step"].index(1.0) == 11
    else:
        assert "sustained_by_step" not in above
    assert above["within"]["120"] == 1.0 and above["within"]["90"] == 0.0


def test_the_crossing_text_names_the_threshold_and_its_interval():
    from zoneinfo import ZoneInfo

    crossing = {"label_ja": "氾濫危険水位", "label_en": "Flood danger", "at": 1_780_000_200 + 1200, "earliest": 1_780_000_200 + 300, "latest": 1_780_000_200 + 2400}
    zone = ZoneInfo("Asia/Tokyo")
    text_ja = predict.crossing_text(crossing, english=False, zone=zone)
    text_en = predict.crossing_text(crossing, english=True, zone=zone)
    assert text_ja.startswith("氾濫危険水位到達予測 ") and "頃（" in text_ja and "〜" in text_ja
    assert text_en.startswith("Flood danger level expected around ") and "–" in text_en



def test_the_spread_model_is_stored_as_it_serves_with_six_significant_digits(trained):
    import json

    model = trained[3]
    values = [*np.ravel(model.spread), *(edge for edges in model.bin_edges for edge in edges),
              *(q for lead in model.quantiles for band in lead for q in band)]
    assert len(values) > 100 and all(value == float(f"{value:.6g}") for value in values)
    assert any(value != float(f"{value:.5g}") for value in values)  # rounded to six, not fewer
    # The stored version decodes to the very spread model that served the backtest.
    stored = learn.ArxModel.from_params(json.loads(json.dumps(model.as_params())), model.skill)
    fields = ("quantiles", "bin_edges", "spread")
    assert [stored.as_json()[name] for name in fields] == [model.as_json()[name] for name in fields]


def _same_forecasts(served: learn.ArxModel, stored: learn.ArxModel, inputs, times) -> int:
    """The stored model forecasts exactly (bit for bit) what the served one does; how many compared."""
    compared = 0
    for at in times:
        a, b = predict.model_forecast(served, inputs, at), predict.model_forecast(stored, inputs, at)
        assert (a is None) == (b is None)
        if a is None:
            continue
        assert a.points == b.points and a.level_now == b.level_now and a.forecast_rain == b.forecast_rain
        for value in (1.0, 2.0, 3.0):
            assert np.array_equal(a.exceedance(value), b.exceedance(value))
        compared += 1
    return compared


def _list_params(model: learn.ArxModel) -> dict:
    """The params as versions stored before 2026-12-01 hold them: every array as JSON lists."""
    params = {key: value for key, value in model.as_json().items() if key != "skill"}
    if params["with_forecast_rain"]:
        params["with_forecast_rain"] = {k: v for k, v in params["with_forecast_rain"].items() if k != "skill"}
    return params


def test_a_stored_version_packs_its_arrays_and_forecasts_bit_for_bit_as_fitted(trained):
    """ForecastModel.params keeps the arrays as base64 of little-endian float64 (exact): decoded, the
    stored model is the fitted one and forecasts exactly what it forecast; a version stored before
    the packing (JSON lists) decodes to the same model too."""
    import json

    times, inputs, split, model = trained
    params = json.loads(json.dumps(model.as_params()))
    for name in learn.PACKED_FIELDS:
        assert set(params[name]) >= {learn.PACKED_FORMAT, "shape"} and isinstance(params[name][learn.PACKED_FORMAT], str)
    assert params["quantiles"]["split"] == [len(lead) for lead in model.quantiles]
    packed = learn.ArxModel.from_params(params, model.skill)
    assert isinstance(packed.beta, np.ndarray)  # decoded straight into arrays
    old = learn.ArxModel.from_params(json.loads(json.dumps(_list_params(model))), model.skill)
    assert packed.as_json() == old.as_json() == model.as_json()
    assert packed.as_params() == model.as_params()  # a decoded version stores the same again
    issues = times[int(len(times) * 0.7) :: 131][:12]
    assert _same_forecasts(model, packed, inputs, issues) >= 10
    assert _same_forecasts(model, old, inputs, issues) >= 10


@pytest.mark.parametrize(
    "field, damage, says",
    [
        ("beta", lambda packed: packed | {learn.PACKED_FORMAT: packed[learn.PACKED_FORMAT][:-8]}, "'beta'"),
        ("beta", lambda packed: packed | {learn.PACKED_FORMAT: "not base64!" * 3}, "'beta'"),
        ("beta", lambda packed: packed | {"shape": [7, 7]}, "'beta'"),
        ("beta", lambda packed: {"shape": packed["shape"]}, "'beta'"),
        ("mean", lambda packed: packed | {"shape": "x"}, "'mean'"),
        ("quantiles", lambda packed: packed | {"split": [1] * len(packed["split"])}, "'quantiles'"),
        ("quantiles", lambda packed: packed | {"split": [-1] + packed["split"][1:]}, "'quantiles'"),
        ("bin_edges", lambda packed: packed | {"split": None}, "'bin_edges'"),
    ],
)
def test_a_damaged_packed_array_is_refused_naming_the_field(trained, field, damage, says):
    model = trained[3]
    params = model.as_params()
    params[field] = damage(params[field])
    with pytest.raises(ValueError, match=says):
        learn.ArxModel.from_params(params, model.skill)


def _kkt_violation(gram, target, bounded, coef):
    """The largest breach of the Karush–Kuhn–Tucker conditions of min ½c'Gc − c't with c ≥ 0 where
    bounded: primal feasibility, the dual sign (no bounded unknown at 0 whose gradient still points
    up) and complementarity (zero gradient wherever an unknown is not at 0); each unknown's gradient
    relative to the size of its own terms, so that a large unknown does not hide a small one's."""
    gradient = (target - gram @ coef) / (np.abs(target) + np.abs(gram) @ np.abs(coef) + 1e-300)
    at_bound = bounded & (coef <= 0)
    return max(
        max(0.0, -float(coef[bounded].min(initial=0.0))),
        max(0.0, float(gradient[at_bound].max(initial=0.0))),
        float(np.abs(gradient[~at_bound]).max(initial=0.0)),
    )


@pytest.mark.parametrize("start", [None, [True, False, False], [False, True, False]])
def test_the_bounded_solver_reaches_the_optimum_of_a_degenerate_problem(start):
    # Two nearly collinear constrained unknowns (correlation 0.9999) beside one large free unknown,
    # so that a coefficient of 0 and a gradient of 0 are told apart at different scales: adding
    # the second drives the first below 0, the step back leaves the second too small to keep, and
    # without an anti-cycling rule the solver adds the first again, until its iteration cap.
    correlation, scale = 0.9999, 10.0
    gram = scale * np.array([[4.0, 2 * correlation, 0.0], [2 * correlation, 1.0, 0.0], [0.0, 0.0, 1.0]])
    target = np.array([1.5, 1.0, 1e9])
    bounded = np.array([True, True, False])
    coef = learn._bounded_lstsq(gram, target, bounded, None if start is None else np.array(start))
    assert _kkt_violation(gram, target, bounded, coef) < 1e-9
    # The optimum: the first held at 0, the second alone fits its part of the target.
    np.testing.assert_allclose(coef, [0.0, 0.1, 1e8], rtol=1e-9, atol=1e-12)


def test_the_bounded_solver_meets_the_kkt_conditions_on_random_ill_conditioned_problems():
    rng = np.random.default_rng(20261201)
    for _ in range(200):
        n = int(rng.integers(3, 9))
        a = rng.normal(size=(60, n)) * 10.0 ** rng.uniform(-2, 3, size=n)
        a[:, 1] = a[:, 0] * rng.uniform(0.5, 2) + rng.normal(size=60) * 10.0 ** rng.uniform(-6, -3)
        b = a @ rng.normal(size=n) + rng.normal(size=60)
        bounded = rng.random(n) < 0.8
        gram, target = a.T @ a, a.T @ b
        coef = learn._bounded_lstsq(gram, target, bounded, rng.random(n) < 0.5)
        # The solver stops adding at gradients below 1e-10 of the largest target; an unknown with
        # much smaller terms may keep a relative breach up to that.
        assert _kkt_violation(gram, target, bounded, coef) < 1e-5
