"""`manage.py drain_events`: a change-log worker. Run several in production (EVENTS_DRAIN=workers);
each event is claimed by one of them. Ctrl-C / SIGTERM stop it after the current pass."""

import asyncio
import signal

from django.conf import settings
from django.core.management.base import BaseCommand

from events.runner import drain_forever
from events.services import drain_pending


class Command(BaseCommand):
    help = "Hand pending change-log events (alert evaluation, live publishing, NGSI notifications) to their handlers."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="Drain what is pending now, then exit.")
        parser.add_argument(
            "--poll", type=float, default=None,
            help=f"Seconds between polls when idle (default EVENTS_POLL_SECONDS={settings.EVENTS_POLL_SECONDS}).",
        )

    def handle(self, *args, once=False, poll=None, **options):
        if once:
            report = drain_pending()
            self.stdout.write(f"handled {report.handled} event(s), {report.failed} failed")
            return
        asyncio.run(self._run(poll))

    async def _run(self, poll):
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        self.stdout.write("draining change-log events (Ctrl-C stops)")
        await drain_forever(stop=stop, idle_seconds=poll, name="drain_events")
