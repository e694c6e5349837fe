"""Room on every page of the latest-state table for the next version of its rows (PostgreSQL).

Every gateway tick updates each of its stations' rows. With full pages an update cannot stay on its
page: it adds an entry to the primary-key index and leaves the old version for VACUUM, so between
vacuums every lookup of a station walks all its dead versions (measured: 66 index entries per
station after a few hundred ticks, 44 ms to update 300 rows instead of 3). With a quarter of each
page filled, updates stay on their page (HOT, no index entry) and the page prunes its own dead
versions. The table holds one row per station, so four times the pages is still small.
"""

from django.db import migrations

TABLE = "sensors_stationstate"


def set_fillfactor(fillfactor):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE {TABLE} SET (fillfactor = {fillfactor})")
            # Existing pages keep their layout until rewritten (one row per station: quick). CLUSTER
            # rewrites in the migration's transaction, where VACUUM FULL cannot run.
            cursor.execute(
                "SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = %s::regclass AND indisprimary",
                [TABLE],
            )
            cursor.execute(f"CLUSTER {TABLE} USING {cursor.fetchone()[0]}")

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("sensors", "0012_tide_harmonics"),
    ]

    operations = [
        migrations.RunPython(set_fillfactor(25), set_fillfactor(100), elidable=False),
    ]
