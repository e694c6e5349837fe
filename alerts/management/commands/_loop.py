"""Run a periodic job in the foreground: the embedded default has no Celery beat."""

from __future__ import annotations

import signal
import threading
import time
from typing import Callable

from django.db import close_old_connections


def run_periodically(job: Callable[[], None], *, interval: float, loop: bool) -> None:
    """Run `job` once, or every `interval` seconds until SIGINT/SIGTERM when `loop`."""
    stopping = threading.Event()
    previous = {}
    if loop and threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, lambda *_: stopping.set())
    try:
        while True:
            close_old_connections()
            started = time.monotonic()
            job()
            if not loop:
                return
            # Wait in one call that a stop signal cuts short, so the loop ends promptly.
            if stopping.wait(max(0.0, interval - (time.monotonic() - started))):
                return
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        close_old_connections()
