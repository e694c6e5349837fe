"""bulkwrite.update_from_arrays: many rows, different values, one statement on PostgreSQL."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from alerts.models import Alert, AlertRule
from bulkwrite import update_from_arrays
from sensors.models import StationState
from tests.conftest import make_station


def test_every_field_kind_round_trips_and_untouched_fields_stay(towns, user_a):
    stations = [make_station(towns[0], f"BW-{i}") for i in range(3)]
    now = timezone.now().replace(microsecond=0)
    states = [StationState.objects.create(station=s, value=1.0, observed_at=now, accumulations={}) for s in stations]
    for i, state in enumerate(states):
        state.value, state.level, state.accumulations = 2.5 + i, i, {"3600": i * 1.5, "note": "x'\"); --"}
        state.observed_at = now + timedelta(minutes=i)
    with CaptureQueriesContext(connection) as queries:
        update_from_arrays(StationState, states, ["value", "level", "accumulations", "observed_at"])
    if connection.vendor == "postgresql":
        assert len(queries) == 1
    for i, state in enumerate(StationState.objects.order_by("station__code")):
        assert (state.value, state.level, state.accumulations["3600"], state.observed_at) == (
            2.5 + i, i, i * 1.5, now + timedelta(minutes=i)
        )
        assert state.accumulations["note"] == "x'\"); --" and state.quality == "ok"

    rule = AlertRule.objects.create(station=stations[0], kind="threshold", name="bw")
    alert = Alert.objects.create(station=stations[0], rule=rule, level=2, peak_level=2, opened_at=now, updated_at=now)
    alert.state, alert.resolved_by, alert.time_to_next_level, alert.rate_of_rise = "resolved", user_a, timedelta(minutes=42), None
    update_from_arrays(Alert, [alert], ["state", "resolved_by", "time_to_next_level", "rate_of_rise"])
    alert.refresh_from_db()
    assert (alert.state, alert.resolved_by_id, alert.time_to_next_level, alert.rate_of_rise) == (
        "resolved", user_a.pk, timedelta(minutes=42), None
    )
    update_from_arrays(Alert, [], ["state"])  # nothing to do is not an error


@pytest.mark.django_db
def test_pg_array_literals_read_back_exactly_what_was_given():
    from decimal import Decimal

    from bulkwrite import pg_array

    now = timezone.now()
    texts = ['plain', '', 'NULL', 'a,b', 'x\'"); --', 'back\\slash', '{braces}', ' spaced ', '水位"\\"']
    floats = [0.1, 1 / 3, -2.5e-300, 1e300, 3.0, None]
    ints = [0, -1, 2**62, None]
    times = [now, now - timedelta(days=400, microseconds=1), None]
    assert pg_array([]) == "{}"
    # Anything else goes to the driver as the list it was.
    assert pg_array([Decimal("1.5")]) == [Decimal("1.5")]
    assert pg_array([timedelta(minutes=1), None]) == [timedelta(minutes=1), None]
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT %s::text[], %s::float8[], %s::bigint[], %s::timestamptz[], %s::boolean[]",
            [pg_array(texts), pg_array(floats), pg_array(ints), pg_array(times), pg_array([True, False, None])],
        )
        assert cursor.fetchone() == (texts, floats, ints, times, [True, False, None])


@pytest.mark.django_db
def test_pg_array_of_one_kind_is_the_same_literal_as_member_by_member():
    """Arrays of plain numbers, or of strings without quotes or backslashes, are joined at once (the
    ingest batch's arrays); the literal must be the one `_element` writes member by member, and read
    back exactly."""
    import random

    from bulkwrite import _element, pg_array

    rng = random.Random(9)
    ints = [rng.randrange(-(2**62), 2**62) for _ in range(300)] + [0, 2**62]
    floats = [rng.uniform(-1e6, 1e6) for _ in range(300)] + [0.1, 1 / 3, -0.0, -2.5e-300, 1e300, 3.0]
    mixed_numbers = [1, 2.5, -3]
    texts = ["ok", "suspect", "NULL", "a,b", "{braces}", " spaced ", "水位", ""]
    escaped = ["a\"b", "c\\d", "ok"]
    for values in (ints, floats, mixed_numbers, texts, escaped, [True, 1], ("ok", "range")):
        assert pg_array(values) == "{" + ",".join(map(_element, values)) + "}", values
    assert pg_array(iter([1, 2])) == "{1,2}"  # an iterator is read once
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT %s::bigint[], %s::float8[], %s::text[], %s::text[]",
            [pg_array(ints), pg_array(floats), pg_array(texts), pg_array(escaped)],
        )
        assert cursor.fetchone() == (ints, floats, texts, escaped)


def _fields(instance):
    return {key: value for key, value in instance.__dict__.items() if key != "_state"}


def test_loaded_instances_are_what_iterating_the_queryset_gives(towns, user_a):
    """Rules and alerts as the drain loads them: the same field values (durations, nulls, times, foreign
    keys) and saved state as iterating the queryset, locked rows included; they save as updates and
    follow their foreign keys. A queryset the fast path does not cover is iterated as usual."""
    from django.db import transaction

    from bulkwrite import loaded_instances

    station = make_station(towns[0], "BW-L")
    now = timezone.now()
    AlertRule.objects.create(station=station, kind="threshold", name="a", min_duration=timedelta(minutes=5), evaluated_until=now)
    rule = AlertRule.objects.create(station=station, kind="rate_of_rise", name="b", window=timedelta(minutes=30), value=0.5, level=1)
    Alert.objects.create(station=station, rule=rule, level=2, peak_level=2, opened_at=now, updated_at=now,
                         resolved_by=user_a, time_to_next_level=timedelta(minutes=3))
    for queryset in (AlertRule.objects.order_by("pk"), Alert.objects.order_by("pk")):
        with transaction.atomic():
            fast = loaded_instances(queryset.select_for_update())
            slow = list(queryset)
        assert [_fields(x) for x in fast] == [_fields(x) for x in slow] and fast
        assert all(not x._state.adding and x._state.db == "default" and type(x) is queryset.model for x in fast)
    rule = loaded_instances(AlertRule.objects.filter(name="b"))[0]
    assert rule.station.code == "BW-L" and rule.window == timedelta(minutes=30)
    rule.evaluated_until = now
    rule.save()
    assert AlertRule.objects.count() == 2 and AlertRule.objects.get(name="b").evaluated_until == now
    related = loaded_instances(Alert.objects.select_related("rule"))
    assert related[0].rule.name == "b"  # iterated as usual: the related row came with it
