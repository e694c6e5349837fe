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
    durations = [timedelta(minutes=1), timedelta(days=-1, seconds=5, microseconds=7), timedelta(0), None,
                 timedelta(days=400, microseconds=1), -timedelta(microseconds=1)]  # fmt: skip
    assert isinstance(pg_array(durations), str)
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT %s::text[], %s::float8[], %s::bigint[], %s::timestamptz[], %s::boolean[], %s::interval[]",
            [pg_array(texts), pg_array(floats), pg_array(ints), pg_array(times), pg_array([True, False, None]),
             pg_array(durations)],
        )  # fmt: skip
        assert cursor.fetchone() == (texts, floats, ints, times, [True, False, None], durations)
        # Durations read the same whatever the session's interval style.
        cursor.execute("SHOW intervalstyle")
        style = cursor.fetchone()[0]
        for other in ("sql_standard", "iso_8601", "postgres_verbose", style):
            cursor.execute(f"SET intervalstyle = {other}")
            cursor.execute("SELECT %s::interval[] = %s::interval[]", [pg_array(durations), durations])
            assert cursor.fetchone()[0] is True


@pytest.mark.django_db
def test_values_written_without_get_db_prep_save_are_what_it_gives(user_a):
    """`update_from_arrays` skips `get_db_prep_save` where it gives the value back (or the same
    integer in the driver's wrapper): every field kind the skip covers, with the values it skips and
    some it must not (a naive time, numbers of another type)."""
    import warnings

    from bulkwrite import _UNCHANGED, _db_values

    now = timezone.now()
    samples = {
        "last_value": [1.5, None, 3, -0.0],
        "level": [3, None, 0, True],
        "state": ["open", None, ""],
        "updated_at": [now, None, now.replace(tzinfo=None)],
        "time_to_next_level": [timedelta(minutes=3), None],
        "resolved_by": [user_a.pk, None, 0],
        "id": [1, 2**40],
    }
    covered = set()
    for name, values in samples.items():
        field = Alert._meta.get_field(name)
        covered.add(type(field))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the naive time's warning, both ways
            given, expected = _db_values(field, values, connection), [field.get_db_prep_save(v, connection) for v in values]
        assert given == expected
        # The same type, or a plain int where the field wraps it for the driver.
        assert all(type(g) is type(e) or (type(g) is int and isinstance(e, int)) for g, e in zip(given, expected))
    rule_enabled = AlertRule._meta.get_field("is_enabled")
    assert _db_values(rule_enabled, [True, None], connection) == [True, None]
    assert covered - set(_UNCHANGED) == set()


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
    Alert.objects.create(station=station, rule=rule, level=1, peak_level=1, opened_at=now - timedelta(days=900),
                         updated_at=now, state="resolved", resolved_at=now.replace(microsecond=999999),
                         last_observed_at=now - timedelta(microseconds=1))  # fmt: skip
    times = {AlertRule: ("evaluated_until", "created_at"), Alert: ("opened_at", "updated_at", "acknowledged_at",
             "resolved_at", "last_observed_at", "unconfirmed_at")}  # fmt: skip
    for queryset in (AlertRule.objects.order_by("pk"), Alert.objects.order_by("pk")):
        for micros in ((), times[queryset.model]):
            with transaction.atomic():
                fast = loaded_instances(queryset.select_for_update(), micros=micros)
                slow = list(queryset)
            assert [_fields(x) for x in fast] == [_fields(x) for x in slow] and fast
            # The same times, to the microsecond and with the same time zone object.
            assert [[(getattr(x, name), getattr(getattr(x, name), "tzinfo", None)) for name in times[queryset.model]]
                    for x in fast] == [[(getattr(x, name), getattr(getattr(x, name), "tzinfo", None))
                                        for name in times[queryset.model]] for x in slow]  # fmt: skip
            assert all(not x._state.adding and x._state.db == "default" and type(x) is queryset.model for x in fast)
    rule = loaded_instances(AlertRule.objects.filter(name="b"))[0]
    assert rule.station.code == "BW-L" and rule.window == timedelta(minutes=30)
    rule.evaluated_until = now
    rule.save()
    assert AlertRule.objects.count() == 2 and AlertRule.objects.get(name="b").evaluated_until == now
    related = loaded_instances(Alert.objects.select_related("rule"))
    assert related[0].rule.name == "b"  # iterated as usual: the related row came with it
