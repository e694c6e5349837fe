from django.core.management.base import BaseCommand, CommandError

from events.loops import run_periodically
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

        def flush():
            written = api_usage_flush()
            if written or not loop:
                self.stdout.write(f"{written} API calls written")

        if not loop:
            flush()
            return
        # The shared loop: survives database and Redis outages, stops cleanly on SIGTERM / Ctrl-C.
        run_periodically(flush, interval=interval, loop=True, name="flush_api_usage")
