"""PostgreSQL: a reading's station is checked once per statement instead of once per row.

The foreign key sensors_observation.station_id → sensors_station ran PostgreSQL's referential
trigger for every stored reading at COMMIT: a `SELECT … FOR KEY SHARE` of the station row per
reading (a row lock, and a WAL record, each): 13.0 ms of backend CPU for a 1,000-row insert with
the key, 6.75 ms with the triggers below, 7.0 ms with no check at all (medians of alternating
rounds, load 5.7). In a storm of 1,000-reading batches that was a quarter of PostgreSQL's CPU.

The key is replaced by triggers that keep what it guaranteed — no reading of a station that does not
exist, whatever writes it and whatever runs at the same time:
- after each INSERT or UPDATE of readings, one query over the statement's new rows (a transition
  table) raises foreign_key_violation if any names a missing station (triggers on the parent and on
  every partition, for writes made straight into one; sensors.partitions adds them to new months);
- a station is removed only when it has no readings (the key's NO ACTION): after a DELETE of
  stations (or an UPDATE of their id, or a TRUNCATE) the readings are looked up and the statement
  fails while any remain. Django deletes a station's readings first (on_delete=CASCADE), as before.
The two sides meet on one transaction-level advisory lock: a statement that stores readings holds
it shared until its transaction ends, a removal of stations takes it exclusively before looking, so
it waits for every writer in flight and then sees their readings; a writer that comes after waits
for the removal to commit, and then no longer finds the station. Removing stations is rare (an
operator's action); storing readings never waits for another writer on this lock.

The model keeps its ForeignKey (Django still cascades deletes and joins on it); SQLite keeps the
plain foreign key. Detached partitions (archives) had their key dropped already; an archive
attached again is not checked by ATTACH (docs/operations.md says what to run first).
"""

from django.db import migrations

from sensors import partitions

OBSERVATIONS = "sensors_observation"
STATIONS = "sensors_station"
# pg_advisory_xact_lock's 64-bit key for "readings are being written / stations removed"; any
# constant other code does not use (events use 0x6D697A75_xxxxxxxx).
LOCK_KEY = 0x6D697A76_00000001

FORWARD = [
    f"""
    CREATE FUNCTION sensors_observation_station_check() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_advisory_xact_lock_shared({LOCK_KEY});
        IF EXISTS (
            SELECT 1 FROM new_rows n WHERE NOT EXISTS (SELECT 1 FROM {STATIONS} s WHERE s.id = n.station_id)
        ) THEN
            RAISE EXCEPTION 'a reading names a station that does not exist'
                USING ERRCODE = 'foreign_key_violation', TABLE = '{OBSERVATIONS}';
        END IF;
        RETURN NULL;
    END $$
    """,
    f"""
    CREATE FUNCTION sensors_station_removal_check() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_advisory_xact_lock({LOCK_KEY});
        IF TG_OP = 'TRUNCATE' THEN
            IF EXISTS (SELECT 1 FROM {OBSERVATIONS}) THEN
                RAISE EXCEPTION 'stations cannot be truncated while readings exist'
                    USING ERRCODE = 'foreign_key_violation', TABLE = '{STATIONS}';
            END IF;
            RETURN NULL;
        END IF;
        IF TG_OP = 'UPDATE' THEN
            IF EXISTS (SELECT 1 FROM {OBSERVATIONS} o WHERE o.station_id = OLD.id) THEN
                RAISE EXCEPTION 'the id of station % cannot change while it has readings', OLD.id
                    USING ERRCODE = 'foreign_key_violation', TABLE = '{STATIONS}';
            END IF;
            RETURN NULL;
        END IF;
        IF EXISTS (SELECT 1 FROM old_rows d JOIN {OBSERVATIONS} o ON o.station_id = d.id) THEN
            RAISE EXCEPTION 'a station cannot be removed while it has readings'
                USING ERRCODE = 'foreign_key_violation', TABLE = '{STATIONS}';
        END IF;
        RETURN NULL;
    END $$
    """,
    f"CREATE TRIGGER station_removal_check_delete AFTER DELETE ON {STATIONS} "
    "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION sensors_station_removal_check()",
    f"CREATE TRIGGER station_removal_check_update AFTER UPDATE OF id ON {STATIONS} "
    "FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id) EXECUTE FUNCTION sensors_station_removal_check()",
    # After: a TRUNCATE that empties the readings too (as Django's flush does) is allowed, as with the key.
    f"CREATE TRIGGER station_removal_check_truncate AFTER TRUNCATE ON {STATIONS} "
    "FOR EACH STATEMENT EXECUTE FUNCTION sensors_station_removal_check()",
]
BACKWARD = [
    f"DROP TRIGGER IF EXISTS station_removal_check_delete ON {STATIONS}",
    f"DROP TRIGGER IF EXISTS station_removal_check_update ON {STATIONS}",
    f"DROP TRIGGER IF EXISTS station_removal_check_truncate ON {STATIONS}",
    "DROP FUNCTION IF EXISTS sensors_observation_station_check()",
    "DROP FUNCTION IF EXISTS sensors_station_removal_check()",
]


def _station_keys(cursor) -> list[str]:
    # The parent's own key (partitions carry clones of it, dropped with it).
    cursor.execute(
        "SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass AND confrelid = %s::regclass "
        "AND contype = 'f' AND conparentid = 0 ORDER BY conname",
        [OBSERVATIONS, STATIONS],
    )
    return [row[0] for row in cursor.fetchall()]


def _tables(cursor) -> list[str]:
    """The parent and its partitions: each gets the check's triggers (sensors.partitions.add_station_check)."""
    cursor.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = %s::regclass "
        "ORDER BY c.relname",
        [OBSERVATIONS],
    )
    return [OBSERVATIONS, *(row[0] for row in cursor.fetchall())]


def forward(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        # Readings written earlier in this transaction (tests) leave deferred key checks pending, and
        # PostgreSQL refuses ALTER TABLE while they are.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        for name in _station_keys(cursor):
            cursor.execute(f'ALTER TABLE {OBSERVATIONS} DROP CONSTRAINT "{name}"')
        for statement in FORWARD:
            cursor.execute(statement)
        for table in _tables(cursor):
            partitions.add_station_check(cursor, table)
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")


def backward(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    observation = apps.get_model("sensors", "Observation")
    with schema_editor.connection.cursor() as cursor:
        for table in _tables(cursor):
            for event in ("insert", "update"):
                cursor.execute(f'DROP TRIGGER IF EXISTS observation_station_check_{event} ON "{table}"')
        for statement in BACKWARD:
            cursor.execute(statement)
        if not _station_keys(cursor):
            # The key Django made in the first place (same name, deferred), checked on every row.
            schema_editor.execute(
                schema_editor._create_fk_sql(
                    observation, observation._meta.get_field("station"), "_fk_%(to_table)s_%(to_column)s"
                )
            )


class Migration(migrations.Migration):
    dependencies = [
        ("sensors", "0015_model_names_translated"),
    ]

    operations = [
        migrations.RunPython(forward, backward, elidable=False),
    ]
