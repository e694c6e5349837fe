"""Each drain process's copy of recent readings (alerts.recent): a batch reads only what is new, and
evaluation sees exactly what reading the whole look-back gives, through late readings, re-sent and
corrected readings, deletions, threshold edits and retired stations."""

from __future__ import annotations

import random
from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

import alerts.recent
from alerts.handlers import station_changes_evaluate
from alerts.models import AlertEvent
from alerts.services import recent_readings
from sensors.models import Observation, Station, StationState, Threshold
from sensors.selectors import readings_in_ranges_micros
from sensors.services import observation_ingest, threshold_set
from tests.conftest import make_station


@pytest.fixture
def workers(settings):
    settings.EVENTS_DRAIN = "workers"


@pytest.fixture
def checked(monkeypatch):
    """Every batch's series compared with the full read of the same ranges; counts the stations
    served from a copy (so a test can tell the copies were used at all)."""
    used = {"copies": 0, "stations": 0}
    real = alerts.recent.RecentReadings.series

    def series(self, ranges, marks, stamp):
        with monkeypatch.context() as spy:
            reads = []
            spy.setattr(alerts.recent, "readings_in_ranges_micros", lambda r: reads.append(dict(r)) or readings_in_ranges_micros(r))
            result = real(self, ranges, marks, stamp)
        full = readings_in_ranges_micros(ranges)
        for pk in ranges:
            expected = full.get(pk, ([], [], []))
            got = result[pk]
            assert [list(part) for part in got] == [list(part) for part in expected], pk
        used["stations"] += len(ranges)
        used["copies"] += sum(1 for pk in ranges if reads and reads[0].get(pk) != ranges[pk])
        return result

    monkeypatch.setattr(alerts.recent.RecentReadings, "series", series)
    return used


def ingest(station, at, value):
    return observation_ingest(
        municipality=None, items=[{"station": station.code, "observed_at": at, "value": value}], source="http"
    )


def evaluate(stations):
    station_changes_evaluate([("station.changed", {"stations": [s.pk for s in stations]})])


def storm(rng, groups, evaluate_all, steps: int = 60) -> None:
    """A random sequence of new, late, re-sent, corrected and deleted readings, threshold edits and
    retirements, each batch evaluated. Every station of a group (a station and its twins) gets the
    same actions and values."""
    start = timezone.now().replace(microsecond=0) - timedelta(hours=3)
    newest = [start for _ in groups]
    level = [2.5 for _ in groups]
    for _ in range(steps):
        g = rng.randrange(len(groups))
        action = rng.random()
        if action < 0.55:  # newer readings, a walk through the thresholds with the odd jump
            for _ in range(rng.randint(1, 4)):
                newest[g] += timedelta(minutes=rng.choice([1, 2, 5]))
                level[g] = min(5.5, max(1.0, level[g] + rng.choice([-0.3, -0.1, 0.1, 0.2, 0.4, 1.2])))
                for station in groups[g]:
                    ingest(station, newest[g], round(level[g], 2))
        elif action < 0.7:  # a late reading inside the look-back
            at = newest[g] - timedelta(minutes=rng.randint(1, 100), seconds=rng.randint(1, 59))
            value = round(level[g] + rng.uniform(-0.2, 0.2), 2)
            for station in groups[g]:
                ingest(station, at, value)
        elif action < 0.75:  # a re-sent reading with another value: refused as a duplicate
            for station in groups[g]:
                ingest(station, newest[g], 9.9)
        elif action < 0.82:  # a correction or a deletion in the database (data repair)
            offset, correct = rng.randint(0, 5), rng.random() < 0.5
            for station in groups[g]:
                reading = station.observations.order_by("-observed_at")[offset:].first()
                if reading is None:
                    continue
                if correct:
                    Observation.objects.filter(pk=reading.pk).update(value=reading.value + 0.7, quality="ok")
                else:
                    Observation.objects.filter(pk=reading.pk).delete()
        elif action < 0.9:  # a threshold edited
            value = rng.choice([3.4, 3.5, 3.6])
            for station in groups[g]:
                threshold_set(threshold=Threshold.objects.get(station=station, level=3), value=value)
        else:  # retired, or back in service
            for station in groups[g]:
                Station.objects.filter(pk=station.pk).update(is_active=not Station.objects.get(pk=station.pk).is_active)
        evaluate_all()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_evaluation_from_copies_reads_what_the_full_look_back_reads(towns, workers, checked, seed):
    stations = [make_station(towns[0], f"P{seed}{i}") for i in range(3)]
    storm(random.Random(seed), [[station] for station in stations], lambda: evaluate(stations))
    assert checked["copies"] > checked["stations"] // 3  # the copies were used, not only the full read
    assert AlertEvent.objects.exists()


def transitions(station):
    """The station's alert events, each rule's in order, without ids."""
    by_rule = {}
    for event in AlertEvent.objects.filter(alert__station=station).select_related("alert__rule").order_by("pk"):
        by_rule.setdefault(event.alert.rule.kind, []).append(
            (event.kind, event.level, event.value, event.observed_at, event.note, event.metrics)
        )
    return by_rule


@pytest.mark.parametrize("seed", [4, 5])
def test_alerts_from_copies_are_the_alerts_from_the_full_look_back(towns, workers, seed):
    """Each station has a twin that gets the same readings and edits but whose copy is dropped before
    every batch (so it is evaluated from the full read): both must move their alerts alike, figures
    included — whatever a batch keeps from an earlier one must not change what it decides."""
    stations = [make_station(towns[0], f"Q{seed}{i}") for i in range(3)]
    twins = [make_station(towns[1], f"T{seed}{i}") for i in range(3)]

    def evaluate_all():
        for twin in twins:
            recent_readings._copies.pop(twin.pk, None)
        evaluate(stations + twins)

    storm(random.Random(seed), [[s, t] for s, t in zip(stations, twins)], evaluate_all)
    assert any(transitions(station) for station in stations)
    for station, twin in zip(stations, twins):
        assert transitions(station) == transitions(twin), station.code


def test_a_batch_reads_only_the_readings_after_the_last_one_the_process_saw(towns, workers, monkeypatch):
    station = make_station(towns[0], "N1")
    at = timezone.now().replace(microsecond=0) - timedelta(hours=2)
    for minute in range(0, 100, 5):
        ingest(station, at + timedelta(minutes=minute), 1.0 + minute / 100)
    evaluate([station])
    reads = []
    real = alerts.recent.readings_in_ranges_micros
    monkeypatch.setattr(alerts.recent, "readings_in_ranges_micros", lambda r: reads.append(dict(r)) or real(r))
    ingest(station, at + timedelta(minutes=101), 2.1)
    evaluate([station])
    assert [read[station.pk] for read in reads] == [(at + timedelta(minutes=95), at + timedelta(minutes=101))]

    reads.clear()
    ingest(station, at + timedelta(minutes=50, seconds=30), 1.5)  # late: the copy is not trusted
    evaluate([station])
    assert reads[0][station.pk][0] < at + timedelta(minutes=50)


def test_a_late_reading_changes_the_history_mark_and_newer_ones_do_not(towns, workers):
    station = make_station(towns[0], "M1")
    at = timezone.now().replace(microsecond=0) - timedelta(hours=1)
    ingest(station, at, 1.0)
    mark = StationState.objects.get(station=station).history_mark
    ingest(station, at + timedelta(minutes=10), 1.1)
    ingest(station, at, 1.3)  # a duplicate: nothing stored
    assert StationState.objects.get(station=station).history_mark == mark
    ingest(station, at - timedelta(minutes=5), 0.9)
    assert StationState.objects.get(station=station).history_mark != mark
    assert np.isclose(StationState.objects.get(station=station).value, 1.1)  # the latest stays


def test_copies_are_dropped_with_the_catalog_stamp(towns, workers):
    station = make_station(towns[0], "K1")
    at = timezone.now().replace(microsecond=0) - timedelta(hours=1)
    ingest(station, at, 1.0)
    evaluate([station])
    assert station.pk in recent_readings._copies
    Observation.objects.filter(station=station).update(value=1.2)  # a correction: the stamp moves
    from sensors.catalog import current_stamp

    assert recent_readings._copies[station.pk].stamp != current_stamp()
