"""Room on every page of the alert-rule table for the next version of its rows (PostgreSQL).

The drain moves the cursor (`evaluated_until`) of every rule of every station it evaluates, each
batch. On full pages such an update cannot stay on its page: it adds an entry to each of the table's
indexes and leaves the old version for VACUUM (phase a of bench/e2e.py --pg-statements counted the
rule table's updates, almost none HOT). With half of each page free the update stays on its page (HOT:
no index entries; the page prunes its own dead versions). A few rules per station: twice the pages is
still small.
"""

from django.db import migrations

TABLE = "alerts_alertrule"


def set_fillfactor(fillfactor):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE {TABLE} SET (fillfactor = {fillfactor})")
            # Existing pages keep their layout until rewritten. CLUSTER rewrites in the migration's
            # transaction, where VACUUM FULL cannot run.
            cursor.execute(
                "SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = %s::regclass AND indisprimary",
                [TABLE],
            )
            cursor.execute(f"CLUSTER {TABLE} USING {cursor.fetchone()[0]}")

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("alerts", "0013_model_names_translated"),
    ]

    operations = [
        migrations.RunPython(set_fillfactor(50), set_fillfactor(100), elidable=False),
    ]
