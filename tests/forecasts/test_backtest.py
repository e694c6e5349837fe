"""The backtest: no look-ahead, the scores side by side, the command's JSON shape."""

import json
from io import StringIO

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from forecasts import backtest
from forecasts import predict
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
    before = clean.issue <= poison_from
    assert before.sum() > 1000
    for method in backtest.METHODS:
        assert np.array_equal(clean.predicted[method][before], dirty.predicted[method][before], equal_nan=True), method
        # ... and so are the warnings, and the probabilities they are read from.
        value = THRESHOLDS[0].value
        assert np.array_equal(clean.exceedance(method, value)[before], dirty.exceedance(method, value)[before]), method
        assert np.array_equal(clean.warnings(method, value, min_probability=0.5, within_minutes=60)[before],
                              dirty.warnings(method, value, min_probability=0.5, within_minutes=60)[before]), method
    # The model itself was trained only on readings before `since`.
    assert clean.model.beta == dirty.model.beta


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
    assert scores["hits"] > 0 and 0 <= scores["detected_30_min_ahead"] <= scores["hits"]
    assert report["warning_rule"] == {"min_probability": predict.WARNING_PROBABILITY, "within_minutes": predict.WARNING_MINUTES,
                                      "persistence": predict.WARNING_PERSISTENCE, "judged_within_minutes": 180}
    # Persistence never predicts a change, so it never warns.
    assert caution["persistence"]["hits"] == 0 and caution["persistence"]["false_alarms"] == 0


@pytest.mark.django_db
def test_the_command_prints_one_json_object_and_the_page_the_same_table(towns, geography, client):  # noqa: F811
    days = 12
    from datetime import UTC, datetime, timedelta

    start = (datetime.now(UTC) - timedelta(days=days, hours=1)).timestamp() // 600 * 600
    times, synthetic = basin(days=days, seed=11, start=start)
    down = gauge(towns[0], "DOWN", 140.20)
    store(down, times, synthetic.own.values)
    store(gauge(towns[0], "UP", 140.10), times, synthetic.upstream[0].values)
    out = StringIO()
    call_command("forecast_backtest", "DOWN", "--json", stdout=out)
    text = out.getvalue()
    assert text.count("\n") <= 1  # one JSON object, nothing else
    report = json.loads(text)
    assert report["station"] == "DOWN" and report["inputs"]["upstream"] == ["UP"]
    assert [step["lead_minutes"] for step in report["steps"]] == list(range(10, 361, 10))
    for step in report["steps"]:
        assert set(step) == {"lead_minutes", "model", "persistence", "trend"}
        for method in backtest.METHODS:
            assert {"nse", "rmse", "peak_error_m", "peak_error_relative", "peak_timing_error_minutes", "n"} == set(step[method])
    assert [t["name"] for t in report["thresholds"]] == ["flood_caution", "evacuation_decision", "flood_danger", "flooding"]
    for threshold in report["thresholds"]:
        for method in backtest.METHODS:
            assert set(threshold[method]) == {"crossings", "hits", "misses", "detected_30_min_ahead", "false_alarms",
                                              "median_lead_minutes"}
    # The HQ page of the gauge shows the same table: the same leads, the same numbers.
    from django.contrib.auth import get_user_model

    from tenancy.models import Membership

    user = get_user_model().objects.create_user("a-skill")
    Membership.objects.create(user=user, municipality=towns[0], role=Membership.Role.VIEWER)
    client.force_login(user)
    page = client.get("/hq/forecasts/DOWN/").content.decode()
    table = page.split('id="backtest-steps"')[1].split("</table>")[0]
    shown = backtest.table_steps(report)
    assert [step["lead_minutes"] for step in shown] == list(range(30, 361, 30))
    assert table.count("<tr><td>") == len(shown)
    for step in shown:
        # A lead not shown (its skill did not beat persistence in training) is not forecast: "—".
        nse = "—" if step["model"]["nse"] is None else f"{step['model']['nse']:.3f}"
        assert f"<tr><td>{step['lead_minutes']} min</td>\n        <td>{nse}</td>" in table
    assert 'id="backtest-warning-rule"' in page
    lines = StringIO()
    call_command("forecast_backtest", "DOWN", stdout=lines)
    assert [line.split()[0] for line in lines.getvalue().splitlines()[2:2 + len(shown)]] == [str(s["lead_minutes"]) for s in shown]
    with pytest.raises(CommandError, match="ISO 8601"):
        call_command("forecast_backtest", "DOWN", "--since", "yesterday\x00<script>")
    with pytest.raises(CommandError, match="No river gauge"):
        call_command("forecast_backtest", "'; DROP TABLE x; --")
    with pytest.raises(CommandError, match="before"):
        call_command("forecast_backtest", "DOWN", "--since", "2026-11-02T00:00:00+09:00", "--until", "2026-11-01T00:00:00+09:00")
