"""The backtest: no look-ahead, the scores side by side, the command's JSON shape."""

import json
from io import StringIO

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from forecasts import backtest
from forecasts.predict import ThresholdLine

from .synthetic import STEP, basin
from .test_learn import poisoned
from .test_services import gauge, geography, store  # noqa: F401  (fixture)

THRESHOLDS = [ThresholdLine("flood_caution", "氾濫注意水位", "Flood caution", 2, 1.05), ThresholdLine("flood_danger", "氾濫危険水位", "Flood danger", 4, 1.2)]


@pytest.fixture(scope="module")
def history():
    return basin(days=40, seed=5)


def test_replayed_forecasts_do_not_change_when_later_data_is_poisoned(history):
    times, inputs = history
    since, until = times[len(times) // 2], times[-1]
    poison_from = times[int(len(times) * 0.75)]
    clean = backtest.predictions(inputs, STEP, since=since, until=until)
    dirty = backtest.predictions(poisoned(inputs, poison_from), STEP, since=since, until=until)
    issue = clean[1]
    before = issue <= poison_from
    assert before.sum() > 1000
    for method in backtest.METHODS:
        assert np.array_equal(clean[3][method][before], dirty[3][method][before], equal_nan=True), method
    # The model itself was trained only on readings before `since`.
    assert clean[0].beta == dirty[0].beta


def test_the_report_scores_model_persistence_and_trend_per_lead_and_threshold(history):
    times, inputs = history
    report = backtest.backtest(inputs, STEP, THRESHOLDS, since=times[len(times) // 2], until=times[-1])
    assert [step["lead_minutes"] for step in report["steps"]][:3] == [10, 20, 30]
    one_hour, three_hours = report["steps"][5], report["steps"][17]
    for step in (one_hour, three_hours):
        assert set(step) == {"lead_minutes", "model", "persistence", "trend"}
        assert step["model"]["rmse"] < step["persistence"]["rmse"] and step["model"]["rmse"] < step["trend"]["rmse"]
        assert step["model"]["nse"] > step["persistence"]["nse"]
    assert {"nse", "rmse", "peak_error_m", "peak_timing_error_minutes"} <= set(one_hour["model"])
    caution = report["thresholds"][0]
    assert caution["name"] == "flood_caution" and caution["model"]["crossings"] > 0
    scores = caution["model"]
    assert scores["hits"] + scores["misses"] == scores["crossings"]
    # Persistence never predicts a change, so it never warns.
    assert caution["persistence"]["hits"] == 0 and caution["persistence"]["false_alarms"] == 0


@pytest.mark.django_db
def test_the_command_prints_one_json_object(towns, geography):  # noqa: F811
    days = 12
    from datetime import UTC, datetime, timedelta

    start = (datetime.now(UTC) - timedelta(days=days, hours=1)).timestamp() // 600 * 600
    times, synthetic = basin(days=days, seed=11, start=start)
    down = gauge(towns[0], "DOWN", 140.20)
    store(down, times, synthetic.own.values)
    store(gauge(towns[0], "UP", 140.10), times, synthetic.upstream[0].values)
    out = StringIO()
    call_command("forecast_backtest", "DOWN", "--json", stdout=out)
    report = json.loads(out.getvalue())
    assert report["station"] == "DOWN" and report["inputs"]["upstream"] == ["UP"]
    assert set(report["steps"][0]) == {"lead_minutes", "model", "persistence", "trend"}
    assert [t["name"] for t in report["thresholds"]] == ["flood_caution", "evacuation_decision", "flood_danger", "flooding"]
    with pytest.raises(CommandError, match="ISO 8601"):
        call_command("forecast_backtest", "DOWN", "--since", "yesterday\x00<script>")
    with pytest.raises(CommandError, match="No river gauge"):
        call_command("forecast_backtest", "'; DROP TABLE x; --")
    with pytest.raises(CommandError, match="before"):
        call_command("forecast_backtest", "DOWN", "--since", "2026-11-02T00:00:00+09:00", "--until", "2026-11-01T00:00:00+09:00")
