"""Joins the release-notice deliveries and the plausibility-limits branches (no schema change)."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("alerts", "0009_interop2_release_deliveries"),
        ("alerts", "0009_trust2_plausibility"),
    ]

    operations = []
