"""A batch steps a rule through its new readings up to each transition at once (`LevelSteps.levels`):
the alerts it moves must be those that evaluating every reading in its own batch moves."""

from __future__ import annotations

import math
import random
from datetime import timedelta

import pytest
from django.utils import timezone

from alerts.handlers import station_changes_evaluate
from alerts.models import AlertEvent
from sensors.services import observation_ingest
from tests.conftest import make_station


@pytest.fixture
def workers(settings):
    settings.EVENTS_DRAIN = "workers"


def evaluate(stations):
    station_changes_evaluate([("station.changed", {"stations": [s.pk for s in stations]})])


def transitions(station):
    """Each rule's events in order (one batch writes one rule's events before the next rule's)."""
    by_rule = {}
    for event in AlertEvent.objects.filter(alert__station=station).select_related("alert__rule").order_by("pk"):
        by_rule.setdefault(event.alert.rule.kind, []).append((event.kind, event.level, event.value, event.observed_at))
    return by_rule


@pytest.mark.parametrize("seed", [1, 2])
def test_a_batch_of_readings_moves_alerts_as_one_reading_per_batch_does(towns, workers, seed):
    rng = random.Random(seed)
    one_by_one = make_station(towns[0], f"S{seed}A")
    batched = make_station(towns[0], f"S{seed}B")
    start = timezone.now().replace(microsecond=0) - timedelta(hours=5)
    readings = []
    for step in range(150):  # through every rung and back, hovering at some, never an implausible jump
        wave = 3.3 + 1.9 * math.sin(step / 14) + rng.uniform(-0.12, 0.12)
        readings.append((start + timedelta(minutes=2 * step), round(max(0.5, wave), 2)))
    for at, value in readings:
        for station in (one_by_one, batched):
            observation_ingest(
                municipality=None, items=[{"station": station.code, "observed_at": at, "value": value}], source="http"
            )
        evaluate([one_by_one])
        if rng.random() < 0.15:  # now and then the batched station is evaluated after many readings
            evaluate([batched])
    evaluate([batched])
    expected = transitions(one_by_one)
    assert {kind for kind, *_ in expected["threshold"]} >= {"opened", "escalated", "deescalated", "resolved"}
    assert expected["rate_of_rise"]
    assert transitions(batched) == expected
