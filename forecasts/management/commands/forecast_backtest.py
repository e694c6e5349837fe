"""`forecast_backtest <code> [--since T --until T] [--json]`: replay a gauge's history with no
look-ahead and score the model, persistence and the linear trend side by side."""

import json
from datetime import datetime

from django.core.management.base import BaseCommand, CommandError

from forecasts.backtest import table_steps
from forecasts.selectors import FORECAST_KINDS
from forecasts.services import station_backtest
from sensors.models import Station


def _time(name: str, raw: str | None) -> datetime | None:
    if raw is None:
        return None
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        raise CommandError(f"--{name}: {raw[:40]!r} is not an ISO 8601 time.") from None
    if parsed.tzinfo is None:
        raise CommandError(f"--{name}: needs a UTC offset, e.g. 2026-11-22T09:00:00+09:00.")
    return parsed


def _number(value, digits=3):
    return "—" if value is None else f"{value:.{digits}f}"


class Command(BaseCommand):
    help = "Backtest a gauge's forecast against persistence and the linear trend (no look-ahead)."

    def add_arguments(self, parser):
        parser.add_argument("code")
        parser.add_argument("--since", help="ISO 8601 with offset; the model trains only on readings before it.")
        parser.add_argument("--until", help="ISO 8601 with offset.")
        parser.add_argument("--json", action="store_true", help="Print one JSON object.")

    def handle(self, *args, code, since, until, json: bool, **options):
        try:
            station = Station.objects.get(code=code, kind__in=FORECAST_KINDS)
        except Station.DoesNotExist:
            raise CommandError(f"No river gauge or reservoir with code {code[:60]!r}.") from None
        try:
            report = station_backtest(station, since=_time("since", since), until=_time("until", until))
        except ValueError as error:
            raise CommandError(str(error)) from None
        if json:
            self.stdout.write(_dumps(report))
            return
        self.stdout.write(f"{report['station']}: {report['since']} – {report['until']}, {report['events']} high-water event(s)")
        self.stdout.write("lead   model NSE/RMSE    persistence NSE/RMSE   trend NSE/RMSE   model peak err / timing")
        for step in table_steps(report):
            m, p, t = step["model"], step["persistence"], step["trend"]
            self.stdout.write(
                f"{step['lead_minutes']:>4}  {_number(m['nse'])}/{_number(m['rmse'])}   "
                f"{_number(p['nse'])}/{_number(p['rmse'])}   {_number(t['nse'])}/{_number(t['rmse'])}   "
                f"{_number(m['peak_error_m'], 2)} m / {_number(m['peak_timing_error_minutes'], 0)} min"
            )
        rule = report["warning_rule"]
        self.stdout.write(
            f"warnings: each of the last {rule['persistence']} forecasts gives P >= {rule['min_probability']} of reaching "
            f"the threshold within {rule['within_minutes']} min; judged against crossings within {rule['judged_within_minutes']} min"
        )
        for threshold in report["thresholds"]:
            parts = [
                f"{method} {s['hits']}/{s['misses']}/{s['false_alarms']} ({s['detected_30_min_ahead']} >= 30 min ahead) "
                f"lead {_number(s['median_lead_minutes'], 0)} min"
                for method, s in ((name, threshold[name]) for name in ("model", "persistence", "trend"))
            ]
            self.stdout.write(f"{threshold['label_en']} ({threshold['value']}): hits/misses/false alarms: " + "; ".join(parts))


def _dumps(report: dict) -> str:
    return json.dumps(report, ensure_ascii=False)
