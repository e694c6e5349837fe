"""The skill of a stored model version has one home, ForecastModel.skill: the copy that versions
stored before it kept in `params` is dropped (the two were written from the same list). The
versions themselves are of features version 4 and are retrained by `forecasts_retrain_due` (the
periodic task) or `manage.py forecast_train`; until then the labelled trend fallback serves them."""

from django.db import migrations


def drop_skill_from_params(apps, schema_editor):
    ForecastModel = apps.get_model("forecasts", "ForecastModel")
    changed = []
    for model in ForecastModel.objects.exclude(params={}).only("pk", "params", "skill").iterator(chunk_size=200):
        params = dict(model.params)
        if "skill" not in params and "skill" not in (params.get("with_forecast_rain") or {}):
            continue
        if not model.skill and params.get("skill"):
            model.skill = params["skill"]
        params.pop("skill", None)
        if params.get("with_forecast_rain"):
            params["with_forecast_rain"] = {k: v for k, v in params["with_forecast_rain"].items() if k != "skill"}
        model.params = params
        changed.append(model)
    ForecastModel.objects.bulk_update(changed, ["params", "skill"], batch_size=200)


class Migration(migrations.Migration):
    dependencies = [("forecasts", "0004_prealert_defaults_from_the_warning_rule")]

    operations = [migrations.RunPython(drop_skill_from_params, migrations.RunPython.noop)]
