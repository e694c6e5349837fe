from collections import Counter

from django.core.management.base import BaseCommand
from django.utils import timezone

from dashboard.demo import region
from dashboard.demo.seed import DEFAULT_PASSWORD, demo_seed


class Command(BaseCommand):
    help = (
        "Create or refresh the FICTIONAL demo region (three towns on the Kawasemi basin, stations, "
        "thresholds, users) and rewrite its stations' readings: 60 days of history with past storms, "
        "ending where the current storm begins (for simulate_storm). Safe to run again."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--password",
            default=DEFAULT_PASSWORD,
            help=f"password for every demo user, also reset on existing ones (default: {DEFAULT_PASSWORD})",
        )

    def handle(self, *args, password, **options):
        summary = demo_seed(password=password)
        kinds = Counter(station.kind for station in summary.stations.values())
        self.stdout.write(f"{region.BASIN_NAME_EN} — {region.FICTIONAL_NOTE}")
        self.stdout.write(
            f"Towns: {len(summary.towns)} ({', '.join(town.slug for town in summary.towns)}); "
            f"stations: {len(summary.stations)} ("
            + ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items()))
            + f"); users: {len(summary.logins)}."
        )
        weather = summary.weather
        self.stdout.write(
            f"History: {summary.written} reading(s) written ({summary.replaced} earlier demo reading(s) replaced): "
            f"{len(weather.past_storms)} past storms from {timezone.localtime(weather.history_start):%Y-%m-%d}; "
            f"the current storm began at {timezone.localtime(weather.anchor):%Y-%m-%d %H:%M} "
            "(run simulate_storm to bring it up to now)."
        )
        self.stdout.write(f"Logins (password: {password}):")
        for login in summary.logins:
            where = f"{login.role} of {login.town}" if login.town else "superuser, /admin/"
            self.stdout.write(f"  {login.username:<24} {where}")
