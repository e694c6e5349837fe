import signal
import threading
from contextlib import contextmanager

from django.core.management.base import BaseCommand, CommandError

from dashboard.demo.storm import StormError, storm_simulate


class Command(BaseCommand):
    help = (
        "Feed the demo storm's readings through the ingestion service, each stamped with the time it "
        "represents: first a backfill up to now (from where the seeded history or earlier runs end), "
        "then one reading per station every 10 minutes of real time. With --api-url they go through "
        "the HTTP API of a running server, which is what keeps the live map moving in the embedded "
        "default (in-process channel layer)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--steps",
            type=int,
            default=None,
            help="readings per station after the backfill, 10 minutes apart (default: until the current storm "
            "has passed; 0: backfill only)",
        )
        parser.add_argument(
            "--loop", action="store_true", help="keep going after the current storm, storm after storm, until Ctrl-C"
        )
        parser.add_argument(
            "--api-url",
            default=None,
            help="base URL of a running Mizumori (e.g. http://127.0.0.1:8000): POST to /api/v1/observations "
            "with a temporary token per town instead of ingesting in-process",
        )

    def handle(self, *args, steps, loop, api_url, **options):
        try:
            with _terminate_as_interrupt():
                storm_simulate(
                    steps=steps,
                    loop=loop,
                    api_url=api_url,
                    out=self.stdout.write,
                    warn=self.stderr.write,
                )
        except StormError as error:
            raise CommandError(str(error)) from None
        except KeyboardInterrupt:
            # The simulator has already revoked its tokens on the way out.
            self.stdout.write("Storm stopped.")


@contextmanager
def _terminate_as_interrupt():
    """Treat SIGTERM like Ctrl-C while the storm runs.

    bin/demo stops the simulator with SIGTERM (a background job ignores Ctrl-C); by default that ends
    Python without running `finally`, which would leave the simulator's ingest tokens active.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
