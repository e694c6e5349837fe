from django.core.management.base import BaseCommand

from events.loops import run_periodically
from releases.services import releases_expired_end


class Command(BaseCommand):
    help = "Record the end of dam release notices whose ends_at has passed, so the downstream HQs are told."

    def add_arguments(self, parser):
        parser.add_argument("--loop", action="store_true", help="Keep checking every --interval seconds.")
        parser.add_argument("--interval", type=float, default=60.0, help="Seconds between checks (default 60).")

    def handle(self, *args, loop=False, interval=60.0, **options):
        def check():
            for pk in releases_expired_end():
                self.stdout.write(f"release {pk} ended at its end time")

        if not loop:
            return check()
        run_periodically(check, interval=interval, loop=True, name="end_expired_releases")
