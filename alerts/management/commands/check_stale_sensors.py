from django.core.management.base import BaseCommand

from alerts.services import stale_sensors_check
from events.loops import run_periodically


class Command(BaseCommand):
    help = "Open alerts for gauges silent longer than their expected interval × factor; resolve those back."

    def add_arguments(self, parser):
        parser.add_argument("--loop", action="store_true", help="Keep checking every --interval seconds.")
        parser.add_argument("--interval", type=float, default=60.0, help="Seconds between checks (default 60).")

    def handle(self, *args, loop=False, interval=60.0, **options):
        def check():
            events = stale_sensors_check()
            for event in events:
                self.stdout.write(f"alert {event.alert_id} {event.kind} (station {event.alert.station_id})")

        run_periodically(check, interval=interval, loop=loop, name="check_stale_sensors")
