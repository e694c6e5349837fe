"""Train the forecasting models of river gauges and reservoirs: `forecast_train [<code> ...]`.

With `--due`, only gauges whose model is missing, old or behind by enough new readings; with
`--loop`, that every `--interval` seconds (the embedded default's stand-in for Celery beat)."""

import time

from django.core.management.base import BaseCommand, CommandError

from events.loops import run_periodically
from forecasts.selectors import FORECAST_KINDS
from forecasts.services import forecast_train_many, forecasts_retrain_due
from sensors.models import Station


class Command(BaseCommand):
    help = "Train (a new version of) the water-level forecasting model of gauges."

    def add_arguments(self, parser):
        parser.add_argument("codes", nargs="*", help="Station codes (default: every river gauge and reservoir).")
        parser.add_argument("--due", action="store_true", help="Only gauges whose retraining is due.")
        parser.add_argument("--loop", action="store_true", help="Retrain what is due every --interval seconds.")
        parser.add_argument("--interval", type=float, default=600.0)

    def handle(self, *args, codes, due, loop, interval, **options):
        if loop:
            run_periodically(lambda: self._report(forecasts_retrain_due()), interval=interval, loop=True, name="forecast_train")
            return
        if due:
            self._report(forecasts_retrain_due())
            return
        stations = Station.objects.filter(is_active=True, kind__in=FORECAST_KINDS)
        if codes:
            stations = stations.filter(code__in=codes)
            missing = sorted(set(codes) - set(stations.values_list("code", flat=True)))
            if missing:
                raise CommandError(f"No active river gauge or reservoir with code(s): {', '.join(missing)}")
        started = time.monotonic()
        self._report(forecast_train_many(list(stations)), time.monotonic() - started)

    def _report(self, models, seconds=None):
        for model in models:
            skill = {entry["lead_minutes"]: entry for entry in model.skill}
            figures = " ".join(
                f"NSE@{minutes}min={skill[minutes]['nse']:.3f}" for minutes in (60, 180) if skill.get(minutes, {}).get("nse") is not None
            )
            self.stdout.write(f"{model.station.code} v{model.version} {model.method}: {model.note} {figures}".rstrip())
        if seconds is not None:
            self.stdout.write(f"trained {len(models)} model(s) in {seconds:.1f} s")
