import signal
import threading

from django.core.management.base import BaseCommand, CommandError
from django.db import close_old_connections

from tenancy.api_usage import api_usage_counter, api_usage_flush


class Command(BaseCommand):
    help = (
        "Write the API calls counted in Redis to the monthly usage table (Celery beat does the same "
        "every API_USAGE_FLUSH_SECONDS). Without REDIS_URL each serving process flushes its own counts."
    )

    def add_arguments(self, parser):
        parser.add_argument("--loop", action="store_true", help="Keep flushing every --interval seconds.")
        parser.add_argument("--interval", type=float, default=60.0, help="Seconds between flushes (default 60).")

    def handle(self, *args, loop=False, interval=60.0, **options):
        if not interval > 0:
            raise CommandError("--interval must be a positive number of seconds")
        if api_usage_counter().in_process:
            self.stdout.write("No REDIS_URL: API calls are counted in the serving process, which flushes them itself.")
            return
        stopping = threading.Event()
        if loop:
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, lambda *_: stopping.set())
        while True:
            written = api_usage_flush()
            if written or not loop:
                self.stdout.write(f"{written} API calls written")
            if not loop or stopping.wait(interval):
                return
            # A long-lived loop must not keep a connection the database has since dropped.
            close_old_connections()
