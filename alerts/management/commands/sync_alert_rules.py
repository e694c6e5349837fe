from django.core.management.base import BaseCommand, CommandError

from alerts.services import alert_rules_sync_for_station
from sensors.models import Station


class Command(BaseCommand):
    help = "Create the default alert rules implied by stations' thresholds; retire those no longer implied."

    def add_arguments(self, parser):
        parser.add_argument("codes", nargs="*", help="Station codes (default: every station).")

    def handle(self, *args, codes=(), **options):
        stations = Station.objects.order_by("code")
        if codes:
            stations = stations.filter(code__in=codes)
            missing = set(codes) - set(stations.values_list("code", flat=True))
            if missing:
                raise CommandError(f"Unknown station(s): {', '.join(sorted(missing))}")
        for station in stations:
            rules = alert_rules_sync_for_station(station)
            enabled = sum(rule.is_enabled for rule in rules)
            self.stdout.write(f"{station.code}: {enabled} default rule(s) enabled, {len(rules) - enabled} disabled")
