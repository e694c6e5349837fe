"""Whether live messages can reach this ASGI process's browsers right now.

One monitor per event loop (per ASGI process) checks, every settings.LIVE_HEALTH_SECONDS:
- Redis answers (when the channel layer is Redis): otherwise nothing published reaches this process;
- the database answers: the publisher, snapshots and replay all read it;
- the live publisher is not retrying (its change-log rows have no failed attempt pending): it
  could not hand messages to the channel layer, so browsers are behind.

Connected LiveConsumers subscribe to changes and tell their browsers ("degraded", "restored"), so a
frozen map is never mistaken for a calm one. A check is a Redis PING and one indexed query per
process, whatever the number of connections.
"""

from __future__ import annotations

import asyncio
import logging
import weakref

from channels.db import database_sync_to_async
from django.conf import settings

from events.loops import first_line
from events.selectors import handler_retrying

from .live import LIVE_HANDLER

logger = logging.getLogger(__name__)

# Why live messages are late, as the browser is told.
REDIS, DATABASE, PUBLISHER = "redis", "database", "publisher"


class LiveHealth:
    def __init__(self):
        self.reason: str | None = None
        self._listeners: set[asyncio.Queue] = set()
        self._task: asyncio.Task | None = None
        self._redis = None
        self._last_error = ""

    def attach(self, queue: asyncio.Queue) -> None:
        """`queue` receives {"type": "live.health", "degraded": reason-or-None} on every change."""
        self._listeners.add(queue)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    def detach(self, queue: asyncio.Queue) -> None:
        self._listeners.discard(queue)
        if not self._listeners and self._task is not None:
            self._task.cancel()
            self._task = None

    async def check(self) -> str | None:
        if settings.REDIS_URL:
            try:
                if self._redis is None:
                    import redis.asyncio

                    self._redis = redis.asyncio.Redis.from_url(
                        settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2
                    )
                await self._redis.ping()
            except Exception as exc:  # noqa: BLE001 - any failure means messages cannot arrive
                self._last_error = first_line(exc)
                return REDIS
        try:
            retrying = await database_sync_to_async(handler_retrying)(LIVE_HANDLER)
        except Exception as exc:  # noqa: BLE001
            self._last_error = first_line(exc)
            return DATABASE
        return PUBLISHER if retrying else None

    async def check_and_notify(self) -> str | None:
        reason = await self.check()
        if reason != self.reason:
            if reason is None:
                logger.info("live messages reach this process again (was: %s)", self.reason)
            else:
                logger.warning(
                    "live messages cannot reach this process's browsers (%s: %s); they are told 'degraded'",
                    reason, self._last_error if reason != PUBLISHER else "its change-log events are being retried",
                )
            self.reason = reason
            for queue in list(self._listeners):
                queue.put_nowait({"type": "live.health", "degraded": reason})
        return reason

    async def _run(self) -> None:
        while True:
            try:
                await self.check_and_notify()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the monitor must outlive any one failure
                logger.exception("live health check failed")
            await asyncio.sleep(settings.LIVE_HEALTH_SECONDS)


_monitors: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LiveHealth]" = weakref.WeakKeyDictionary()


def live_health() -> LiveHealth:
    """The monitor of the running event loop (the ASGI process's)."""
    loop = asyncio.get_running_loop()
    monitor = _monitors.get(loop)
    if monitor is None:
        monitor = _monitors[loop] = LiveHealth()
    return monitor
