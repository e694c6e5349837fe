import csv

from django.core.management.base import BaseCommand, CommandError

from tenancy.usage import parse_month, usage_report


class Command(BaseCommand):
    help = "Usage per municipality for one month (stations, readings, alerts, API calls), as CSV."

    def add_arguments(self, parser):
        parser.add_argument("--month", help="YYYY-MM (default: this month, in TIME_ZONE)")

    def handle(self, *args, month=None, **options):
        try:
            first = parse_month(month)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        rows = usage_report(first)
        names = list(rows[0].counts) if rows else []
        writer = csv.writer(self.stdout)
        writer.writerow(["month", "municipality", "code", *names])
        for row in rows:
            writer.writerow([f"{row.month:%Y-%m}", row.municipality.slug, row.municipality.code,
                             *(row.counts[name] for name in names)])
