"""Tide gauges (潮位): the `tide` station kind and the station's reference datum (T.P. ...).

On SQLite adding a NOT NULL column rebuilds the station table, which drops its catalog-stamp
triggers (0009); they are created again here, or new and deactivated stations would go unseen by
ingestion's cached catalog."""

import importlib

from django.db import migrations, models

stamp = importlib.import_module("sensors.migrations.0009_perf_catalog_stamp")

STATION_TABLE = "sensors_station"
SQLITE_STATION_TRIGGERS = [
    statement for statement in stamp.SQLITE_FORWARD if statement.startswith(f"CREATE TRIGGER {STATION_TABLE}_")
]
SQLITE_STATION_TRIGGERS_DROP = [
    statement for statement in stamp.SQLITE_BACKWARD if f" {STATION_TABLE}_" in statement
]


def station_triggers_again(apps, schema_editor):
    if schema_editor.connection.vendor != "sqlite":
        return  # PostgreSQL alters the table in place; its statement triggers stay
    for statement in [*SQLITE_STATION_TRIGGERS_DROP, *SQLITE_STATION_TRIGGERS]:
        schema_editor.execute(statement)


class Migration(migrations.Migration):

    dependencies = [
        ("sensors", "0009_perf_catalog_stamp"),
    ]

    operations = [
        migrations.AddField(
            model_name="station",
            name="datum",
            field=models.CharField(
                blank=True,
                help_text="What a level of 0 means: the reference datum of a stage or tide reading, e.g. "
                "'T.P.' (東京湾平均海面) or 'D.L.'. Empty: the gauge's own zero.",
                max_length=40,
            ),
        ),
        migrations.AlterField(
            model_name="station",
            name="kind",
            field=models.CharField(
                choices=[
                    ("river", "river water level"),
                    ("rain", "rain gauge"),
                    ("reservoir", "reservoir / dam / irrigation pond"),
                    ("tide", "tide gauge (潮位)"),
                ],
                max_length=10,
            ),
        ),
        migrations.AlterField(
            model_name="station",
            name="unit",
            field=models.CharField(
                help_text="m (river stage, tide level), mm (rainfall per reading), % (storage rate)", max_length=20
            ),
        ),
        migrations.RunPython(station_triggers_again, migrations.RunPython.noop),
    ]
