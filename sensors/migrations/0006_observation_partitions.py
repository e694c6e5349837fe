"""Observations: drop the redundant station index; on PostgreSQL, partition the table by month.

The unique (station, observed_at) index already serves every lookup by station, so the FK's own
index goes on every backend. On PostgreSQL the populated table is then rebuilt as a declaratively
range-partitioned table: the old table is renamed, a partitioned parent with the same columns,
constraint names and id identity is created, partitions are made for every month that holds data
(plus this month and the months ahead), rows are copied with INSERT … SELECT, the id sequence is
moved past the highest id and the old table is dropped — all in this migration's transaction.
PostgreSQL requires the partition key in every unique constraint, so the primary key there is
(id, observed_at); Django's model keeps `id` as pk, still unique by its sequence. SQLite keeps the
plain table. Django's model state is untouched by the rebuild, so `makemigrations --check` stays clean.

On a large table this holds an exclusive lock for the duration of the copy: plan a maintenance
window (docs/operations.md).
"""

import re

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models
from django.utils import timezone

# The partition layout lives in one place: the maintenance functions build the month partitions
# the same way here and every day afterwards.
from sensors import partitions

TABLE = partitions.PARENT
OLD = f"{TABLE}_unpartitioned"
PARTITIONED = f"{TABLE}_partitioned"


def _constraint_names(cursor, table, kind):
    cursor.execute(
        "SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass AND contype = %s ORDER BY conname",
        [table, kind],
    )
    return [row[0] for row in cursor.fetchall()]


def _set_id_sequence(cursor, table):
    cursor.execute(
        f"SELECT setval(pg_get_serial_sequence(%s, 'id'), COALESCE((SELECT max(id) FROM {table}), 0) + 1, false)",
        [table],
    )


def _set_aside(cursor, table, new_name):
    """Rename `table` and free the names PostgreSQL keeps per schema (its indexes and id sequence),
    so the rebuilt table can take them. Returns the foreign-key constraint names it had and the
    definitions of its other indexes (any a later migration added), to be made again on the new table."""
    cursor.execute(f"ALTER TABLE {table} RENAME TO {new_name}")
    foreign_keys = _constraint_names(cursor, new_name, "f")
    for name in foreign_keys + _constraint_names(cursor, new_name, "u") + _constraint_names(cursor, new_name, "p"):
        cursor.execute(f'ALTER TABLE {new_name} DROP CONSTRAINT "{name}"')
    cursor.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s AND schemaname = current_schema()",
        [new_name],
    )
    indexes = cursor.fetchall()
    for name, _ in indexes:
        cursor.execute(f'DROP INDEX "{name}"')
    cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [new_name])
    sequence = cursor.fetchone()[0]
    cursor.execute(f"ALTER SEQUENCE {sequence} RENAME TO {new_name}_id_seq")
    on_table = re.compile(rf" ON (ONLY )?(\S+\.)?{new_name} ")
    return foreign_keys, [on_table.sub(f" ON {table} ", definition) for _, definition in indexes]


def _add_constraints(cursor, foreign_keys, primary_key):
    cursor.execute(f'ALTER TABLE {TABLE} ADD CONSTRAINT "{TABLE}_pkey" PRIMARY KEY ({primary_key})')
    cursor.execute(
        f'ALTER TABLE {TABLE} ADD CONSTRAINT "observation_unique_station_time" UNIQUE (station_id, observed_at)'
    )
    for name in foreign_keys:
        cursor.execute(
            f'ALTER TABLE {TABLE} ADD CONSTRAINT "{name}" FOREIGN KEY (station_id) '
            f"REFERENCES sensors_station (id) DEFERRABLE INITIALLY DEFERRED"
        )


def partition_observations(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "postgresql" or partitions.is_partitioned(connection):
        return
    with connection.cursor() as cursor:
        # Rows written earlier in this transaction (tests) leave deferred FK checks pending, and
        # PostgreSQL refuses ALTER TABLE while they are.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        foreign_keys, indexes = _set_aside(cursor, TABLE, OLD)
        cursor.execute(
            f"CREATE TABLE {TABLE} (LIKE {OLD} INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING CONSTRAINTS) "
            "PARTITION BY RANGE (observed_at)"
        )
        _add_constraints(cursor, foreign_keys, "id, observed_at")
        for definition in indexes:
            cursor.execute(definition)
        cursor.execute(f"CREATE TABLE {partitions.DEFAULT_PARTITION} PARTITION OF {TABLE} DEFAULT")
        cursor.execute(
            f"SELECT DISTINCT date_trunc('month', observed_at AT TIME ZONE 'UTC')::date FROM {OLD}"
        )
        months = {row[0] for row in cursor.fetchall()}
    this_month = partitions.month_start(timezone.now())
    ahead = getattr(settings, "OBSERVATION_PARTITIONS_AHEAD", 3)
    # Last month too: on a fresh install early in a month, a week's history read or a gateway's
    # backfill reaches back into it, and would otherwise land in (and scan) DEFAULT.
    months |= {partitions.add_months(this_month, offset) for offset in range(-1, ahead + 1)}
    for month in sorted(months):
        partitions.create_month_partition(connection, month)
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {TABLE} SELECT * FROM {OLD}")
        _set_id_sequence(cursor, TABLE)
        cursor.execute(f"DROP TABLE {OLD}")
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")


def unpartition_observations(apps, schema_editor):
    """Back to one plain table holding every attached partition's rows (detached archives stay apart)."""
    connection = schema_editor.connection
    if connection.vendor != "postgresql" or not partitions.is_partitioned(connection):
        return
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        foreign_keys, indexes = _set_aside(cursor, TABLE, PARTITIONED)
        cursor.execute(
            f"CREATE TABLE {TABLE} (LIKE {PARTITIONED} INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING CONSTRAINTS)"
        )
        cursor.execute(f"INSERT INTO {TABLE} SELECT * FROM {PARTITIONED}")
        _set_id_sequence(cursor, TABLE)
        _add_constraints(cursor, foreign_keys, "id")
        for definition in indexes:
            cursor.execute(definition)
        cursor.execute(f"DROP TABLE {PARTITIONED}")
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")


class Migration(migrations.Migration):

    dependencies = [
        ('sensors', '0005_state_previous_reading'),
    ]

    operations = [
        migrations.AlterField(
            model_name='observation',
            name='station',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='observations', to='sensors.station'),
        ),
        migrations.RunPython(partition_observations, unpartition_observations),
    ]
