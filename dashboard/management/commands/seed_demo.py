from collections import Counter

from django.core.management.base import BaseCommand

from dashboard.demo import region
from dashboard.demo.seed import DEFAULT_PASSWORD, demo_seed


class Command(BaseCommand):
    help = (
        "Create or refresh the FICTIONAL demo region (three towns on the Kawasemi basin, stations, "
        "thresholds, users) with 24 hours of calm-weather history. Safe to run again."
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
        self.stdout.write(
            f"History: {summary.accepted} reading(s) accepted, {summary.duplicates} duplicate(s), "
            f"{len(summary.rejected)} rejected."
        )
        for rejection in summary.rejected[:5]:
            self.stderr.write(f"  rejected #{rejection['index']}: {rejection['error']}")
        self.stdout.write(f"Logins (password: {password}):")
        for login in summary.logins:
            where = f"{login.role} of {login.town}" if login.town else "superuser, /admin/"
            self.stdout.write(f"  {login.username:<24} {where}")
