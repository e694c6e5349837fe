"""Running the drain: a loop on an asyncio event loop, used by `manage.py drain_events` and, in the
embedded default, by the ASGI server process itself (`InProcessDrain`).

Why asyncio: handlers publish to the channel layer with `async_to_sync`, which from a thread started
by `sync_to_async` runs on this loop, so a worker keeps one Redis connection instead of a new event
loop and connection per message, and the embedded in-memory layer is reached on the server's loop.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, close_old_connections, connections

from .loops import first_line, is_service_outage
from .services import DrainReport, add_waker, drain_once, remove_waker

logger = logging.getLogger(__name__)

OUTAGE_BACKOFF_MAX_SECONDS = 30.0
# PostgreSQL's change-log trigger (events/migrations/0002_outbox_notify.py) notifies this channel.
NOTIFY_CHANNEL = "mizumori_outbox"
LISTEN_BACKOFF_MAX_SECONDS = 30.0


def _drain_tick() -> DrainReport:
    close_old_connections()
    try:
        return drain_once()
    finally:
        close_old_connections()


async def drain_forever(*, stop: asyncio.Event, idle_seconds: float | None = None, name: str = "drain") -> None:
    """Drain until `stop` is set: at once again after a busy pass, after `idle_seconds` (or a wake-up
    from a commit in this process) when there was nothing to do, with capped backoff while the
    database or Redis is unreachable (one WARNING when an outage starts, one INFO when it ends)."""
    idle = settings.EVENTS_POLL_SECONDS if idle_seconds is None else idle_seconds
    loop = asyncio.get_running_loop()
    wake = asyncio.Event()

    def waker():
        loop.call_soon_threadsafe(wake.set)

    add_waker(waker)
    listener = _start_listening(wake, stop, name)
    outage_since: float | None = None
    backoff = idle
    try:
        while not stop.is_set():
            wake.clear()
            try:
                report = await sync_to_async(_drain_tick, thread_sensitive=True)()
            except Exception as exc:  # noqa: BLE001 - the loop must outlive any one failure
                if outage_since is None:
                    outage_since = time.monotonic()
                    if is_service_outage(exc):
                        logger.warning(
                            "%s: database or Redis unavailable (%s); retrying with back-off up to %.0f s",
                            name, first_line(exc), OUTAGE_BACKOFF_MAX_SECONDS,
                        )
                    else:
                        logger.exception("%s: drain pass failed; retrying with backoff", name)
                backoff = min(max(backoff * 2, idle), OUTAGE_BACKOFF_MAX_SECONDS)
                await _sleep_or_stop(stop, backoff * (0.5 + random.random() / 2))
                continue
            if outage_since is not None:
                logger.info("%s: database and Redis reachable again after %.1f s", name, time.monotonic() - outage_since)
                outage_since = None
                backoff = idle
            if report.claimed > report.failed:
                continue  # there may be more: go again without waiting
            await _wait_for_any(stop, wake, idle)
    finally:
        remove_waker(waker)
        if listener is not None:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)


def _start_listening(wake: asyncio.Event, stop: asyncio.Event, name: str) -> asyncio.Task | None:
    """On PostgreSQL, a task that sets `wake` whenever a transaction that wrote change-log rows
    commits in any process (LISTEN/NOTIFY), so POST → drain is not bounded by the poll interval. The
    poll stays as the fallback: while the listening connection is down nothing is lost, only later."""
    if connections[DEFAULT_DB_ALIAS].vendor != "postgresql":
        return None
    return asyncio.get_running_loop().create_task(_listen(wake, stop, name))


def _listen_params() -> dict:
    params = connections[DEFAULT_DB_ALIAS].get_connection_params()
    # Django's own adaptation context and cursor class are for its connections, not this one.
    for key in ("context", "cursor_factory", "prepare_threshold", "server_side_binding", "pool", "assume_role"):
        params.pop(key, None)
    return params


async def _listening_connection():
    import psycopg

    conn = await psycopg.AsyncConnection.connect(autocommit=True, **_listen_params())
    try:
        await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
    except BaseException:
        await conn.close()
        raise
    return conn


async def _listen(wake: asyncio.Event, stop: asyncio.Event, name: str) -> None:
    failures = 0
    while not stop.is_set():
        try:
            connecting = asyncio.ensure_future(_listening_connection())
            try:
                conn = await asyncio.shield(connecting)
            except asyncio.CancelledError:
                # Stopped while connecting: close the connection once made rather than leave it to the
                # garbage collector (a test database cannot be dropped while a session is open).
                try:
                    await (await asyncio.wait_for(connecting, timeout=10)).close()
                except Exception:  # noqa: BLE001
                    pass
                raise
            async with conn:
                if failures:
                    logger.info("%s: listening for change-log commits again", name)
                failures = 0
                wake.set()  # what was committed while nobody listened
                async for _ in conn.notifies():
                    wake.set()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - polling carries on; listening is an optimisation
            failures += 1
            if failures == 1:
                logger.warning("%s: cannot listen for change-log commits (%s); polling only meanwhile", name, first_line(exc))
            await _sleep_or_stop(stop, min(LISTEN_BACKOFF_MAX_SECONDS, 0.5 * 2 ** min(failures, 6)))


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except asyncio.TimeoutError:
        pass


async def _wait_for_any(stop: asyncio.Event, wake: asyncio.Event, seconds: float) -> None:
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


class InProcessDrain:
    """ASGI wrapper that runs the drain on the server's own event loop when settings.EVENTS_DRAIN is
    "in-process" (the embedded default). Started by the lifespan startup event where the server
    sends one (uvicorn), else with the first connection (daphne sends no lifespan events)."""

    def __init__(self, app):
        self.app = app
        self._task: asyncio.Task | None = None
        self._stop: asyncio.Event | None = None

    def _start(self) -> None:
        if self._task is None and settings.EVENTS_DRAIN == "in-process":
            self._stop = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(drain_forever(stop=self._stop, name="in-process drain"))
            logger.info("in-process event drain started")

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            return await self._lifespan(receive, send)
        self._start()
        return await self.app(scope, receive, send)

    async def _lifespan(self, receive, send):
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._stop is not None:
                    self._stop.set()
                    if self._task is not None:
                        await asyncio.wait([self._task], timeout=10)
                await send({"type": "lifespan.shutdown.complete"})
                return
