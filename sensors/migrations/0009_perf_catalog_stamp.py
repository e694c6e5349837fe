"""The catalog stamp and the triggers that change it on every write to stations, thresholds and their revisions."""

from django.db import migrations, models

TABLES = ("sensors_station", "sensors_threshold", "sensors_thresholdrevision")

POSTGRES_FORWARD = [
    """
    CREATE FUNCTION sensors_catalog_touch() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO sensors_catalogstamp (id, stamp) VALUES (1, (random() * 9.0e18)::bigint)
        ON CONFLICT (id) DO UPDATE SET stamp = EXCLUDED.stamp;
        RETURN NULL;
    END $$
    """,
    "INSERT INTO sensors_catalogstamp (id, stamp) VALUES (1, (random() * 9.0e18)::bigint)",
    *(
        f"CREATE TRIGGER {table}_catalog_touch AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} "
        "FOR EACH STATEMENT EXECUTE FUNCTION sensors_catalog_touch()"
        for table in TABLES
    ),
]
POSTGRES_BACKWARD = [
    *(f"DROP TRIGGER IF EXISTS {table}_catalog_touch ON {table}" for table in TABLES),
    "DROP FUNCTION IF EXISTS sensors_catalog_touch()",
]
# SQLite has row triggers only; one writer at a time, so the extra updates cost no waiting.
SQLITE_FORWARD = [
    "INSERT INTO sensors_catalogstamp (id, stamp) VALUES (1, random())",
    *(
        f"CREATE TRIGGER {table}_catalog_touch_{event.lower()} AFTER {event} ON {table} BEGIN "
        "INSERT INTO sensors_catalogstamp (id, stamp) VALUES (1, random()) "
        "ON CONFLICT (id) DO UPDATE SET stamp = excluded.stamp; END"
        for table in TABLES
        for event in ("INSERT", "UPDATE", "DELETE")
    ),
]
SQLITE_BACKWARD = [
    f"DROP TRIGGER IF EXISTS {table}_catalog_touch_{event.lower()}"
    for table in TABLES
    for event in ("INSERT", "UPDATE", "DELETE")
]


def _run(statements_by_vendor):
    def run(apps, schema_editor):
        for statement in statements_by_vendor.get(schema_editor.connection.vendor, []):
            schema_editor.execute(statement)

    return run


class Migration(migrations.Migration):

    dependencies = [
        ("sensors", "0008_no_flap_settings"),
    ]

    operations = [
        migrations.CreateModel(
            name="CatalogStamp",
            fields=[
                ("id", models.PositiveSmallIntegerField(default=1, primary_key=True, serialize=False)),
                ("stamp", models.BigIntegerField(default=0)),
            ],
        ),
        migrations.RunPython(
            _run({"postgresql": POSTGRES_FORWARD, "sqlite": SQLITE_FORWARD}),
            _run({"postgresql": POSTGRES_BACKWARD, "sqlite": SQLITE_BACKWARD}),
        ),
    ]
