"""Monthly observation partitions on PostgreSQL (migration 0006, sensors/partitions.py), and the
no-op path on SQLite, which keeps the plain table."""

from datetime import UTC, date, datetime, timedelta
from datetime import timezone as dt_timezone
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from sensors import partitions
from sensors.models import Observation
from sensors.selectors import observation_range
from sensors.services import observation_ingest
from sensors.tasks import observation_partitions_ahead_task
from tests.conftest import make_station

BEFORE_PARTITIONING = [("sensors", "0005_state_previous_reading")]

postgresql_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="observations are partitioned only on PostgreSQL; SQLite keeps the plain table"
)
sqlite_only = pytest.mark.skipif(connection.vendor != "sqlite", reason="the no-op path of the embedded default")


def migrate_to_latest():
    """Forward to every app's newest migration, so migrations of other apps that depend on sensors
    and were unapplied on the way back come back too."""
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


def where_rows_are(station) -> dict[datetime, str]:
    """{observed_at: the table that physically holds the row}."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT observed_at, tableoid::regclass::text FROM sensors_observation WHERE station_id = %s", [station.pk]
        )
        return dict(cursor.fetchall())


def insert_raw(station, *times, table="sensors_observation"):
    """Rows written straight into a table, as a bulk load or an old import would have left them."""
    with connection.cursor() as cursor:
        for observed_at in times:
            cursor.execute(
                f"INSERT INTO {table} (station_id, observed_at, value, quality, received_at, source) "
                "VALUES (%s, %s, 1.5, 'ok', now(), 'import')",
                [station.pk, observed_at],
            )


def add_months(value: date, count: int) -> date:
    return partitions.add_months(value, count)


# --- month arithmetic and argument parsing (every backend) ---------------------------------------


def test_month_arithmetic_crosses_years_and_names_partitions():
    assert partitions.add_months(date(2026, 11, 1), 3) == date(2027, 2, 1)
    assert partitions.add_months(date(1900, 1, 1), -1) == date(1899, 12, 1)
    assert partitions.month_start(datetime(2026, 12, 31, 23, 30, tzinfo=dt_timezone(timedelta(hours=-9)))) == date(2027, 1, 1)
    assert partitions.partition_name(date(1950, 6, 1)) == "sensors_observation_p1950_06"


@pytest.mark.parametrize("text", ["2026-13", "2026-00", "2026-1", "26-01", "2026/01", "", "2026-01-01", "２０２６-０１",
                                  "2026-01; DROP TABLE sensors_observation", "9" * 10_000])
def test_a_bad_month_is_refused_with_what_was_wrong(text):
    with pytest.raises(ValueError, match="is not a month written as YYYY-MM") as refused:
        partitions.parse_month(text)
    assert len(str(refused.value)) < 80


@pytest.mark.django_db
@pytest.mark.parametrize("args, error", [
    (["--detach-before", "2026-13"], "--detach-before: '2026-13' is not a month written as YYYY-MM"),
    (["--ahead", "-1"], "--ahead must be 0 or more"),
    (["--since", "1950-1"], "--since: '1950-1' is not a month written as YYYY-MM"),
    (["--since", "2001-01", "--detach-before", "2002-01"], "--since 2001-01 is before --detach-before 2002-01"),
])
def test_command_refuses_bad_arguments_and_changes_nothing(args, error):
    tables_before = connection.introspection.table_names()
    with pytest.raises(CommandError, match=error):
        call_command("observation_partitions", *args, stdout=StringIO())
    assert connection.introspection.table_names() == tables_before


def test_beat_runs_the_partition_task_daily():
    from django.conf import settings

    from config.celery import app

    entry = settings.CELERY_BEAT_SCHEDULE["sensors-observation-partitions-ahead"]
    assert entry["schedule"] == 24 * 60 * 60
    assert entry["task"] in app.tasks and entry["task"] == observation_partitions_ahead_task.name


# --- SQLite: the plain table stays, every entry point says there is nothing to do ----------------


@sqlite_only
@pytest.mark.django_db
def test_sqlite_keeps_the_plain_table_and_maintenance_is_a_clear_no_op(stations):
    out = StringIO()
    call_command("observation_partitions", "--ahead", "2", "--since", "1999-01", "--detach-before", "1998-01", stdout=out)
    assert out.getvalue().strip() == "observations are a plain table on sqlite; partitions exist only on PostgreSQL, nothing to do"
    assert observation_partitions_ahead_task.delay().get()["skipped"].startswith("observations are a plain table")
    assert not partitions.is_partitioned(connection)
    assert not [name for name in connection.introspection.table_names() if name.startswith("sensors_observation_")]
    # And the redundant single-column index on station is gone here too.
    indexes = connection.introspection.get_constraints(connection.cursor(), "sensors_observation")
    assert not [name for name, info in indexes.items() if info["index"] and info["columns"] == ["station_id"]]


@sqlite_only
@pytest.mark.django_db(transaction=True)  # SQLite's schema editor cannot run inside the test's transaction
def test_sqlite_migration_keeps_the_plain_table_and_its_rows_both_ways(towns):
    station = make_station(towns[0], "SQL-1")
    times = [datetime(1950, 6, 15, tzinfo=UTC), datetime(2024, 2, 29, 23, 59, 59, tzinfo=UTC)]
    for observed_at in times:
        Observation.objects.create(station=station, observed_at=observed_at, value=1, received_at=observed_at, source="import")
    before = sorted(Observation.objects.values_list("id", "station_id", "observed_at", "value"))

    MigrationExecutor(connection).migrate(BEFORE_PARTITIONING)
    indexes = connection.introspection.get_constraints(connection.cursor(), "sensors_observation")
    assert [name for name, info in indexes.items() if info["index"] and info["columns"] == ["station_id"]]
    migrate_to_latest()

    assert sorted(Observation.objects.values_list("id", "station_id", "observed_at", "value")) == before
    indexes = connection.introspection.get_constraints(connection.cursor(), "sensors_observation")
    assert not [name for name, info in indexes.items() if info["index"] and info["columns"] == ["station_id"]]
    assert not [name for name in connection.introspection.table_names() if name.startswith("sensors_observation_")]


# --- PostgreSQL ----------------------------------------------------------------------------------


@postgresql_only
@pytest.mark.django_db
def test_migration_partitions_a_populated_table_and_keeps_every_row_once(towns):
    station, other = make_station(towns[0], "MIG-1"), make_station(towns[1], "MIG-2")
    with connection.cursor() as cursor:
        # The stations' thresholds leave FK checks pending, and PostgreSQL refuses to ALTER a table
        # with pending trigger events, which the backwards threshold migrations do.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE_PARTITIONING)
    assert not partitions.is_partitioned(connection)
    now = timezone.now().replace(microsecond=0)
    times = [
        datetime(1950, 6, 15, 3, 0, tzinfo=UTC),
        datetime(2024, 2, 29, 23, 59, 59, tzinfo=UTC),  # the last second of a leap month
        datetime(2024, 3, 1, 0, 0, tzinfo=UTC),
        now - timedelta(days=40),
        now,
        now + timedelta(minutes=4),  # inside the accepted clock skew
        datetime(2099, 12, 31, 23, 59, 59, tzinfo=UTC),  # far ahead of any partition: DEFAULT
    ]
    insert_raw(station, *times)
    insert_raw(other, now)
    # As if another migration had added an index and a check before this one runs: both must survive.
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the rows above leave FK checks pending
        cursor.execute("CREATE INDEX observation_quality_test_idx ON sensors_observation (quality, observed_at)")
        cursor.execute("ALTER TABLE sensors_observation ADD CONSTRAINT observation_value_test_check CHECK (value > -100)")
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, station_id, observed_at, value, quality, received_at, source FROM sensors_observation")
        before = sorted(cursor.fetchall())

    migrate_to_latest()

    assert partitions.is_partitioned(connection)
    after = sorted(
        Observation.objects.values_list("id", "station_id", "observed_at", "value", "quality", "received_at", "source")
    )
    assert after == before
    homes = where_rows_are(station)
    assert homes[times[0]] == "sensors_observation_p1950_06"
    assert homes[times[1]] == "sensors_observation_p2024_02"
    assert homes[times[2]] == "sensors_observation_p2024_03"
    assert homes[now] == partitions.partition_name(partitions.month_start(now))
    assert homes[times[-1]] == "sensors_observation_p2099_12"
    months = partitions.attached_months(connection)
    this_month = partitions.month_start(now)
    # Last month too: a week's history read early in the month reaches back into it.
    assert all(add_months(this_month, offset) in months for offset in range(-1, 4))

    constraints = connection.introspection.get_constraints(connection.cursor(), "sensors_observation")
    assert constraints["observation_quality_test_idx"]["columns"] == ["quality", "observed_at"]
    assert constraints["observation_value_test_check"]["check"]
    with pytest.raises(IntegrityError), transaction.atomic():
        Observation.objects.create(station=station, observed_at=times[0], value=9, received_at=now, source="http")
    with pytest.raises(IntegrityError), transaction.atomic():
        Observation.objects.create(station=station, observed_at=now - timedelta(hours=1), value=-200, received_at=now, source="http")
    fresh = Observation.objects.create(
        station=station, observed_at=now - timedelta(minutes=10), value=2, received_at=now, source="http"
    )
    assert fresh.pk > max(row[0] for row in before)

    report = observation_ingest(
        municipality=towns[0], source="http", now=now,
        items=[{"station": "MIG-1", "observed_at": now.isoformat(), "value": 1.5},
               {"station": "MIG-1", "observed_at": (now - timedelta(minutes=20)).isoformat(), "value": 1.4}],
    )
    assert (report.accepted, report.duplicates, report.rejected) == (1, 1, [])
    assert Observation.objects.filter(station=station, observed_at=now).count() == 1

    # And back: one plain table again with the same rows (the reverse must work for a rollback).
    with connection.cursor() as cursor:
        # The ingest above left the new latest-state row's FK check pending, and the way back alters
        # that table (sensors 0010 drops StationState.repeats).
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    MigrationExecutor(connection).migrate(BEFORE_PARTITIONING)
    assert not partitions.is_partitioned(connection)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*), count(DISTINCT id) FROM sensors_observation")
        assert cursor.fetchone() == (len(before) + 2, len(before) + 2)
    constraints = connection.introspection.get_constraints(connection.cursor(), "sensors_observation")
    assert "observation_quality_test_idx" in constraints and "observation_value_test_check" in constraints
    migrate_to_latest()
    assert Observation.objects.count() == len(before) + 2


@postgresql_only
@pytest.mark.django_db
def test_the_database_key_holds_the_partition_key_and_no_station_only_index_is_left():
    constraints = connection.introspection.get_constraints(connection.cursor(), "sensors_observation")
    primary = [info["columns"] for info in constraints.values() if info["primary_key"]]
    assert primary == [["id", "observed_at"]]
    assert constraints["observation_unique_station_time"]["columns"] == ["station_id", "observed_at"]
    assert not [name for name, info in constraints.items() if info["index"] and info["columns"] == ["station_id"]]
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_indexes WHERE tablename LIKE 'sensors_observation%%' AND indexdef LIKE '%%(station_id)'")
        assert cursor.fetchone()[0] == 0


@postgresql_only
@pytest.mark.django_db
def test_history_read_prunes_to_its_month_and_uses_the_station_time_index(towns):
    station = make_station(towns[0], "HIST-1")
    now = timezone.now()
    since = now - timedelta(days=7)
    query = observation_range(station=station, since=since, until=now)
    sql, params = query.query.sql_with_params()
    with connection.cursor() as cursor:
        # Tiny test tables would be read sequentially; what matters is that the index can serve it.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute("SET LOCAL enable_seqscan = on")
    wanted = {partitions.partition_name(partitions.month_start(t)) for t in (since, now)}
    scanned = {name for name in partitions.attached_months(connection).values() if name in plan}
    assert scanned == wanted, plan
    assert "Seq Scan" not in plan and "station_id_observed_at" in plan, plan


@postgresql_only
@pytest.mark.django_db
def test_creating_partitions_ahead_is_idempotent():
    far = datetime(2031, 5, 20, tzinfo=UTC)
    first = partitions.partitions_ensure_ahead(months_ahead=2, now=far)
    assert first.created == ["sensors_observation_p2031_05", "sensors_observation_p2031_06", "sensors_observation_p2031_07"]
    assert first.moved == {}
    again = partitions.partitions_ensure_ahead(months_ahead=2, now=far)
    assert again.created == [] and again.moved == {}
    months = partitions.attached_months(connection)
    assert [months.get(date(2031, m, 1)) for m in (5, 6, 7)] == first.created
    assert date(2031, 8, 1) not in months


@postgresql_only
@pytest.mark.django_db
def test_rows_waiting_in_default_move_into_their_new_month_partition(towns):
    station = make_station(towns[0], "DEF-1")
    in_month = [datetime(2032, 3, 1, 0, 0, tzinfo=UTC), datetime(2032, 3, 31, 23, 59, 59, tzinfo=UTC)]
    outside = [datetime(2032, 2, 29, 23, 59, 59, tzinfo=UTC), datetime(2032, 4, 1, 0, 0, tzinfo=UTC)]
    insert_raw(station, *in_month, *outside)
    assert set(where_rows_are(station).values()) == {partitions.DEFAULT_PARTITION}
    ids_before = sorted(Observation.objects.filter(station=station).values_list("id", flat=True))

    report = partitions.partitions_ensure_ahead(months_ahead=0, now=datetime(2032, 3, 10, tzinfo=UTC))

    assert report.created == ["sensors_observation_p2032_03"]
    assert report.moved == {"sensors_observation_p2032_03": 2}
    homes = where_rows_are(station)
    assert [homes[t] for t in in_month] == ["sensors_observation_p2032_03"] * 2
    assert [homes[t] for t in outside] == [partitions.DEFAULT_PARTITION] * 2
    assert sorted(Observation.objects.filter(station=station).values_list("id", flat=True)) == ids_before
    # The moved rows are still guarded by the unique constraint in their new home.
    with pytest.raises(IntegrityError), transaction.atomic():
        Observation.objects.create(station=station, observed_at=in_month[0], value=1, received_at=in_month[0], source="http")


@postgresql_only
@pytest.mark.django_db
def test_since_gives_past_months_in_default_their_own_partitions(towns):
    station = make_station(towns[0], "DEF-2")
    late_import = [datetime(2035, 1, 10, tzinfo=UTC), datetime(2035, 2, 10, tzinfo=UTC), datetime(2034, 12, 31, tzinfo=UTC)]
    insert_raw(station, *late_import)
    report = partitions.partitions_ensure_ahead(
        months_ahead=1, since=date(2035, 1, 1), now=datetime(2035, 3, 2, tzinfo=UTC)
    )
    assert report.created == [f"sensors_observation_p2035_{m:02d}" for m in (1, 2, 3, 4)]
    assert report.moved == {"sensors_observation_p2035_01": 1, "sensors_observation_p2035_02": 1}
    homes = where_rows_are(station)
    assert [homes[t] for t in late_import] == [
        "sensors_observation_p2035_01", "sensors_observation_p2035_02", partitions.DEFAULT_PARTITION
    ]


@postgresql_only
@pytest.mark.django_db
def test_a_standalone_table_with_the_partition_name_is_refused_not_overwritten(towns):
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE sensors_observation_p2033_01 (note text)")
        cursor.execute("INSERT INTO sensors_observation_p2033_01 VALUES ('an archive someone restored')")
    with pytest.raises(partitions.PartitionError, match="exists but is not attached"):
        partitions.partitions_ensure_ahead(months_ahead=0, now=datetime(2033, 1, 5, tzinfo=UTC))
    with connection.cursor() as cursor:
        cursor.execute("SELECT note FROM sensors_observation_p2033_01")
        assert cursor.fetchall() == [("an archive someone restored",)]
    assert date(2033, 1, 1) not in partitions.attached_months(connection)


@postgresql_only
@pytest.mark.django_db
def test_detach_leaves_old_months_as_standalone_tables_with_their_rows(towns):
    station = make_station(towns[0], "ARC-1")
    old = [datetime(2001, 1, 5, tzinfo=UTC), datetime(2001, 2, 5, tzinfo=UTC)]
    partitions.partitions_ensure_ahead(months_ahead=1, now=old[0])
    insert_raw(station, *old)
    now = timezone.now()
    recent = now.replace(microsecond=0)
    Observation.objects.create(station=station, observed_at=recent, value=1, received_at=recent, source="http")

    out = StringIO()
    call_command("observation_partitions", "--ahead", "0", "--detach-before", "2001-02", stdout=out)

    assert "detached sensors_observation_p2001_01 (now a standalone table: archive it, then drop it)" in out.getvalue()
    assert "sensors_observation_p2001_02" not in out.getvalue()
    months = partitions.attached_months(connection)
    assert date(2001, 1, 1) not in months and date(2001, 2, 1) in months
    assert list(Observation.objects.filter(station=station).values_list("observed_at", flat=True)) == [old[1], recent]
    with connection.cursor() as cursor:
        cursor.execute("SELECT station_id, observed_at FROM sensors_observation_p2001_01")
        assert cursor.fetchall() == [(station.pk, old[0])]
        cursor.execute(
            "SELECT count(*) FROM pg_constraint WHERE conrelid = 'sensors_observation_p2001_01'::regclass AND contype = 'f'"
        )
        assert cursor.fetchone()[0] == 0, "an archive must not pin its stations"
    # Nothing further to detach: a second run only says so.
    out = StringIO()
    call_command("observation_partitions", "--ahead", "0", "--detach-before", "2001-02", stdout=out)
    assert "no attached month partition before 2001-02" in out.getvalue()


@postgresql_only
@pytest.mark.django_db
def test_detaching_the_current_month_is_refused_and_nothing_changes():
    months_before = partitions.attached_months(connection)
    next_month = add_months(partitions.month_start(timezone.now()), 1)
    with pytest.raises(CommandError, match="refusing to detach the current month"):
        call_command("observation_partitions", "--ahead", "6", "--detach-before", f"{next_month:%Y-%m}", stdout=StringIO())
    assert partitions.attached_months(connection) == months_before


@postgresql_only
@pytest.mark.django_db
def test_beat_task_creates_the_configured_months_ahead(settings):
    settings.OBSERVATION_PARTITIONS_AHEAD = 5
    this_month = partitions.month_start(timezone.now())
    result = observation_partitions_ahead_task.delay().get()
    months = partitions.attached_months(connection)
    assert all(add_months(this_month, offset) in months for offset in range(6))
    assert set(result["created"]) <= set(months.values())
    assert observation_partitions_ahead_task.delay().get()["created"] == []
