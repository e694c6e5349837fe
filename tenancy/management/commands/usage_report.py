from django.core.management.base import BaseCommand, CommandError

from tenancy.usage import parse_month, usage_csv, usage_report


class Command(BaseCommand):
    help = "Usage per municipality for one month (stations, readings, alerts, API calls), as CSV."

    def add_arguments(self, parser):
        parser.add_argument("--month", help="YYYY-MM (default: this month, in TIME_ZONE)")

    def handle(self, *args, month=None, **options):
        try:
            first = parse_month(month)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        usage_csv(usage_report(first), self.stdout)
