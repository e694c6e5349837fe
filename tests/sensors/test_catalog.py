"""Ingestion's per-process station catalog: cached, and never stale after a write of any kind."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from sensors import catalog
from sensors.models import Station, StationState, Threshold
from sensors.services import observation_ingest
from tests.conftest import make_station

NOW = timezone.now().replace(microsecond=0)


def ingest(town, code, minutes_ago, value):
    return observation_ingest(
        municipality=town,
        items=[{"station": code, "observed_at": (NOW - timedelta(minutes=minutes_ago)).isoformat(), "value": value}],
        source="http",
    )


@pytest.fixture
def loads(monkeypatch):
    """How many times the catalog was read from the database."""
    calls = []
    real = catalog._load

    def counting():
        calls.append(1)
        return real()

    monkeypatch.setattr(catalog, "_load", counting)
    return calls


def test_unchanged_catalog_is_read_once_for_many_batches(towns, loads):
    make_station(towns[0], "C1")
    for minutes_ago in (30, 20, 10):
        assert ingest(towns[0], "C1", minutes_ago, 1.0).accepted == 1
    assert len(loads) == 1


def test_a_threshold_changed_behind_the_orm_is_seen_by_the_next_batch(towns, loads):
    station = make_station(towns[0], "C1")
    assert ingest(towns[0], "C1", 20, 3.6).accepted == 1
    assert StationState.objects.get(station=station).level == 3
    # QuerySet.update sends no signal: only the database trigger can tell the cache.
    Threshold.objects.filter(station=station, level=3).update(value=3.7)
    assert ingest(towns[0], "C1", 10, 3.6).accepted == 1
    assert StationState.objects.get(station=station).level == 2
    assert len(loads) == 2


def test_a_new_station_and_a_deactivated_one_are_seen_by_the_next_batch(towns, loads):
    make_station(towns[0], "C1")
    assert ingest(towns[0], "C2", 10, 1.0).rejected == [
        {"index": 0, "error": f"unknown station 'C2' for municipality '{towns[0].slug}'"}
    ]
    make_station(towns[0], "C2")
    assert ingest(towns[0], "C2", 10, 1.0).accepted == 1
    with connection.cursor() as cursor:
        cursor.execute("UPDATE sensors_station SET is_active = %s WHERE code = 'C2'", [False])
    assert ingest(towns[0], "C2", 5, 1.0).rejected == [{"index": 0, "error": "station 'C2' is inactive"}]


def test_a_station_moved_to_another_town_is_unknown_to_its_old_town(towns):
    make_station(towns[0], "C1")
    assert ingest(towns[0], "C1", 20, 1.0).accepted == 1
    Station.objects.filter(code="C1").update(municipality=towns[1])
    assert ingest(towns[0], "C1", 10, 1.0).rejected[0]["error"].startswith("unknown station 'C1'")
    assert ingest(towns[1], "C1", 10, 1.0).accepted == 1


def test_a_deleted_station_is_forgotten(towns):
    make_station(towns[0], "C1")
    assert ingest(towns[0], "C1", 20, 1.0).accepted == 1
    Station.objects.filter(code="C1").delete()
    assert ingest(towns[0], "C1", 10, 1.0).rejected[0]["error"].startswith("unknown station 'C1'")


def test_a_migrated_database_has_a_stamp_before_any_catalog_write(db):
    # Without one nothing could be cached until the first edit of a station (a populated database
    # migrated in place has none for months).
    assert catalog.current_stamp() is not None
