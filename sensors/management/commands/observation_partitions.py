"""manage.py observation_partitions: create the coming months' observation partitions, detach old ones."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from sensors import partitions


class Command(BaseCommand):
    help = (
        "PostgreSQL: make sure this month and the next N months have observation partitions (moving any of "
        "their rows out of the DEFAULT partition), and optionally detach (never drop) the month partitions "
        "before a cutoff so they can be archived. Does nothing on SQLite. See docs/operations.md."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--ahead", type=int, default=None, metavar="N",
            help=f"Months after the current one (default OBSERVATION_PARTITIONS_AHEAD={settings.OBSERVATION_PARTITIONS_AHEAD}).",
        )
        parser.add_argument(
            "--since", metavar="YYYY-MM",
            help="Also create every month's partition from this month on (moving its rows out of DEFAULT).",
        )
        parser.add_argument(
            "--detach-before", metavar="YYYY-MM",
            help="Detach every month partition older than this month (the month itself stays attached).",
        )

    def handle(self, *args, **options):
        ahead = settings.OBSERVATION_PARTITIONS_AHEAD if options["ahead"] is None else options["ahead"]
        if ahead < 0:
            raise CommandError(f"--ahead must be 0 or more, not {ahead}")
        since, cutoff = self._month(options, "since"), self._month(options, "detach_before")
        if since and cutoff and since < cutoff:
            raise CommandError(
                f"--since {since:%Y-%m} is before --detach-before {cutoff:%Y-%m}: that would detach months and "
                "create them again"
            )
        try:
            # Detach first: a refused cutoff then leaves everything as it was.
            detached = partitions.partitions_detach_before(cutoff).detached if cutoff is not None else []
            report = partitions.partitions_ensure_ahead(months_ahead=ahead, since=since)
        except partitions.PartitionError as exc:
            raise CommandError(str(exc)) from None
        if report.skipped:
            self.stdout.write(report.skipped)
            return
        report.detached = detached

        for name in report.created:
            moved = report.moved.get(name)
            self.stdout.write(f"created {name}" + (f" (moved {moved} rows from the DEFAULT partition)" if moved else ""))
        if not report.created:
            self.stdout.write(f"partitions up to {ahead} months ahead already exist" + (f", and since {since:%Y-%m}" if since else ""))
        for name in report.detached:
            self.stdout.write(f"detached {name} (now a standalone table: archive it, then drop it)")
        if cutoff is not None and not report.detached:
            self.stdout.write(f"no attached month partition before {cutoff:%Y-%m}")

    @staticmethod
    def _month(options, name):
        if options[name] is None:
            return None
        try:
            return partitions.parse_month(options[name])
        except ValueError as exc:
            raise CommandError(f"--{name.replace('_', '-')}: {exc}") from None
