"""The history endpoint's fast renderers give the same bytes the DRF/csv.writer path gave before.

The reference below is that earlier implementation (model instances, `local_iso` per row, DRF's
JSONRenderer, csv.writer), kept here as the oracle for tricky values, time zones and hostile data.
"""

import csv
import io
from datetime import UTC, datetime, timedelta
from urllib.parse import quote
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.renderers import JSONRenderer

from sensors.models import Observation, Station
from sensors.selectors import LocalIsoFormatter, local_iso, observation_history_text
from tests.conftest import make_station, response_bytes

UNTIL = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)


class _Echo:
    def write(self, value):
        return value


def reference_json(station, since, until) -> bytes:
    readings = Observation.objects.filter(station=station, observed_at__gte=since, observed_at__lte=until).order_by(
        "observed_at"
    )
    return JSONRenderer().render(
        {
            "station": station.code,
            "unit": station.unit,
            "since": local_iso(since),
            "until": local_iso(until),
            "observations": [
                {"observed_at": local_iso(r.observed_at), "value": r.value, "quality": r.quality} for r in readings
            ],
        }
    )


def reference_csv(station, since, until) -> bytes:
    readings = Observation.objects.filter(station=station, observed_at__gte=since, observed_at__lte=until).order_by(
        "observed_at"
    )
    writer = csv.writer(_Echo())
    lines = [writer.writerow(["station", "observed_at", "value", "quality"])]
    lines += [writer.writerow([station.code, local_iso(r.observed_at), repr(r.value), r.quality]) for r in readings]
    return "".join(lines).encode()


def store(station, readings):
    Observation.objects.bulk_create(
        [
            Observation(station=station, observed_at=at, value=value, quality=quality, received_at=UNTIL, source="import")
            for at, value, quality in readings
        ],
        batch_size=150,
    )


def fetch(client, station, since, until, output):
    response = client.get(
        f"/api/v1/stations/{quote(station.code)}/observations",
        {"since": since.isoformat(), "until": until.isoformat(), "format": output},
    )
    assert response.status_code == 200, response.content
    return response_bytes(response)


def assert_same_as_reference(client, station, since, until):
    assert fetch(client, station, since, until, "json") == reference_json(station, since, until)
    assert fetch(client, station, since, until, "csv") == reference_csv(station, since, until)


TRICKY_VALUES = [
    -0.5, -49.999999999999, 0.0, -0.0, 0.1 + 0.2, 1 / 3, 1e-7, 2.5e-300, 123456789.123456789, 1e15, 1e16,
    1.7976931348623157e308, -1e22, 3.0, 199.99999999999997,
]


def test_tricky_values_and_codes_render_as_before(client, towns):
    station = make_station(towns[0], "R-1.a_b")
    times = [UNTIL - timedelta(minutes=10 * i, microseconds=i * 1234) for i in range(len(TRICKY_VALUES))]
    store(station, [(at, value, "suspect" if i % 3 else "ok") for i, (at, value) in enumerate(zip(times, TRICKY_VALUES, strict=True))])
    assert_same_as_reference(client, station, UNTIL - timedelta(days=1), UNTIL)
    body = fetch(client, station, UNTIL - timedelta(days=1), UNTIL, "json").decode()
    assert '"value":-0.5,' in body and '"value":1e-07,' in body and "+09:00" in body and ".998766+09:00" in body


# Around the edges of the database's plain-notation fast path ([1e-4, 1e15): float8out's text there is
# repr's without ".0"), and values whose text differs from repr outside it.
EDGE_VALUES = [
    1e-4, -1e-4, 9.999999999999999e-05, 0.00010000000000000002, 0.00012, 1.5e-05, 999999999999999.9,
    999999999999999.0, -999999999999999.0, 1e15 + 0.125, 5e15, 9007199254740993.0, 12345.0, -7.0, 0.1,
    2.0**-1074, 1e300,
]


def test_edge_values_and_times_render_as_before(client, towns):
    import random

    station = make_station(towns[0], "EDGE-1")
    draw = random.Random(9)
    values = EDGE_VALUES + [draw.uniform(-1e3, 1e3) for _ in range(300)]
    values += [draw.choice((1, -1)) * 10 ** draw.uniform(-8, 20) for _ in range(300)]
    values += [round(draw.uniform(0, 30), draw.randrange(0, 4)) for _ in range(300)]
    # Whole seconds (the text of a timestamp) and fractions of one (to_char), in one window.
    times = [UNTIL - timedelta(seconds=37 * i, microseconds=(i % 4) * 250_000 + (i % 7 == 0)) for i in range(len(values))]
    store(station, [(at, value, "ok") for at, value in zip(times, values, strict=True)])
    assert_same_as_reference(client, station, UNTIL - timedelta(days=1), UNTIL)
    if connection.vendor == "postgresql":  # and the database wrote them, not the Python fallback
        assert observation_history_text(station=station, since=UNTIL - timedelta(days=1), until=UNTIL) is not None


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the database writes the rows on PostgreSQL only")
def test_a_connection_with_another_datestyle_still_gets_the_same_rows(client, towns):
    station = make_station(towns[0], "DS-1")
    store(station, [(UNTIL - timedelta(minutes=i, microseconds=(i % 2) * 5), 1.0 + i / 8, "ok") for i in range(50)])
    since = UNTIL - timedelta(hours=2)
    assert_same_as_reference(client, station, since, UNTIL)
    rows = {code: observation_history_text(station=station, since=since, until=UNTIL, csv_code=code) for code in (None, "DS-1")}
    # Only the rows query: psycopg reads timestamptz in DateStyle ISO alone, so the rest of a request
    # could not run on such a connection; the history must still not write another time format.
    with connection.cursor() as cursor:
        cursor.execute("SET DateStyle = 'SQL, DMY'")  # whole-second times no longer read as ISO text
    try:
        assert connection.connection.info.parameter_status("DateStyle") == "SQL, DMY"
        for code, text in rows.items():
            assert observation_history_text(station=station, since=since, until=UNTIL, csv_code=code) == text
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET DateStyle")


def test_values_that_are_not_finite_fall_back_to_python_and_nothing_is_lost(client, towns):
    station = make_station(towns[0], "INF-1")
    readings = [(UNTIL - timedelta(minutes=3), 1.5, "ok"), (UNTIL - timedelta(minutes=2), float("inf"), "suspect"),
                (UNTIL, float("-inf"), "ok")]
    if connection.vendor == "postgresql":  # SQLite stores NaN as NULL
        readings.append((UNTIL - timedelta(minutes=1), float("nan"), "suspect"))
    store(station, readings)
    since = UNTIL - timedelta(hours=1)
    assert fetch(client, station, since, UNTIL, "csv") == reference_csv(station, since, UNTIL)
    assert b",inf,suspect\r\n" in fetch(client, station, since, UNTIL, "csv")
    assert Observation.objects.filter(station=station).count() == len(readings)


def test_rows_across_fetch_chunks_and_the_empty_window(client, towns):
    station = make_station(towns[0], "CHUNK-1")
    store(station, [(UNTIL - timedelta(minutes=i), 1.0 + i / 7, "ok") for i in range(4500)])
    assert_same_as_reference(client, station, UNTIL - timedelta(days=4), UNTIL)
    empty_since, empty_until = UNTIL + timedelta(minutes=1), UNTIL + timedelta(hours=1)
    assert_same_as_reference(client, station, empty_since, empty_until)
    assert fetch(client, station, empty_since, empty_until, "json").endswith(b'"observations":[]}')


def test_hostile_stored_text_is_escaped_and_quoted_as_before(client, towns):
    # Whatever got into the database by other doors (admin, imports) must still render safely.
    station = make_station(towns[0], "H-1")
    Station.objects.filter(pk=station.pk).update(unit='m"\u2028</script>,\n')
    station.refresh_from_db()
    store(station, [(UNTIL - timedelta(minutes=1), 2.0, 'we,ird"\r\n'), (UNTIL, 2.5, "ok")])
    assert_same_as_reference(client, station, UNTIL - timedelta(hours=1), UNTIL)
    rows = list(csv.reader(io.StringIO(fetch(client, station, UNTIL - timedelta(hours=1), UNTIL, "csv").decode())))
    assert rows[1][3] == 'we,ird"\r\n'


@pytest.mark.parametrize(
    "zone, around",
    [
        ("America/New_York", datetime(2026, 11, 1, 6, 0, tzinfo=UTC)),  # clocks go back: a repeated hour
        ("America/New_York", datetime(2026, 3, 8, 7, 0, tzinfo=UTC)),  # clocks go forward
        ("Australia/Lord_Howe", datetime(2026, 10, 3, 15, 30, tzinfo=UTC)),  # a 30-minute DST shift
        ("Asia/Kathmandu", datetime(2026, 11, 1, 0, 0, tzinfo=UTC)),  # +05:45, no DST
        ("Europe/London", datetime(2026, 10, 25, 1, 0, tzinfo=UTC)),  # +00:00 / +01:00
    ],
)
def test_history_in_a_zone_with_daylight_saving_renders_as_before(client, towns, settings, zone, around):
    settings.TIME_ZONE = zone
    station = make_station(towns[0], "DST-1")
    store(station, [(around + timedelta(minutes=7 * i), i / 10, "ok") for i in range(-100, 100)])
    assert_same_as_reference(client, station, around - timedelta(days=1), around + timedelta(days=1))


@pytest.mark.parametrize("zone", ["Asia/Tokyo", "America/New_York", "Europe/Dublin", "Australia/Lord_Howe", "UTC"])
def test_formatter_matches_local_iso_minute_by_minute_through_a_year(settings, zone):
    settings.TIME_ZONE = zone
    start = datetime(2026, 1, 1, tzinfo=UTC)
    times = [start + timedelta(minutes=17 * i, microseconds=(i % 3) * 500_000) for i in range(0, 31_000)]
    to_local = LocalIsoFormatter()
    assert [to_local(t) for t in times] == [local_iso(t) for t in times]
    # Naive values mean UTC (SQLite hands them over so); out-of-order times still format right.
    to_local = LocalIsoFormatter()
    shuffled = times[::-97] + times[::89]
    assert [to_local(t.replace(tzinfo=None)) for t in shuffled] == [local_iso(t) for t in shuffled]


def test_formatter_uses_the_given_offset_of_aware_input(settings):
    settings.TIME_ZONE = "Asia/Tokyo"
    moment = datetime(2026, 11, 22, 9, 0, tzinfo=ZoneInfo("America/Los_Angeles"))
    assert LocalIsoFormatter()(moment) == local_iso(moment) == timezone.localtime(moment).isoformat()
