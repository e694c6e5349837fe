"""Default rules from thresholds, the other rule kinds, quality flags, and what evaluation costs."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command

from alerts.models import Alert, AlertEvent, AlertRule, LevelDefinition, LevelScheme
from alerts.services import alert_rules_sync_for_station, evaluate_station_changes, level_scheme_activate
from sensors.models import Observation, StationKind, StationState, Threshold
from tests.conftest import make_station

from .conftest import ingest, ingest_confirmed, ingest_series, minute_now

Kind = AlertRule.Kind


def kinds(station):
    return sorted((rule.kind, rule.window, rule.is_enabled) for rule in station.alert_rules.all())


def trail(station):
    return [
        (event.alert.rule.name, event.kind, event.level)
        for event in AlertEvent.objects.filter(alert__station=station).select_related("alert__rule").order_by("pk")
    ]


def test_thresholds_produce_default_rules_and_sync_is_idempotent(towns):
    river = make_station(towns[0], "R1")
    rain = make_station(towns[0], "G1", kind=StationKind.RAIN)
    silent_type = make_station(towns[0], "F1", expected_interval=None)
    for station in (river, rain, silent_type):
        alert_rules_sync_for_station(station)
        alert_rules_sync_for_station(station)
    rise = (Kind.RATE_OF_RISE, timedelta(minutes=30), True)
    assert kinds(river) == [rise, (Kind.STALE, None, True), (Kind.THRESHOLD, None, True)]
    assert kinds(rain) == [(Kind.RAIN_ACCUMULATION, timedelta(hours=1), True), (Kind.STALE, None, True)]
    # A gauge that reports only above its start level gets no stale rule: silence is normal there.
    assert kinds(silent_type) == [rise, (Kind.THRESHOLD, None, True)]
    # Level rules wait for a second reading below level 4 and hold a level for half an hour.
    threshold = river.alert_rules.get(kind=Kind.THRESHOLD)
    assert (threshold.min_readings, threshold.immediate_level, threshold.clear_hold) == (2, 4, timedelta(minutes=30))
    assert rain.alert_rules.get(kind=Kind.RAIN_ACCUMULATION).min_readings == 2
    assert river.alert_rules.get(kind=Kind.RATE_OF_RISE).value == 0.5


def test_sync_command_covers_every_station_and_rejects_unknown_codes(towns):
    make_station(towns[0], "R1")
    make_station(towns[1], "R2")
    call_command("sync_alert_rules")
    assert AlertRule.objects.filter(is_default=True).count() == 6  # threshold, rate of rise, stale each
    with pytest.raises(Exception, match="NOPE"):
        call_command("sync_alert_rules", "R1", "NOPE")


@pytest.mark.django_db(transaction=True)
def test_retired_default_rule_resolves_its_alert(towns):
    station = make_station(towns[0], "R1")
    ingest_confirmed(station.code, minute_now() - timedelta(minutes=5), 3.2)
    alert = Alert.objects.get(station=station)
    Threshold.objects.filter(station=station, level__isnull=False).delete()
    alert_rules_sync_for_station(station)
    alert.refresh_from_db()
    assert alert.state == "resolved"
    assert kinds(station) == [
        (Kind.RATE_OF_RISE, timedelta(minutes=30), True), (Kind.STALE, None, True), (Kind.THRESHOLD, None, False)
    ]
    assert trail(station)[-1] == ("Thresholds (reading)", "resolved", 2)


@pytest.mark.django_db(transaction=True)
def test_rain_accumulation_rule_from_hourly_thresholds(towns):
    station = make_station(towns[0], "G1", kind=StationKind.RAIN)
    start = minute_now() - timedelta(hours=6)
    # 10-minute amounts; the hourly total reaches 30 (→3), then 50 (→4), then dries out.
    amounts = [0, 2, 5, 8, 10, 6, 10, 12, 9, 4, 1, 0, 0, 0, 0, 0]
    ingest_series(station.code, start, amounts)
    assert [(kind, level) for _, kind, level in trail(station)] == [
        ("opened", 3), ("escalated", 4), ("deescalated", 3), ("resolved", 3),
    ]
    opened = AlertEvent.objects.get(alert__station=station, kind="opened")
    # 31 mm is the first hourly total above 30; the second in a row (41 mm) confirms level 3.
    assert opened.value == 41.0 and opened.metrics["rain"]["1h"] == 41.0


@pytest.mark.django_db(transaction=True)
def test_event_total_rule_counts_the_whole_storm(towns):
    station = make_station(towns[0], "G1", kind=StationKind.RAIN)
    AlertRule.objects.create(station=station, kind=Kind.RAIN_ACCUMULATION, name="Storm total", value=40, level=3,
                             window=None)
    start = minute_now() - timedelta(hours=12)
    at = ingest_series(station.code, start, [5] * 6)  # 30 mm
    at = ingest_series(station.code, at, [0] * 18)  # three dry hours: same storm
    ingest_series(station.code, at, [6, 6])  # 42 mm in the storm, never 40 in any hour
    assert [(name, kind, level) for name, kind, level in trail(station) if name == "Storm total"] == [
        ("Storm total", "opened", 3),
    ]


@pytest.mark.django_db(transaction=True)
def test_rate_of_rise_rule_needs_its_readings(towns):
    station = make_station(towns[0], "R1")
    AlertRule.objects.create(
        station=station, kind=Kind.RATE_OF_RISE, name="Fast rise", value=0.6, level=3,
        window=timedelta(minutes=30), min_readings=2, hysteresis=0.2,
    )
    start = minute_now() - timedelta(hours=4)
    # 0.2 m per 10 min: 0.8 m/h over the first half hour with the rise in it, then 1.2; then it levels off.
    ingest_series(station.code, start, [1.0, 1.0, 1.0, 1.2, 1.4, 1.6, 1.8, 1.85, 1.85, 1.85, 1.85, 1.85])
    assert [(kind, level) for name, kind, level in trail(station) if name == "Fast rise"] == [
        ("opened", 3), ("resolved", 3),
    ]
    opened = AlertEvent.objects.get(alert__rule__name="Fast rise", kind="opened")
    assert opened.value == pytest.approx(1.2)
    assert opened.observed_at == start + timedelta(minutes=50)  # the second reading at ≥ 0.6 m/h


@pytest.mark.django_db(transaction=True)
def test_minimum_duration_before_opening_and_resolving(towns):
    station = make_station(towns[0], "R1", expected_interval=None)
    alert_rules_sync_for_station(station)
    station.alert_rules.filter(kind=Kind.THRESHOLD).update(min_duration=timedelta(minutes=20))
    start = minute_now() - timedelta(hours=4)
    ingest_series(station.code, start, [3.1, 3.1, 2.5, 3.1, 3.1, 3.1, 2.5, 2.5, 3.1, 2.5, 2.5, 2.5, 2.5])
    # Resolving also waits for the default hold (30 min), longer than this rule's 20 minutes.
    assert [(kind, level, at) for kind, level, at in AlertEvent.objects.filter(alert__station=station)
            .order_by("pk").values_list("kind", "level", "observed_at")] == [
        ("opened", 2, start + timedelta(minutes=50)),
        ("resolved", 2, start + timedelta(minutes=120)),
    ]


@pytest.mark.django_db(transaction=True)
def test_quality_flagged_readings_move_nothing(towns):
    station = make_station(towns[0], "R1")
    start = minute_now() - timedelta(hours=2)
    received = minute_now()
    rows = [(0, 1.0, "ok"), (10, 1.1, "ok"), (20, 4.5, "suspect"), (30, 4.6, "suspect")]
    Observation.objects.bulk_create(
        Observation(station=station, observed_at=start + timedelta(minutes=m), value=v, quality=q,
                    received_at=received, source="sim")
        for m, v, q in rows
    )
    state = StationState.objects.create(station=station, value=4.6, observed_at=start + timedelta(minutes=30),
                                        quality="suspect", level=4)
    alert_rules_sync_for_station(station)
    station.alert_rules.update(evaluated_until=start)
    # Flagged readings never move a level by the ordinary rules; a flagged newest reading this high
    # raises only an unconfirmed alert for HQ (QC flags, never silences).
    events = evaluate_station_changes([state])
    assert [(e.kind, e.level, e.metrics) for e in events] == [("opened", 4, {"unconfirmed": True})]
    assert Alert.objects.get().unconfirmed_at == start + timedelta(minutes=30)
    # The same readings unflagged open an ordinary alert: it was the flag that held it back.
    Alert.objects.all().delete()
    Observation.objects.update(quality="ok")
    station.alert_rules.update(evaluated_until=start)
    opened = [(e.kind, e.level) for e in evaluate_station_changes([state]) if e.alert.rule.kind == Kind.THRESHOLD]
    assert opened == [("opened", 4)]


@pytest.mark.django_db(transaction=True)
def test_disabling_a_rule_resolves_its_open_alert_on_the_next_batch(towns):
    station = make_station(towns[0], "R1")
    at = ingest_series(station.code, minute_now() - timedelta(hours=1), [3.6, 3.6])
    station.alert_rules.filter(kind=Kind.THRESHOLD).update(is_enabled=False)
    ingest(station.code, [(at, 3.7)])
    assert [(kind, level) for _, kind, level in trail(station)] == [("opened", 3), ("resolved", 3)]
    assert AlertEvent.objects.filter(kind="resolved").get().note == "rule disabled"


@pytest.mark.django_db(transaction=True)
def test_alerts_keep_the_words_they_were_issued_with(towns):
    first = make_station(towns[0], "R1")
    ingest(first.code, [(minute_now() - timedelta(minutes=20), 4.2)])
    new_scheme = LevelScheme.objects.create(version="2026-test", name="next scheme", valid_from="2026-05-01")
    LevelDefinition.objects.create(scheme=new_scheme, level=4, name_ja="危険警報", name_en="Danger warning",
                                   action_ja="避難", action_en="Evacuate")
    level_scheme_activate(new_scheme)
    second = make_station(towns[0], "R2")
    ingest(second.code, [(minute_now() - timedelta(minutes=20), 4.2)])
    ingest(first.code, [(minute_now() - timedelta(minutes=10), 5.2)])
    assert Alert.objects.get(station=first).level_scheme.version == "2021-05"
    assert Alert.objects.get(station=second).level_scheme.version == "2026-test"
    assert LevelScheme.objects.filter(is_active=True).get() == new_scheme


def test_rule_validation(towns):
    station = make_station(towns[0], "R1")
    with pytest.raises(ValidationError, match="rate in m/h"):
        AlertRule(station=station, kind=Kind.RATE_OF_RISE, name="x", level=3, window=timedelta(minutes=30)).clean()
    with pytest.raises(ValidationError, match="both a value and a level"):
        AlertRule(station=station, kind=Kind.THRESHOLD, name="x", value=3.0).clean()
    with pytest.raises(ValidationError, match="rain gauges only"):
        AlertRule(station=station, kind=Kind.RAIN_ACCUMULATION, name="x", value=30, level=3).clean()
    AlertRule(station=station, kind=Kind.THRESHOLD, name="x", value=2.5, level=2).clean()


@pytest.mark.django_db(transaction=True)
def test_evaluation_costs_a_fixed_number_of_queries(towns, django_assert_max_num_queries, settings):
    settings.EVENTS_DRAIN = "workers"  # count the evaluation, not the publishing that follows it
    def batch(count, prefix, start):
        stations = [make_station(towns[0], f"{prefix}{i:02d}") for i in range(count)]
        for station in stations:
            alert_rules_sync_for_station(station)
        ingest_items = []
        for station in stations:
            for minutes, value in ((0, 2.5), (10, 3.1), (20, 3.6)):
                ingest_items.append((station, start + timedelta(minutes=minutes), value))
        Observation.objects.bulk_create(
            Observation(station=s, observed_at=at, value=v, received_at=start, source="sim") for s, at, v in ingest_items
        )
        states = [
            StationState.objects.create(station=s, value=3.6, observed_at=start + timedelta(minutes=20), level=3)
            for s in stations
        ]
        for station in stations:
            station.alert_rules.update(evaluated_until=start)
        return states

    start = minute_now() - timedelta(hours=1)
    few, many = batch(2, "F", start), batch(25, "M", start)
    with django_assert_max_num_queries(16) as few_queries:
        evaluate_station_changes(few)
    with django_assert_max_num_queries(len(few_queries.captured_queries)):
        events = evaluate_station_changes(many)
    # Per station: level 2 confirmed by 3.1 and 3.6; 3.6 alone does not confirm level 3, nor one
    # rate over a long enough span the rate-of-rise alert.
    assert {(str(e.alert.rule.kind), str(e.kind), e.level) for e in events} == {("threshold", "opened", 2)}
    assert len(events) == 25
