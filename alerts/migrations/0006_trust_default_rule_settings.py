"""Default level rules stop flapping: existing default rules still on the old settings (one reading
raises, nothing holds a level) take the new defaults of alerts.rules.DEFAULT_LEVEL_SETTINGS. Rules an
operator changed are left alone. The rivers' default rate-of-rise rule is created by the rule sync."""

import datetime

from django.db import migrations

OLD = {"min_readings": 1, "min_duration": datetime.timedelta(0), "clear_hold": datetime.timedelta(0), "immediate_level": None}
NEW = {"min_readings": 2, "min_duration": datetime.timedelta(0), "clear_hold": datetime.timedelta(minutes=30), "immediate_level": 4}


def forward(apps, schema_editor):
    AlertRule = apps.get_model("alerts", "AlertRule")
    AlertRule.objects.filter(is_default=True, kind__in=["threshold", "rain_accumulation"], **OLD).update(**NEW)


def backward(apps, schema_editor):
    AlertRule = apps.get_model("alerts", "AlertRule")
    AlertRule.objects.filter(is_default=True, kind__in=["threshold", "rain_accumulation"], **NEW).update(**OLD)


class Migration(migrations.Migration):
    dependencies = [("alerts", "0005_no_flap_settings")]

    operations = [migrations.RunPython(forward, backward)]
