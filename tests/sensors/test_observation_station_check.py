"""A reading's station must exist, on PostgreSQL checked once per statement (sensors migration 0016)
instead of a foreign-key check per row: the same guarantee, also against a station removed while a
batch of its readings is being stored."""

import threading
import time
from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from sensors import partitions
from sensors.models import Observation, Station
from sensors.services import observation_ingest
from tests.conftest import make_station

postgresql_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="SQLite keeps the plain foreign key (checked at commit)"
)

INSERT = (
    "INSERT INTO sensors_observation (station_id, observed_at, value, quality, received_at, source) "
    "VALUES (%s, %s, 1.5, 'ok', now(), 'import')"
)


def missing_station_id() -> int:
    return (Station.objects.order_by("-pk").values_list("pk", flat=True).first() or 0) + 1000


@postgresql_only
@pytest.mark.django_db
def test_a_reading_of_a_missing_station_is_refused_by_the_database(towns):
    station = make_station(towns[0], "K1")
    now = timezone.now()
    with pytest.raises(IntegrityError, match="station that does not exist"), transaction.atomic():
        with connection.cursor() as cursor:
            # One statement with a good reading and a bad one: the whole statement fails.
            cursor.execute(
                "INSERT INTO sensors_observation (station_id, observed_at, value, quality, received_at, source) "
                "SELECT unnest(%s::bigint[]), %s, 1.0, 'ok', now(), 'import'",
                [[station.pk, missing_station_id()], now],
            )
    with pytest.raises(IntegrityError), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(INSERT, [missing_station_id(), now])
    reading = Observation.objects.create(station=station, observed_at=now, value=1, received_at=now, source="http")
    with pytest.raises(IntegrityError), transaction.atomic():
        Observation.objects.filter(pk=reading.pk).update(station_id=missing_station_id())
    assert list(Observation.objects.filter(station=station).values_list("pk", flat=True)) == [reading.pk]


@postgresql_only
@pytest.mark.django_db
def test_a_station_with_readings_cannot_be_removed_behind_djangos_back(towns):
    station = make_station(towns[0], "K1")
    now = timezone.now()
    assert (
        observation_ingest(
            municipality=towns[0],
            source="http",
            now=now,
            items=[{"station": "K1", "observed_at": now.isoformat(), "value": 1.0}],
        ).accepted
        == 1
    )
    for statement in (
        "DELETE FROM sensors_station WHERE id = %s",
        "UPDATE sensors_station SET id = id + 100000 WHERE id = %s",
    ):
        with pytest.raises(IntegrityError, match="readings"), transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET CONSTRAINTS ALL DEFERRED")
                cursor.execute(statement, [station.pk])
    with pytest.raises(IntegrityError, match="readings"), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # TRUNCATE refuses while key checks are pending
            cursor.execute("TRUNCATE sensors_station CASCADE")
    assert Observation.objects.filter(station=station).count() == 1
    # Django's delete removes the readings first (on_delete=CASCADE), then the station.
    Station.objects.filter(pk=station.pk).delete()
    assert not Observation.objects.filter(station_id=station.pk).exists()


def _raw_connection() -> psycopg.Connection:
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    return psycopg.connect(
        **{k: v for k, v in params.items() if k in {"dbname", "user", "password", "host", "port", "options"}}
    )


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_a_station_removed_while_its_readings_are_being_stored_leaves_no_orphan(towns):
    """Both orders of a removal racing a writer: the removal waits for the writer in flight and then
    fails on its readings; a writer after a removal in flight waits for it and then fails."""
    station = make_station(towns[0], "K1")
    now = timezone.now()
    outcome = {}

    def remove():
        try:
            with transaction.atomic():
                Station.objects.filter(pk=station.pk).delete()
            outcome["removal"] = "committed"
        except IntegrityError:
            outcome["removal"] = "refused"
        finally:
            connection.close()

    # 1. A writer in flight, then the removal.
    writer = _raw_connection()
    writer.execute(INSERT, [station.pk, now])
    remover = threading.Thread(target=remove)
    remover.start()
    time.sleep(0.5)
    assert remover.is_alive(), "the removal must wait for the writer in flight"
    writer.commit()
    remover.join(10)
    assert outcome["removal"] == "refused"
    assert Station.objects.filter(pk=station.pk).exists()
    assert Observation.objects.filter(station=station).count() == 1

    # 2. A removal in flight, then the writer.
    written = {}

    def write():
        try:
            with _raw_connection() as late:
                late.execute(INSERT, [station.pk, now + timedelta(minutes=1)])
            written["writer"] = "committed"
        except psycopg.errors.ForeignKeyViolation:
            written["writer"] = "refused"

    late_writer = threading.Thread(target=write)
    with transaction.atomic():
        Station.objects.filter(pk=station.pk).delete()
        late_writer.start()
        time.sleep(0.5)
        assert late_writer.is_alive(), "a writer must wait for the removal in flight"
    late_writer.join(10)
    assert written["writer"] == "refused"
    assert not Station.objects.filter(pk=station.pk).exists()
    assert not Observation.objects.filter(station_id=station.pk).exists()
    writer.close()


@postgresql_only
@pytest.mark.django_db
def test_a_write_straight_into_a_partition_is_checked_too(towns):
    """Statement triggers of the parent do not fire for a statement on a partition: each month
    partition has its own, a new month's included, and an archive (detached) none."""
    now = timezone.now()
    month = partitions.partition_name(partitions.month_start(now))
    with pytest.raises(IntegrityError, match="station that does not exist"), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {month} (id, station_id, observed_at, value, quality, received_at, source) "
                "VALUES (10000000000, %s, %s, 1.5, 'ok', now(), 'import')",
                [missing_station_id(), now],
            )
    far = datetime(2091, 5, 1, tzinfo=UTC)
    assert partitions.partitions_ensure_ahead(months_ahead=0, now=far).created == ["sensors_observation_p2091_05"]
    with pytest.raises(IntegrityError, match="station that does not exist"), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO sensors_observation_p2091_05 (id, station_id, observed_at, value, quality, received_at, source) "
                "VALUES (10000000001, %s, %s, 1.5, 'ok', now(), 'import')",
                [missing_station_id(), far],
            )
    partitions.partitions_detach_before(date(2091, 6, 1), now=datetime(2091, 7, 1, tzinfo=UTC))
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'sensors_observation_p2091_05'::regclass AND NOT tgisinternal"
        )
        assert cursor.fetchone()[0] == 0
