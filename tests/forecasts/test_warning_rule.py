"""The warning rule (forecasts.predict.warning): one rule for the backtest's scores, the HQ board's
pre-alerts and the trigger rules — the probability of reaching a value within a window, sustained
through the gauge's last forecasts on consecutive readings — and horizons shown only where they
beat persistence."""

import numpy as np
import pytest

from forecasts import backtest, learn, predict
from forecasts.predict import ThresholdLine

from .synthetic import STEP, basin

VALUE = 1.05  # the synthetic downstream gauge's flood caution (tests/forecasts/test_backtest.py)


@pytest.fixture(scope="module")
def replay():
    times, inputs = basin(days=40, seed=5)
    return inputs, backtest.predictions(inputs, STEP, since=times[len(times) // 2], until=times[-1])


def test_one_forecasts_jump_does_not_warn_and_two_in_a_row_do():
    by_step = np.array([
        [0.1, 0.2, 0.3],
        [0.1, 0.9, 0.95],  # a jump: alone it is not enough
        [0.2, 0.3, 0.2],
        [0.6, 0.8, 0.9],
        [0.7, 0.9, 0.9],  # the second forecast in a row over 0.5 within two steps: warned
        [0.7, 0.9, 0.9],  # ... but after a gap in the readings it starts again
    ])
    consecutive = np.array([False, True, True, True, True, False])
    sustained = predict.sustained_reach(by_step, consecutive, persistence=2)
    within_two_steps = sustained[:, 1]
    assert within_two_steps.tolist() == [0.0, 0.2, 0.3, 0.3, 0.8, 0.0]
    assert predict.warning(within_two_steps, np.zeros(6), 1.0, 0.5).tolist() == [False] * 4 + [True, False]
    # Already at the value: nothing to warn of (the reading itself is the alert).
    assert not predict.warning(0.9, 1.0, 1.0, 0.5).any()
    # With no persistence the jump warns on its own.
    assert predict.sustained_reach(by_step, consecutive, persistence=1)[1, 1] == 0.9


def test_the_served_forecast_warns_exactly_where_the_backtest_does(replay):
    """The stored forecast's probabilities (predict.model_forecast + annotate, as forecasts_refresh
    stores them) read through predict.reach give the backtest's sustained probability at the same
    reading, so the board and the trigger rules act where the backtest counted a warning."""
    inputs, run = replay
    line = ThresholdLine("flood_caution", "氾濫注意水位", "Flood caution", 2, VALUE)
    sustained = run.sustained("model", VALUE)[:, predict.steps_within(STEP, 3600) - 1]
    warned = run.warnings("model", VALUE, min_probability=0.5, within_minutes=60)
    below = run.level < VALUE
    assert warned.sum() >= 10 and (below & ~warned).sum() > 20
    rng = np.random.default_rng(1)
    # Unwarned readings in the hours around the warnings (the rise before, the fall after).
    near = np.convolve(warned.astype(float), np.ones(37), mode="same") > 0
    quiet_but_stirring = np.flatnonzero(below & ~warned & near)
    assert len(quiet_but_stirring) >= 10
    rows = np.concatenate([rng.choice(np.flatnonzero(warned), 10, replace=False),
                           rng.choice(quiet_but_stirring, min(15, len(quiet_but_stirring)), replace=False)])
    for row in rows:
        at = run.issue[row]
        result = predict.annotate(predict.model_forecast(run.model, inputs, at), [line])
        reached = predict.reach(method=result.method, based_on=at, level_now=result.level_now, points=result.points,
                                exceedance=result.exceedance_by_threshold, value=VALUE, within_seconds=3600)
        assert reached.sustained == pytest.approx(sustained[row], abs=0.0015), row
        if abs(sustained[row] - 0.5) > 0.002:
            assert reached.warns(0.5) == warned[row], row


def test_a_lead_is_shown_only_where_it_beat_persistence(replay):
    inputs, run = replay
    model = run.model
    for entry in model.skill:
        # The trend is scored on the rows where it has a line; here it has one at every row.
        assert entry["shown"] == (entry["rmse"] < min(entry["persistence_rmse"], entry["trend_rmse"]))
    assert learn.shown_leads(model.skill) >= 18
    at = run.issue[len(run.issue) // 2]
    # A model whose 10th lead did not beat persistence and the trend serves every lead but that one,
    # and the backtest scores (and warns from) those only.
    skill = [dict(entry) for entry in model.skill]
    skill[9]["shown"] = False
    shorter = learn.ArxModel.from_json(model.as_json() | {"skill": skill})
    points = predict.model_forecast(shorter, inputs, at).points
    assert [round((p[0] - at) / STEP) for p in points] == [lead for lead in range(1, model.leads + 1) if lead != 10]
    replayed = backtest.predictions(inputs, STEP, since=at, until=at + 3600, model=shorter)
    predicted = replayed.predicted["model"]
    assert np.isfinite(np.delete(predicted, 9, axis=1)).all() and np.isnan(predicted[:, 9]).all()
    assert (replayed.exceedance("model", VALUE)[:, 9] == 0).all()
    # No lead won: no learned forecast at all (the service serves the labelled trend).
    none = [entry | {"shown": False} for entry in skill]
    assert predict.model_forecast(learn.ArxModel.from_json(model.as_json() | {"skill": none}), inputs, at) is None


def test_shown_is_decided_by_the_held_out_rmse_against_persistence_and_the_trend():
    trend = {"rmse": 0.2, "model_rmse": 0.09}
    assert learn._shown({"rmse": 0.09}, {"rmse": 0.1}, trend, 3600)  # noqa: SLF001
    assert not learn._shown({"rmse": 0.1}, {"rmse": 0.1}, trend, 3600)  # noqa: SLF001
    assert not learn._shown({"rmse": None}, {"rmse": 0.1}, trend, 3600)  # noqa: SLF001
    # Beating persistence is not enough where the trend (on the rows where it has a line) does better.
    assert not learn._shown({"rmse": 0.09}, {"rmse": 0.1}, {"rmse": 0.05, "model_rmse": 0.08}, 3600)  # noqa: SLF001
    assert not learn._shown({"rmse": 0.09}, {"rmse": 0.1}, {"rmse": 0.08, "model_rmse": 0.08}, 3600)  # noqa: SLF001
    assert learn._shown({"rmse": 0.09}, {"rmse": 0.1}, {"rmse": None, "model_rmse": None}, 3600)  # noqa: SLF001
    assert learn.shown_leads([{"shown": True}, {"shown": True}, {"shown": False}, {"shown": True}]) == 3
    assert learn.served_variants([{"shown": True}, {"shown": False}, {"shown": True}], forecast_rain=False) == [
        learn.READINGS, learn.NOT_SHOWN, learn.READINGS]


def test_the_town_setting_defaults_are_the_rules():
    from forecasts.models import PrealertSetting
    from forecasts.selectors import prealert_setting

    assert PrealertSetting._meta.get_field("min_probability").default == predict.WARNING_PROBABILITY
    assert PrealertSetting._meta.get_field("lead_minutes").default == predict.WARNING_MINUTES
    assert prealert_setting(None) == {"min_probability": predict.WARNING_PROBABILITY,
                                      "lead_minutes": predict.WARNING_MINUTES, "min_level": 3}
