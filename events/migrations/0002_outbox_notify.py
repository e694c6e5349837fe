"""PostgreSQL: every insert into the change log sends NOTIFY on `events.services.NOTIFY_CHANNEL`, so an
idle drain worker wakes at the commit instead of at its next poll. A statement trigger: one
notification per insert statement, delivered only if the transaction commits (PostgreSQL folds equal
notifications of one transaction into one). SQLite has no NOTIFY: workers there poll, and the
embedded default's in-process drain is woken by the writer's own process (events.services.add_waker)."""

from django.db import migrations

POSTGRES_FORWARD = [
    """
    CREATE FUNCTION events_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_notify('mizumori_outbox', '');
        RETURN NULL;
    END $$
    """,
    "CREATE TRIGGER events_outboxevent_notify AFTER INSERT ON events_outboxevent "
    "FOR EACH STATEMENT EXECUTE FUNCTION events_outbox_notify()",
]
POSTGRES_BACKWARD = [
    "DROP TRIGGER IF EXISTS events_outboxevent_notify ON events_outboxevent",
    "DROP FUNCTION IF EXISTS events_outbox_notify()",
]


def _run(statements):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            for statement in statements:
                schema_editor.execute(statement)

    return run


class Migration(migrations.Migration):

    dependencies = [
        ("events", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(_run(POSTGRES_FORWARD), _run(POSTGRES_BACKWARD)),
    ]
