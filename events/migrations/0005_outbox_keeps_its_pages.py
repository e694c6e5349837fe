"""PostgreSQL: VACUUM never truncates the change log's empty tail pages.

The change log is a queue: ingestion appends, the drain deletes what it handled moments later, so
between vacuums the table's end is usually empty. VACUUM then tries to give those pages back to the
file system, which needs an ACCESS EXCLUSIVE lock: it retries for up to 5 s while ingestion and the
drain hold the table (phase a of bench/e2e.py --pg-statements: 1.7 s per VACUUM of the outbox, most
of it that retrying, while the other hot tables waited for the same vacuum), and once it has the
lock every append waits until it notices and lets go. The pages are needed again seconds later.
Without truncation VACUUM takes no lock that blocks appends, and the pages are reused. The TOAST
table (payloads above a page) likewise. SQLite has no such setting.
"""

from django.db import migrations

TABLE = "events_outboxevent"


def _set(value):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            if value is None:
                schema_editor.execute(f"ALTER TABLE {TABLE} RESET (vacuum_truncate, toast.vacuum_truncate)")
            else:
                schema_editor.execute(f"ALTER TABLE {TABLE} SET (vacuum_truncate = {value}, toast.vacuum_truncate = {value})")

    return run


class Migration(migrations.Migration):

    dependencies = [
        ("events", "0004_outbox_payload_inline"),
    ]

    operations = [
        migrations.RunPython(_set("false"), _set(None)),
    ]
