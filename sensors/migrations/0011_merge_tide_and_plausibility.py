"""Joins the tide-kind and the plausibility-limits branches.

Both add columns to the station table; on SQLite each addition rebuilds the table and drops the
catalog-stamp triggers of 0009. 0010_interop2_tide_kind restores them after its own rebuild, but the
two 0010s may run in either order, so they are restored once more here, after both."""

import importlib

from django.db import migrations

tide = importlib.import_module("sensors.migrations.0010_interop2_tide_kind")


class Migration(migrations.Migration):

    dependencies = [
        ("sensors", "0010_interop2_tide_kind"),
        ("sensors", "0010_trust2_plausibility"),
    ]

    operations = [
        migrations.RunPython(tide.station_triggers_again, migrations.RunPython.noop),
    ]
