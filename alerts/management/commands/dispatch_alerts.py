from django.core.management.base import BaseCommand

from alerts.services import default_worker_id, deliveries_dispatch
from events.loops import run_periodically


class Command(BaseCommand):
    help = "Send due alert deliveries (e-mail, webhooks), retrying failed ones. Several may run at once."

    def add_arguments(self, parser):
        parser.add_argument("--loop", action="store_true", help="Keep dispatching every --interval seconds.")
        parser.add_argument("--interval", type=float, default=5.0, help="Seconds between rounds (default 5).")
        parser.add_argument("--worker-id", default="", help="Name recorded on claimed deliveries.")

    def handle(self, *args, loop=False, interval=5.0, worker_id="", **options):
        worker_id = worker_id or default_worker_id()

        def dispatch():
            # Drain what is due before sleeping, so a burst of alerts is not paced by the interval.
            while True:
                report = deliveries_dispatch(worker_id=worker_id)
                if report.claimed:
                    self.stdout.write(
                        f"claimed {report.claimed}: sent {report.sent}, retrying {report.retrying}, failed {report.failed}"
                    )
                if report.claimed == 0:
                    return

        run_periodically(dispatch, interval=interval, loop=loop, name="dispatch_alerts")
