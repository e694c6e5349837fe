"""The ingestion service itself: latest state, accumulations, the change-log event, concurrency."""

import threading
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from sensors.models import Observation, StationKind, StationState, Threshold
from events.models import OutboxEvent
from sensors.services import STATION_CHANGED, observation_ingest, station_state_recompute
from tests.conftest import make_station

NOW = timezone.now().replace(microsecond=0)


def reading(code, minutes_ago, value):
    return {"station": code, "observed_at": NOW - timedelta(minutes=minutes_ago), "value": value}


def station_events():
    return list(OutboxEvent.objects.filter(kind=STATION_CHANGED, handler="alerts.evaluate").values_list("payload", flat=True))


@pytest.fixture
def workers(settings):
    """Handlers run only when something drains: what the request left behind can be looked at."""
    settings.EVENTS_DRAIN = "workers"


def test_a_batch_is_one_change_log_event_naming_each_changed_station_once(towns, workers):
    a, b = make_station(towns[0], "A1"), make_station(towns[0], "A2")
    report = observation_ingest(
        municipality=towns[0],
        items=[reading("A1", 20, 2.8), reading("A1", 10, 3.2), reading("A2", 10, 4.5)],
        source="http",
    )
    assert report.accepted == 3
    assert station_events() == [{"stations": [a.pk, b.pk]}]
    # The request only stored: nothing was evaluated yet.
    from alerts.models import AlertRule

    assert not AlertRule.objects.filter(station__in=[a, b], evaluated_until__isnull=False).exists()


@pytest.mark.django_db(transaction=True)
def test_no_event_when_the_surrounding_transaction_rolls_back(towns, workers):
    make_station(towns[0], "A1")
    with pytest.raises(RuntimeError):
        with transaction.atomic():
            observation_ingest(municipality=towns[0], items=[reading("A1", 10, 1.0)], source="http")
            raise RuntimeError("caller failed after ingesting")
    assert OutboxEvent.objects.count() == 0
    assert Observation.objects.count() == 0


def test_a_late_reading_outside_any_window_changes_no_state_and_emits_nothing(towns, workers):
    make_station(towns[0], "A1")
    observation_ingest(municipality=towns[0], items=[reading("A1", 10, 2.0)], source="http")
    OutboxEvent.objects.all().delete()
    report = observation_ingest(municipality=towns[0], items=[reading("A1", 120, 9.0)], source="http")
    assert report.accepted == 1
    assert station_events() == []
    assert StationState.objects.get(station__code="A1").value == 2.0


def test_late_rain_inside_the_window_updates_the_total_and_level(towns):
    make_station(towns[0], "R1", kind=StationKind.RAIN)
    observation_ingest(municipality=None, items=[reading("R1", 10, 20.0)], source="http")
    state = StationState.objects.get(station__code="R1")
    assert (state.accumulations, state.level) == ({"3600": 20.0}, 0)

    observation_ingest(municipality=None, items=[reading("R1", 30, 15.0)], source="http")
    state.refresh_from_db()
    assert (state.value, state.accumulations, state.level) == (20.0, {"3600": 35.0}, 3)

    observation_ingest(municipality=None, items=[reading("R1", 50, 20.0)], source="http")
    state.refresh_from_db()
    assert (state.accumulations, state.level) == ({"3600": 55.0}, 4)


def test_recompute_after_threshold_change(towns):
    station = make_station(towns[0], "A1")
    observation_ingest(municipality=None, items=[reading("A1", 10, 3.2)], source="http")
    assert StationState.objects.get(station=station).level == 2
    Threshold.objects.filter(station=station, name="evacuation_decision").update(value=3.1)
    assert station_state_recompute(station=station).level == 3


def test_inactive_station_is_rejected(towns):
    make_station(towns[0], "OFF", is_active=False)
    report = observation_ingest(municipality=towns[0], items=[reading("OFF", 10, 1.0)], source="http")
    assert report.rejected == [{"index": 0, "error": "station 'OFF' is inactive"}]


def test_large_batch_stores_every_reading(towns):
    codes = [f"S{i:03d}" for i in range(50)]
    for code in codes:
        make_station(towns[0], code)
    items = [reading(code, minutes, 1.0 + minutes / 1000) for code in codes for minutes in range(0, 200)]
    report = observation_ingest(municipality=towns[0], items=items, source="import")
    assert (report.accepted, report.duplicates, report.rejected) == (10_000, 0, [])
    assert Observation.objects.count() == 10_000
    assert set(StationState.objects.values_list("value", flat=True)) == {1.0}


def post_twice_at_once(town, items):
    """The same batch from two gateways at the same moment, each on its own connection."""
    reports, errors = [], []
    barrier = threading.Barrier(2)

    def post():
        try:
            barrier.wait()
            reports.append(observation_ingest(municipality=town, items=items, source="http"))
        except Exception as exc:  # pragma: no cover - surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=post) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    return reports


@pytest.mark.django_db(transaction=True)
def test_two_gateways_posting_the_same_batch_at_once_store_it_once(towns):
    for i in range(20):
        make_station(towns[0], f"C{i:02d}")
    items = [reading(f"C{i:02d}", minutes, 1.0) for i in range(20) for minutes in range(0, 100, 10)]
    reports = post_twice_at_once(towns[0], items)
    assert sorted((r.accepted, r.duplicates) for r in reports) == [(0, 200), (200, 0)]
    assert Observation.objects.count() == 200


def test_stations_on_their_first_reading_and_stations_with_a_state_move_in_one_batch(towns, workers):
    # PostgreSQL locks the existing latest-state rows first and creates the missing ones after.
    old = [make_station(towns[0], f"OLD{i}") for i in range(3)]
    observation_ingest(municipality=towns[0], items=[reading(s.code, 30, 1.0) for s in old], source="http")
    new = [make_station(towns[0], f"NEW{i}") for i in range(3)]
    items = [reading(s.code, 10, 2.0 + i) for i, s in enumerate(old + new)]
    report = observation_ingest(municipality=towns[0], items=items, source="http")
    assert (report.accepted, report.duplicates, report.rejected) == (6, 0, [])
    states = {s.station.code: s for s in StationState.objects.select_related("station")}
    assert {code: state.value for code, state in states.items()} == {
        "OLD0": 2.0, "OLD1": 3.0, "OLD2": 4.0, "NEW0": 5.0, "NEW1": 6.0, "NEW2": 7.0,
    }
    assert all(state.observed_at == NOW - timedelta(minutes=10) for state in states.values())
    assert states["OLD1"].previous_value == 1.0 and states["NEW1"].previous_value is None
    assert station_events()[-1] == {"stations": sorted(s.pk for s in old + new)}


@pytest.mark.django_db(transaction=True)
def test_two_gateways_posting_at_once_to_stations_old_and_new_store_each_reading_once(towns):
    old = [make_station(towns[0], f"O{i:02d}") for i in range(10)]
    observation_ingest(municipality=towns[0], items=[reading(s.code, 200, 1.0) for s in old], source="http")
    new = [make_station(towns[0], f"N{i:02d}") for i in range(10)]
    items = [reading(s.code, minutes, 2.0) for s in old + new for minutes in range(0, 100, 10)]
    reports = post_twice_at_once(towns[0], items)
    assert sorted((r.accepted, r.duplicates) for r in reports) == [(0, 200), (200, 0)]
    assert Observation.objects.count() == 210
    assert StationState.objects.filter(observed_at=NOW, value=2.0).count() == 20


def test_a_spike_is_flagged_suspect_and_does_not_move_the_level(towns):
    make_station(towns[0], "SPK")

    def post(minutes_ago, value):
        observation_ingest(municipality=None, items=[reading("SPK", minutes_ago, value)], source="http")
        return StationState.objects.get(station__code="SPK")

    post(30, 1.00)
    post(20, 1.10)
    state = post(10, 5.10)  # +4 m in ten minutes
    assert (state.value, state.quality, state.level) == (5.10, "suspect", 0)
    state = post(0, 1.15)  # back to where it was: fine, and judged against the last good reading
    assert (state.quality, state.level) == ("ok", 0)
    qualities = dict(Observation.objects.filter(station__code="SPK").values_list("value", "quality"))
    assert qualities == {1.0: "ok", 1.1: "ok", 5.1: "suspect", 1.15: "ok"}


def test_a_real_step_is_confirmed_by_the_next_reading(towns):
    make_station(towns[0], "STEP")
    items = [reading("STEP", 30, 1.0), reading("STEP", 20, 3.6), reading("STEP", 10, 3.65)]
    observation_ingest(municipality=None, items=items, source="http")
    assert list(Observation.objects.filter(station__code="STEP").order_by("observed_at")
                .values_list("quality", flat=True)) == ["ok", "suspect", "ok"]
    state = StationState.objects.get(station__code="STEP")
    assert (state.quality, state.level, state.reference_value) == ("ok", 3, 3.65)


def test_a_steady_rise_is_never_suspect(towns):
    make_station(towns[0], "RISE")
    items = [reading("RISE", 60 - m, 1.0 + m * 0.04) for m in range(0, 60, 2)]  # 1.2 m per hour
    observation_ingest(municipality=None, items=items, source="http")
    assert set(Observation.objects.filter(station__code="RISE").values_list("quality", flat=True)) == {"ok"}


def test_rain_bursts_are_not_judged(towns):
    make_station(towns[0], "RB", kind=StationKind.RAIN)
    observation_ingest(municipality=None, items=[reading("RB", 20, 0.0), reading("RB", 10, 40.0)], source="http")
    assert set(Observation.objects.filter(station__code="RB").values_list("quality", flat=True)) == {"ok"}


def test_trend_follows_the_last_half_hour(towns, client):
    make_station(towns[0], "TR", visibility="public")

    def trend_after(minutes_ago, value):
        observation_ingest(municipality=None, items=[reading("TR", minutes_ago, value)], source="http")
        return client.get("/api/v1/stations").json()["features"][0]["properties"]["trend"]

    assert trend_after(50, 1.00) is None
    assert trend_after(40, 1.20) == "rising"
    assert trend_after(30, 1.21) == "rising"  # 1.00 → 1.21 within the half hour
    assert trend_after(10, 1.22) == "steady"  # 1.20 (30 min before) → 1.22
    assert trend_after(5, 1.00) == "falling"
    # Two readings in one batch: the newest counts, against the oldest of its half hour.
    observation_ingest(municipality=None, items=[reading("TR", 2, 1.3), reading("TR", 3, 1.5)], source="http")
    assert client.get("/api/v1/stations").json()["features"][0]["properties"]["trend"] == "rising"


def test_a_batch_parses_each_repeated_time_once_and_reports_every_item_in_its_own_words(towns, workers):
    make_station(towns[0], "A1")
    make_station(towns[0], "A2")
    at = (NOW - timedelta(minutes=10)).isoformat()
    report = observation_ingest(
        municipality=towns[0],
        items=[
            {"station": "A1", "observed_at": at, "value": 1.0},
            {"station": "A2", "observed_at": at, "value": 1.0},
            {"station": 123},  # missing keys are named before the bad station is judged
            {"station": "A1", "observed_at": "yesterday", "value": 1.0},
            {"station": "A2", "observed_at": "yesterday", "value": 1.0},
            {"station": ["A1"], "observed_at": at, "value": 1.0},
            {"station": "A1", "observed_at": at, "value": 1.0},
        ],
        source="http",
    )
    assert (report.accepted, report.duplicates) == (2, 1)
    assert report.rejected == [
        {"index": 2, "error": "missing 'observed_at', 'value'"},
        {"index": 3, "error": "'observed_at' 'yesterday' is not an ISO 8601 time"},
        {"index": 4, "error": "'observed_at' 'yesterday' is not an ISO 8601 time"},
        {"index": 5, "error": "'station' must be a non-empty string"},
    ]
