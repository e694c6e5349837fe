"""manage.py seed_plausibility_limits: set stations' plausibility limits from their own history."""

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from sensors.models import Station
from sensors.services import PLAUSIBILITY_HISTORY, plausibility_limits_seed


class Command(BaseCommand):
    help = (
        "Seed each station's plausibility limits (range, step, rate per hour, flatline count) from its "
        "good readings; stations with less than a day of history keep their kind's defaults. "
        "See docs/api.md (quality flags)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--station", action="append", metavar="CODE", help="Only this station (repeatable).")
        parser.add_argument(
            "--days", type=int, default=PLAUSIBILITY_HISTORY.days, help="How many days of history to read."
        )
        parser.add_argument("--dry-run", action="store_true", help="Print what would be set, change nothing.")

    def handle(self, *args, **options):
        if options["days"] < 1:
            raise CommandError("--days must be at least 1.")
        stations = Station.objects.select_related("municipality").order_by("code")
        if options["station"]:
            codes = set(options["station"])
            stations = stations.filter(code__in=codes)
            missing = codes - set(stations.values_list("code", flat=True))
            if missing:
                raise CommandError(f"No station with code {', '.join(sorted(missing))}.")
        since = timezone.now() - timedelta(days=options["days"])
        for station, limits in plausibility_limits_seed(stations=stations, since=since, dry_run=options["dry_run"]):
            if limits is None:
                self.stdout.write(f"{station.code}: too little history, kind defaults kept")
            else:
                shown = ", ".join(f"{name}={value}" for name, value in limits.items())
                self.stdout.write(f"{station.code}: {shown}" + (" (dry run)" if options["dry_run"] else ""))
