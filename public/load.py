"""How hard the application is working, and what that means for the public page.

The public page has two presentations: the map, and a minimal text list (no map library) for when
the application is saturated. And two ways to stay live: a websocket, or conditional polling of the
snapshot document, which a caching proxy answers without the application. Both choices are made
here, once per snapshot build (dashboard/public snapshot document, `mode` and `live`), from what the
server can measure cheaply: change-log lag (events.selectors.event_lag), the Celery queue depth and
the machine's load average.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from django.conf import settings
from functools import cache as once

from django.core.cache import DEFAULT_CACHE_ALIAS, caches
from django.db import DatabaseError

from events.selectors import event_lag

logger = logging.getLogger(__name__)

MAP = "map"
MINIMAL = "minimal"
POLL = "poll"
WEBSOCKET = "websocket"
# Anonymous websocket connections open across the deployment (a cache counter: Redis in
# production, this process in the embedded default).
PUBLIC_SOCKETS_KEY = "public:websockets"


@once
def socket_counter():
    """The cache the public socket count is kept in: one client for the whole process.
    `django.core.cache.cache` is one per thread and, in async code, one per task; every websocket
    connection runs in a task of its own, so counting through it opened a Redis connection per
    browser (1,000 readers: 1,000 Redis connections per ASGI process, each with its buffers)."""
    return caches.create_connection(DEFAULT_CACHE_ALIAS)


@dataclass(frozen=True)
class Load:
    lag_seconds: float | None  # None: the database did not answer
    queue_depth: int | None  # None: no broker to ask (embedded default)
    cpu_load: float  # 1-minute load average per core
    public_sockets: int

    @property
    def saturated_by(self) -> list[str]:
        """What is over its limit, in words for the page's notice and the logs."""
        reasons = []
        if self.lag_seconds is None or self.lag_seconds > settings.PUBLIC_MINIMAL_LAG_SECONDS:
            reasons.append("lag")
        if self.queue_depth is not None and self.queue_depth > settings.PUBLIC_MINIMAL_QUEUE_DEPTH:
            reasons.append("queue")
        if self.cpu_load > settings.PUBLIC_MINIMAL_CPU_LOAD:
            reasons.append("cpu")
        return reasons


def celery_queue_depth() -> int | None:
    if not settings.REDIS_URL or settings.CELERY_TASK_ALWAYS_EAGER:
        return None
    import redis

    try:
        client = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=1)
        return int(client.llen("celery"))
    except redis.RedisError:
        return None


def current_load() -> Load:
    try:
        lag = event_lag().lag_seconds
    except DatabaseError:
        lag = None
    try:
        cpu = os.getloadavg()[0] / (os.cpu_count() or 1)
    except OSError:
        cpu = 0.0
    return Load(
        lag_seconds=lag,
        queue_depth=celery_queue_depth(),
        cpu_load=cpu,
        public_sockets=int(socket_counter().get(PUBLIC_SOCKETS_KEY) or 0),
    )


def page_mode(load: Load) -> str:
    """`map`, or `minimal` when the operator says so or the application is saturated."""
    forced = settings.PUBLIC_PAGE_MODE
    if forced in {MAP, MINIMAL}:
        return forced
    return MINIMAL if load.saturated_by else MAP


def live_transport(load: Load, mode: str) -> str:
    """`websocket` while the operator allows it and capacity lasts, else `poll` (the proxy absorbs it)."""
    forced = settings.PUBLIC_LIVE_TRANSPORT
    if forced in {POLL, WEBSOCKET}:
        return forced
    if mode == MINIMAL or load.public_sockets >= settings.PUBLIC_WEBSOCKET_READERS_MAX:
        return POLL
    return WEBSOCKET


def public_socket_opened() -> None:
    counter = socket_counter()
    try:
        counter.add(PUBLIC_SOCKETS_KEY, 0, timeout=None)
        counter.incr(PUBLIC_SOCKETS_KEY)
    except ValueError:
        pass


def public_socket_closed() -> None:
    counter = socket_counter()
    try:
        if int(counter.get(PUBLIC_SOCKETS_KEY) or 0) > 0:
            counter.decr(PUBLIC_SOCKETS_KEY)
    except ValueError:
        pass
