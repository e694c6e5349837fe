"""The ingest write path that expects new readings (a plain INSERT on PostgreSQL) against the one that
skips conflicts (`ON CONFLICT DO NOTHING`, what every batch used before): same replies, same rows,
same latest states, whatever the batch holds."""

import random
from datetime import timedelta

import pytest
from django.utils import timezone

from events.models import OutboxEvent
from sensors import services
from sensors.models import Observation, StationState
from sensors.services import STATION_CHANGED, observation_ingest
from tests.conftest import make_station

NOW = timezone.now().replace(microsecond=0)
STATE_FIELDS = ("value", "observed_at", "quality", "previous_value", "previous_at", "reference_value", "reference_at",
                "level", "repeats")


@pytest.fixture
def workers(settings):
    settings.EVENTS_DRAIN = "workers"


def at(minutes):
    return NOW - timedelta(hours=6) + timedelta(minutes=minutes)


def rows(code):
    return list(
        Observation.objects.filter(station__code=code).order_by("observed_at").values_list("observed_at", "value", "quality")
    )


def state(code):
    return StationState.objects.filter(station__code=code).values_list(*STATE_FIELDS).first()


def test_a_reading_stored_behind_the_latest_states_back_is_a_duplicate_not_an_error(towns, workers):
    station = make_station(towns[0], "EQ-1")
    observation_ingest(municipality=towns[0], items=[{"station": "EQ-1", "observed_at": at(0), "value": 2.0}],
                       source="http")
    # Written by a path that does not move the latest state (an import, a repair by hand).
    Observation.objects.create(station=station, observed_at=at(10), value=9.9, received_at=NOW, source="import")
    OutboxEvent.objects.all().delete()

    report = observation_ingest(
        municipality=towns[0], source="http",
        items=[{"station": "EQ-1", "observed_at": at(10), "value": 2.1},
               {"station": "EQ-1", "observed_at": at(20), "value": 2.2}],
    )

    assert report.as_dict() == {"accepted": 1, "duplicates": 1, "rejected": []}
    assert [(t, v) for t, v, _ in rows("EQ-1")] == [(at(0), 2.0), (at(10), 9.9), (at(20), 2.2)]
    assert state("EQ-1")[:2] == (2.2, at(20))
    # One change-log event per batch, from the attempt that was committed.
    assert list(OutboxEvent.objects.filter(kind=STATION_CHANGED, handler="alerts.evaluate")
                .values_list("payload", flat=True)) == [{"stations": [station.pk]}]


def test_expecting_new_readings_stores_what_skipping_conflicts_stores(towns, workers, monkeypatch):
    """Twin stations get the same random batches (new, late, repeated, out of order, spikes, readings
    stored behind the state's back); X goes the way of every batch, Y as before (conflicts skipped
    from the start)."""
    rng = random.Random(20261201)
    twins = 6
    stations = {}
    for n in range(twins):
        for side in "XY":
            stations[f"{side}-{n}"] = make_station(towns[0], f"EQ-{side}{n}")
    store_and_emit = services._store_and_emit

    def skipping_conflicts(*args, expect_new, **kwargs):
        return store_and_emit(*args, expect_new=False, **kwargs)

    sent: dict[int, list[int]] = {n: [] for n in range(twins)}
    minute = 0
    for _ in range(25):
        batch = []
        for _ in range(rng.randrange(1, 12)):
            n = rng.randrange(twins)
            roll = rng.random()
            if sent[n] and roll < 0.2:
                minutes = rng.choice(sent[n])  # sent before: a duplicate
            elif sent[n] and roll < 0.35:
                minutes = min(sent[n]) - rng.randrange(1, 30)  # late
            else:
                minute += rng.randrange(0, 3)
                minutes = minute + rng.randrange(0, 4)  # newest, sometimes out of order or repeated
            value = round(rng.choice([2.0, 2.0, 2.05, 3.2, 4.5, 7.0]) + rng.random() / 10, 3)  # 7.0: a spike
            batch.append((n, minutes, value))
            sent[n].append(minutes)
        if rng.random() < 0.2:
            # Stored behind the latest state's back, newer than it, for both twins alike.
            n = rng.randrange(twins)
            minute += 1
            for side in "XY":
                Observation.objects.create(station=stations[f"{side}-{n}"], observed_at=at(minute), value=1.5,
                                           received_at=NOW, source="import")
            sent[n].append(minute)
            batch.append((n, minute, 2.5))
            rng.shuffle(batch)
        replies = {}
        for side in "XY":
            items = [{"station": f"EQ-{side}{n}", "observed_at": at(minutes), "value": value}
                     for n, minutes, value in batch]
            if side == "Y":
                monkeypatch.setattr(services, "_store_and_emit", skipping_conflicts)
            replies[side] = observation_ingest(municipality=towns[0], items=items, source="http").as_dict()
            monkeypatch.setattr(services, "_store_and_emit", store_and_emit)
        assert replies["X"] == replies["Y"], batch
    for n in range(twins):
        assert rows(f"EQ-X{n}") == rows(f"EQ-Y{n}")
        assert state(f"EQ-X{n}") == state(f"EQ-Y{n}")
    assert Observation.objects.filter(station__code__startswith="EQ-X").exists()


@pytest.mark.parametrize(
    "value",
    [float("nan"), float("inf"), float("-inf"), True, False, None, "1.5", "１.５", 2, 10**400, [1.0], {"v": 1.0}],
    ids=["nan", "inf", "-inf", "true", "false", "null", "text", "full-width", "int", "huge-int", "list", "object"],
)
def test_an_item_whose_code_and_time_were_read_earlier_in_the_batch_is_judged_as_when_alone(towns, workers, value):
    """The usual item is taken from the parser's memos inline; any other must get the parser's own
    answer, also when its code and time text were read (and memoised) earlier in the batch."""
    make_station(towns[0], "EQ-H")
    time = at(0).isoformat()
    hostile = {"station": "EQ-H", "observed_at": time, "value": value}
    alone = observation_ingest(municipality=towns[0], items=[hostile], source="http").as_dict()
    Observation.objects.filter(station__code="EQ-H").delete()
    StationState.objects.filter(station__code="EQ-H").delete()
    after = observation_ingest(
        municipality=towns[0], source="http",
        items=[{"station": "EQ-H", "observed_at": time, "value": 1.0}, hostile,
               {"station": "EQ-H", "observed_at": time, "value": 1.0, "extra": "ignored"}],
    ).as_dict()
    if alone["rejected"]:
        assert after["rejected"] == [{**alone["rejected"][0], "index": 1}]
        assert (after["accepted"], after["duplicates"]) == (1, 1)
    else:  # a number the parser accepts (an int, a full-width numeral): the same reading again
        assert alone["accepted"] == 1 and after == {"accepted": 1, "duplicates": 2, "rejected": []}
