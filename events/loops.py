"""Run a job every few seconds in the foreground, surviving database and Redis outages.

Used by the long-running commands (`dispatch_alerts --loop`, `check_stale_sensors --loop`, the
change-log drain workers). A database restart or a Redis stop is an outage, not a crash: the loop
closes its connections, backs off and says so once; it logs one WARNING line when the outage starts
and one INFO line when it ends, never a traceback per tick. Any other exception in the job is a bug:
its traceback is logged the first time it occurs and the loop carries on.
"""

from __future__ import annotations

import logging
import random
import signal
import threading
import time
from collections.abc import Callable

import redis.exceptions
from django.db import (
    InterfaceError,
    OperationalError,
    close_old_connections,
    connections,
)

logger = logging.getLogger(__name__)

# Errors that mean "a service we depend on is unreachable or restarting", not "our code is wrong".
# Django wraps the drivers' errors (psycopg, sqlite3) in its own OperationalError/InterfaceError;
# builtin ConnectionError covers refused and reset sockets of the other clients.
SERVICE_OUTAGE_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    ConnectionError,
)

# Distinct unexpected errors whose traceback was logged, per loop; beyond this many, the oldest is
# forgotten (a job failing with ever-new messages must not grow the process without bound).
REMEMBERED_ERRORS = 100


def is_service_outage(error: BaseException | None) -> bool:
    """True when `error`, or an error it was raised from or while handling, is an outage: Django's
    session store, for one, re-raises a failed save as SessionInterrupted."""
    for _ in range(10):
        if error is None:
            return False
        if isinstance(error, SERVICE_OUTAGE_ERRORS):
            return True
        error = error.__cause__ or error.__context__
    return False


def first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}"[:300] if lines else type(error).__name__


def backoff_delay(failures: int, *, initial: float, cap: float, jitter: Callable[[], float] = random.random) -> float:
    """Exponential back-off after `failures` consecutive failures (1, 2, ...), capped, with jitter
    between half and the whole delay so that many workers do not retry in step."""
    delay = min(cap, initial * 2 ** max(0, failures - 1))
    return delay / 2 + jitter() * delay / 2


def run_periodically(
    job: Callable[[], object],
    *,
    interval: float,
    loop: bool,
    name: str = "",
    stop: threading.Event | None = None,
    sleep: Callable[[float], object] | None = None,
    clock: Callable[[], float] = time.monotonic,
    backoff_initial: float = 1.0,
    backoff_max: float = 60.0,
    jitter: Callable[[], float] = random.random,
) -> None:
    """Run `job` once, or, when `loop`, every `interval` seconds until SIGTERM/SIGINT (in the main
    thread) or until `stop` is set.

    Run once (`loop=False`), any exception propagates: a one-shot command must fail visibly. Looping,
    an outage (SERVICE_OUTAGE_ERRORS) closes the Django connections and retries after an exponential
    back-off (`backoff_initial` doubling up to `backoff_max`, with jitter); other exceptions are
    logged and the next tick comes after `interval` as usual. `sleep` (default: waiting on `stop`) and
    `clock` are there for tests.
    """
    name = name or getattr(job, "__qualname__", "job")
    stop = stop or threading.Event()
    sleep = sleep or stop.wait
    previous_handlers = {}
    if loop and threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous_handlers[signum] = signal.signal(signum, lambda *_: stop.set())
    outage_started_at: float | None = None
    failures = 0
    errors_logged: dict[tuple[str, str], int] = {}
    try:
        while not stop.is_set():
            started = clock()
            try:
                close_old_connections()
                job()
            except Exception as error:
                if not loop:
                    raise
                if is_service_outage(error):
                    failures += 1
                    if outage_started_at is None:
                        outage_started_at = started
                        logger.warning(
                            "%s: database or Redis unavailable (%s); retrying with back-off up to %g s",
                            name, first_line(error), backoff_max,
                        )
                    # A connection that saw the server go away is unusable; the next tick reconnects.
                    connections.close_all()
                    sleep(backoff_delay(failures, initial=backoff_initial, cap=backoff_max, jitter=jitter))
                    continue
                _log_unexpected(name, error, errors_logged)
            else:
                if not loop:
                    return
                if outage_started_at is not None:
                    logger.info(
                        "%s: database and Redis reachable again after %.1f s (%d failed attempts)",
                        name, clock() - outage_started_at, failures,
                    )
                    outage_started_at, failures = None, 0
            # Wait in one call that a stop signal cuts short, so the loop ends promptly.
            sleep(max(0.0, interval - (clock() - started)))
    finally:
        for signum, handler in previous_handlers.items():
            signal.signal(signum, handler)
        close_old_connections()


def _log_unexpected(name: str, error: Exception, errors_logged: dict[tuple[str, str], int]) -> None:
    key = (type(error).__qualname__, first_line(error))
    seen = errors_logged.get(key, 0)
    errors_logged[key] = seen + 1
    if seen:
        logger.error("%s: failed again (%d times so far): %s", name, seen + 1, first_line(error))
        return
    if len(errors_logged) > REMEMBERED_ERRORS:
        errors_logged.pop(next(iter(errors_logged)))
    logger.exception("%s: unexpected error; the loop goes on", name)
