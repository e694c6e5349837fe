"""Trigger rules that fire on a forecast ("or is forecast to reach it within M minutes") read the
gauge's forecast (forecasts.selectors.forecast_reach): the learned model, or the trend fallback
only where the gauge's model says so — not the alert's straight line through the last readings."""

from datetime import timedelta

import pytest
from django.utils import timezone

from forecasts.models import Method, StationForecast
from orders.models import Recommendation, TriggerRule
from orders.triggers import rules_evaluate
from sensors.models import StationState

EVACUATION_DECISION = 3.5  # tests/conftest.py RIVER_THRESHOLDS


@pytest.fixture
def forecast_rule(stations, districts):
    """Town B: level 3 for B-1 when A-SHARED (shared with B) is forecast to reach 避難判断水位 within 60 min."""
    rule = TriggerRule.objects.create(
        municipality=districts["B-1"].municipality, station=stations["a-shared"], threshold="evacuation_decision",
        level=3, forecast_minutes=60,
    )
    rule.districts.set([districts["B-1"]])
    return rule


def now_reading(station, value):
    """The gauge's newest reading, the one its stored forecast starts from."""
    at = timezone.now().replace(microsecond=0) - timedelta(minutes=1)
    StationState.objects.update_or_create(station=station, defaults={"value": value, "observed_at": at})
    return at


def stored_forecast(station, based_on, medians, *, method=Method.ARX, spread=0.05, by_step=None):
    """A stored forecast, 10-minute steps from `based_on`, as forecasts.services stores one."""
    start = based_on.timestamp()
    points = [[start + 600 * (i + 1), m, m - spread, m + spread] for i, m in enumerate(medians)]
    exceedance = []
    if by_step is not None:
        exceedance = [{"name": "evacuation_decision", "label_ja": "避難判断水位", "label_en": "Evacuation decision",
                       "level": 3, "value": EVACUATION_DECISION, "within": {}, "by_step": by_step}]
    return StationForecast.objects.create(
        station=station, method=method, issued_at=based_on, based_on=based_on, step_seconds=600,
        level_now=medians[0] - 0.1, points=points, exceedance=exceedance,
    )


@pytest.mark.django_db
def test_the_models_forecast_of_a_crossing_within_the_rules_minutes_recommends(forecast_rule, stations):
    gauge = stations["a-shared"]
    based_on = now_reading(gauge, 3.1)
    # The median reaches 3.5 between the 4th and 5th step (40-50 min), inside the rule's 60 minutes.
    stored_forecast(gauge, based_on, [3.2, 3.3, 3.4, 3.45, 3.55, 3.6, 3.7], by_step=[0.01, 0.05, 0.2, 0.4, 0.6, 0.7, 0.8])
    [recommendation] = rules_evaluate([gauge.pk])
    evidence = recommendation.evidence
    assert (recommendation.municipality.slug, recommendation.level, evidence["fired_by"]) == ("town-b", 3, "forecast")
    forecast = evidence["forecast"]
    assert forecast["method"] == "arx" and forecast["level"] == 3
    assert 40 <= forecast["eta_minutes"] <= 50
    # The band: the upper bound (median + 0.05) gets there earlier, the lower bound later.
    assert forecast["earliest_minutes"] < forecast["eta_minutes"] < forecast["latest_minutes"]
    # The model's own per-step probabilities, up to the rule's 60 minutes.
    assert forecast["probability"] == 0.7
    assert forecast["text_ja"].startswith("避難判断水位到達予測 ") and "頃（" in forecast["text_ja"]
    assert "Evacuation decision level expected around" in forecast["text_en"]


@pytest.mark.django_db
def test_a_crossing_beyond_the_rules_minutes_or_a_flat_forecast_recommends_nothing(forecast_rule, stations):
    gauge = stations["a-shared"]
    based_on = now_reading(gauge, 3.1)
    late = stored_forecast(gauge, based_on, [3.15, 3.2, 3.25, 3.3, 3.35, 3.4, 3.45, 3.55])  # crosses at 70-80 min
    assert rules_evaluate([gauge.pk]) == []
    forecast_rule.forecast_minutes = 90
    forecast_rule.save()
    assert len(rules_evaluate([gauge.pk])) == 1
    Recommendation.objects.all().delete()
    TriggerRule.objects.update(fired_at=None)
    late.delete()
    stored_forecast(gauge, based_on, [3.1] * 12)
    assert rules_evaluate([gauge.pk]) == []


@pytest.mark.django_db
def test_a_steep_rise_the_model_does_not_carry_on_recommends_nothing(forecast_rule, stations, members):
    """The last readings' straight line would reach 3.5 in minutes; the model says the wave is
    passing. The rule follows the model (the alert's linear window is not read)."""
    from sensors.services import observation_ingest

    gauge = stations["a-shared"]
    start = timezone.now().replace(microsecond=0) - timedelta(minutes=40)
    observation_ingest(
        municipality=None, source="http",
        items=[{"station": "A-SHARED", "observed_at": start + timedelta(minutes=10 * i), "value": v}
               for i, v in enumerate([2.6, 2.8, 3.0, 3.2, 3.4])],
    )
    gauge.refresh_from_db()
    based_on = gauge.state.observed_at
    stored_forecast(gauge, based_on, [3.42, 3.43, 3.42, 3.4, 3.35, 3.3])
    assert rules_evaluate([gauge.pk]) == []
    assert not Recommendation.objects.exists()


@pytest.mark.django_db
def test_the_trend_fallback_answers_only_where_the_gauges_model_says_so(forecast_rule, stations):
    gauge = stations["a-shared"]
    based_on = now_reading(gauge, 3.1)
    stored_forecast(gauge, based_on, [3.2, 3.3, 3.4, 3.5, 3.6, 3.7], method=Method.TREND, spread=0.1)
    [recommendation] = rules_evaluate([gauge.pk])
    forecast = recommendation.evidence["forecast"]
    assert forecast["method"] == "trend" and forecast["eta_minutes"] == 40
    # Without a per-step distribution the band is read as a normal one: P(3.7 ± 0.1 >= 3.5) at 60 min.
    assert 0.9 < forecast["probability"] < 1.0


@pytest.mark.django_db
def test_a_gauge_without_a_forecast_fires_on_readings_only(forecast_rule, stations):
    gauge = stations["a-shared"]
    now_reading(gauge, 3.4)
    assert rules_evaluate([gauge.pk]) == []
    now_reading(gauge, 3.6)
    [recommendation] = rules_evaluate([gauge.pk])
    assert recommendation.evidence["fired_by"] == "reading" and recommendation.evidence["forecast"] is None


@pytest.mark.django_db
def test_the_rule_and_the_board_act_on_the_same_warning_at_the_towns_probability(forecast_rule, stations, towns, client):
    """The rule reads the probability sustained through the gauge's last forecasts (the warning
    rule's persistence), as the board does, at town B's pre-alert probability."""
    from django.contrib.auth import get_user_model

    from forecasts.models import PrealertSetting
    from tenancy.models import Membership

    gauge = stations["a-shared"]
    based_on = now_reading(gauge, 3.1)
    jump = stored_forecast(gauge, based_on, [3.2, 3.3, 3.4, 3.45, 3.55, 3.6, 3.7], by_step=[0.01, 0.05, 0.2, 0.4, 0.6, 0.7, 0.8])
    jump.exceedance[0]["sustained_by_step"] = [0.0, 0.01, 0.05, 0.1, 0.15, 0.2, 0.2]
    jump.save()
    user = get_user_model().objects.create_user("b-board")
    Membership.objects.create(user=user, municipality=towns[1], role=Membership.Role.VIEWER)
    client.force_login(user)

    def on_board():
        board = client.get("/hq/alerts/").content.decode()
        return 'id="forecast-prealerts"' in board and "A-SHARED" in board.split('id="forecast-prealerts"')[1].split("</section>")[0]

    assert rules_evaluate([gauge.pk]) == [] and not on_board()  # 0.2 < the default 0.3
    PrealertSetting.objects.create(municipality=towns[1], min_probability=0.2, lead_minutes=60)
    [recommendation] = rules_evaluate([gauge.pk])
    assert on_board()
    forecast = recommendation.evidence["forecast"]
    assert (forecast["probability"], forecast["sustained_probability"]) == (0.7, 0.2)
