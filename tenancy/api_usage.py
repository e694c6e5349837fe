"""API calls per town, counted off the request path and flushed to `ApiUsage` periodically.

A call costs one Redis HINCRBY (when REDIS_URL is set: every process counts into the same hashes)
or one dict increment in this process (the embedded default). Counts are kept per town per local
day, so a call at 23:59 on the last day of a month lands in that month however late the flush.

Flushing claims what was counted (RENAME of a day's hash to a claim key in Redis, a swap of the
dict in memory), adds it to the database in one transaction, then drops the claim. Two flushes
never see the same counts. If the database write fails, Redis claims stay and are picked up by a
later flush once `CLAIM_ABANDONED_AFTER` has passed (in memory they are put back at once). A
flusher killed between the commit and dropping its claim counts that claim twice: at most one
interval's calls, never a loss.

Who flushes: Celery beat (`tenancy.flush_api_usage`) or `manage.py flush_api_usage --loop` with
Redis; in the embedded default the serving process itself, from a daemon thread started by its
first counted call (every API_USAGE_FLUSH_SECONDS) and once more at exit.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import uuid
from collections import Counter
from datetime import date

from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

logger = logging.getLogger(__name__)

CLAIM_ABANDONED_AFTER = 600  # seconds; far longer than one flush takes

Counts = dict[tuple[int, date], int]  # (municipality id, local day) -> calls


class MemoryCounter:
    """Counts in this process. Only the process that counted can flush them."""

    in_process = True

    def __init__(self):
        self._lock = threading.Lock()
        self._counts: Counter = Counter()

    def count(self, municipality_id: int, day: date) -> None:
        with self._lock:
            self._counts[(municipality_id, day)] += 1

    def claim(self) -> tuple[Counts, object]:
        with self._lock:
            taken, self._counts = self._counts, Counter()
        return dict(taken), taken

    def release(self, claim) -> None:
        """The claimed counts are in the database."""

    def give_back(self, claim) -> None:
        with self._lock:
            self._counts.update(claim)

    def discard_all(self) -> None:
        with self._lock:
            self._counts.clear()


class RedisCounter:
    """Counts in Redis hashes `<prefix>:api-usage:<day>` (field: municipality id), shared by all processes."""

    in_process = False

    def __init__(self, url: str, prefix: str):
        import redis

        self.redis = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self.errors = (redis.RedisError,)
        self.counting = f"{prefix}:api-usage:"
        self.claimed = f"{prefix}:api-usage-claimed:"

    def count(self, municipality_id: int, day: date) -> None:
        try:
            self.redis.hincrby(f"{self.counting}{day.isoformat()}", str(municipality_id), 1)
        except self.errors as exc:
            # The call itself was served; losing its count beats failing it.
            logger.warning("API usage not counted (Redis: %s)", exc)

    def claim(self) -> tuple[Counts, list[bytes]]:
        now = int(time.time())
        keys = []
        for key in self.redis.scan_iter(match=f"{self.counting}*", count=100):
            day = key.decode().rsplit(":", 1)[1]
            keys.append(self._rename(key, f"{self.claimed}{day}:{now}:{uuid.uuid4().hex}"))
        ours = set(keys)
        for key in self.redis.scan_iter(match=f"{self.claimed}*", count=100):
            day, claimed_at, _ = key.decode()[len(self.claimed):].split(":")
            if key.decode() not in ours and now - int(claimed_at) > CLAIM_ABANDONED_AFTER:
                keys.append(self._rename(key, f"{self.claimed}{day}:{now}:{uuid.uuid4().hex}"))
        counts: Counter = Counter()
        keys = [key for key in keys if key is not None]
        for key in keys:
            day = date.fromisoformat(key.split(":")[-3])
            for town, calls in self.redis.hgetall(key).items():
                counts[(int(town), day)] += int(calls)
        return dict(counts), keys

    def _rename(self, key: bytes, target: str) -> str | None:
        import redis

        try:
            self.redis.rename(key, target)
        except redis.ResponseError:
            return None  # another flusher claimed it first
        return target

    def release(self, claim: list[str]) -> None:
        if claim:
            self.redis.delete(*claim)

    def give_back(self, claim) -> None:
        """Left claimed; a later flush takes it over after CLAIM_ABANDONED_AFTER."""

    def discard_all(self) -> None:
        for pattern in (f"{self.counting}*", f"{self.claimed}*"):
            keys = list(self.redis.scan_iter(match=pattern, count=100))
            if keys:
                self.redis.delete(*keys)


_counter = None
_counter_lock = threading.Lock()
_flusher_started = False


def api_usage_counter():
    global _counter
    if _counter is None:
        with _counter_lock:
            if _counter is None:
                _counter = (
                    RedisCounter(settings.REDIS_URL, settings.CACHE_PREFIX) if settings.REDIS_URL else MemoryCounter()
                )
    return _counter


def api_call_count(municipality_id: int) -> None:
    """Count one API call against a town. No database access."""
    counter = api_usage_counter()
    counter.count(municipality_id, timezone.localdate())
    if counter.in_process and not _flusher_started and settings.API_USAGE_FLUSH_SECONDS > 0:
        _start_in_process_flusher()


def api_usage_flush() -> int:
    """Move counted calls into ApiUsage; returns how many calls were written."""
    from .services import api_usage_add

    counter = api_usage_counter()
    counts, claim = counter.claim()
    if not counts:
        counter.release(claim)
        return 0
    try:
        written = api_usage_add(counts=counts)
    except Exception:
        counter.give_back(claim)
        raise
    counter.release(claim)
    return written


def _start_in_process_flusher() -> None:
    global _flusher_started
    with _counter_lock:
        if _flusher_started:
            return
        _flusher_started = True
    threading.Thread(target=_flush_every_interval, name="api-usage-flusher", daemon=True).start()
    atexit.register(_flush_in_thread_context)


def _flush_every_interval() -> None:
    while True:
        time.sleep(settings.API_USAGE_FLUSH_SECONDS)
        _flush_in_thread_context()


def _flush_in_thread_context() -> None:
    close_old_connections()
    try:
        api_usage_flush()
    except Exception:
        logger.exception("API usage flush failed; the counts are kept for the next one")
    finally:
        # This thread's connection must not outlive the flush (SQLite locks, PostgreSQL slots).
        connection.close()
