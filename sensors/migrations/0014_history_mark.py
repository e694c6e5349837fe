"""What per-process copies of recent readings (alerts.recent) check before they are trusted: a mark on
each station's latest state, changed by the writers that store a reading older than the latest one
(ingest, state recompute), and the catalog stamp, now also changed by any UPDATE or DELETE of stored
readings (corrections, data repair, a demo reseed; never on the ingest path, which only inserts)."""

from importlib import import_module

from django.db import migrations, models

# The vendor-specific statement runner of the migration that made the stamp.
_run = import_module("sensors.migrations.0009_perf_catalog_stamp")._run

TABLE = "sensors_observation"

POSTGRES_FORWARD = [
    f"CREATE TRIGGER {TABLE}_catalog_touch AFTER UPDATE OR DELETE OR TRUNCATE ON {TABLE} "
    "FOR EACH STATEMENT EXECUTE FUNCTION sensors_catalog_touch()",
]
POSTGRES_BACKWARD = [f"DROP TRIGGER IF EXISTS {TABLE}_catalog_touch ON {TABLE}"]
SQLITE_FORWARD = [
    f"CREATE TRIGGER {TABLE}_catalog_touch_{event.lower()} AFTER {event} ON {TABLE} BEGIN "
    "INSERT INTO sensors_catalogstamp (id, stamp) VALUES (1, random()) "
    "ON CONFLICT (id) DO UPDATE SET stamp = excluded.stamp; END"
    for event in ("UPDATE", "DELETE")
]
SQLITE_BACKWARD = [f"DROP TRIGGER IF EXISTS {TABLE}_catalog_touch_{event.lower()}" for event in ("UPDATE", "DELETE")]


class Migration(migrations.Migration):

    dependencies = [
        ("sensors", "0013_stationstate_fillfactor"),
    ]

    operations = [
        migrations.AddField(
            model_name="stationstate",
            name="history_mark",
            field=models.BigIntegerField(default=0, db_default=0),
        ),
        migrations.RunPython(
            _run({"postgresql": POSTGRES_FORWARD, "sqlite": SQLITE_FORWARD}),
            _run({"postgresql": POSTGRES_BACKWARD, "sqlite": SQLITE_BACKWARD}),
        ),
    ]
