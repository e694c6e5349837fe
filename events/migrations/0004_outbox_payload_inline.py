"""PostgreSQL: change-log payloads are never compressed; rows up to a page stay in line.

An ingest batch's `station.changed` payload (its station ids) is 4 KB of jsonb per handler row for 333
stations, 16 KB for 1,000; above 2 KB (PostgreSQL's default `toast_tuple_target`) every row was
pglz-compressed on insert — 1.2 of 1.3 ms of the database's work for a 333-station batch's rows, 1.5
of 1.8 ms for 1,000 — and decompressed again by the drain that reads and deletes it moments later.
Now a row up to 8 KB is stored as it is, and a larger payload goes to TOAST uncompressed. SQLite has
no such setting."""

from django.db import migrations

FORWARD = [
    "ALTER TABLE events_outboxevent SET (toast_tuple_target = 8160)",
    "ALTER TABLE events_outboxevent ALTER COLUMN payload SET STORAGE EXTERNAL",
]
BACKWARD = [
    "ALTER TABLE events_outboxevent ALTER COLUMN payload SET STORAGE EXTENDED",
    "ALTER TABLE events_outboxevent RESET (toast_tuple_target)",
]


def _run(statements):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            for statement in statements:
                schema_editor.execute(statement)

    return run


class Migration(migrations.Migration):

    dependencies = [
        ("events", "0003_model_names_translated"),
    ]

    operations = [
        migrations.RunPython(_run(FORWARD), _run(BACKWARD)),
    ]
