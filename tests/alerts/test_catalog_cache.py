"""Evaluation's per-process copy of thresholds and default-rule keys follows every catalog write."""

from alerts.services import _catalog_cache
from sensors.models import Threshold, ThresholdRevision
from tests.conftest import make_station


def values(station):
    return sorted(t.value for t in _catalog_cache.current().thresholds_of([station.pk])[station.pk])


def test_thresholds_are_reread_after_a_write_behind_the_orm(towns, django_assert_num_queries):
    station = make_station(towns[0], "E1")
    assert values(station) == [2.0, 3.0, 3.5, 4.0, 5.0]
    with django_assert_num_queries(1):  # the stamp only
        assert values(station) == [2.0, 3.0, 3.5, 4.0, 5.0]
    Threshold.objects.filter(station=station, value=3.5).update(value=3.6)
    assert values(station) == [2.0, 3.0, 3.6, 4.0, 5.0]


def test_a_new_revision_or_threshold_drops_the_copy(towns):
    station = make_station(towns[0], "E1")
    cache = _catalog_cache.current()
    cache.thresholds_of([station.pk])
    cache.default_keys[station.pk] = frozenset()
    threshold = Threshold.objects.get(station=station, value=3.5)
    ThresholdRevision.objects.create(threshold=threshold, value=3.4, valid_to=threshold.station.created_at)
    fresh = _catalog_cache.current()
    assert fresh.default_keys == {} and fresh.thresholds == {}
