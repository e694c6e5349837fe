"""Responses built at most once per period for the whole deployment and served as the same bytes.

A `TickCache` keeps one build per period (the public snapshot's publish tick, the base map's
longer one): this process's copy, else the shared cache's (Redis in production), else built here
by one process at a time under a cache lock; the others keep serving the previous build meanwhile.
Each build is precompressed once (gzip without a timestamp, so the bytes do not depend on when or
where it was built) and has a strong ETag over its content and the time that content first appeared.
"""

from __future__ import annotations

import gzip
import hashlib
import threading
import time
from dataclasses import dataclass
from typing import Callable

import brotli
from django.conf import settings
from django.core.cache import cache

from config.build import front_end_build

JSON = "application/json"
JAVASCRIPT = "text/javascript; charset=utf-8"
HTML = "text/html; charset=utf-8"
# A build that takes longer than this is assumed dead and another process may start one.
LOCK_SECONDS = 30


@dataclass(frozen=True)
class Encoded:
    body: bytes
    content_type: str


@dataclass(frozen=True)
class Built:
    tick: int
    body: bytes
    gzip: bytes
    brotli: bytes
    content_type: str
    etag: str
    last_modified: float
    period: int

    @classmethod
    def of(cls, encoded: Encoded, *, tick: int, period: int, previous: "Built | None", now: float) -> "Built":
        etag = '"' + hashlib.sha256(encoded.body).hexdigest()[:32] + '"'
        unchanged = previous is not None and previous.etag == etag
        return cls(
            tick=tick,
            body=encoded.body,
            gzip=gzip.compress(encoded.body, compresslevel=6, mtime=0),
            brotli=brotli.compress(encoded.body, quality=settings.BROTLI_QUALITY),
            content_type=encoded.content_type,
            etag=etag,
            last_modified=previous.last_modified if unchanged else now,
            period=period,
        )


class TickCache:
    instances: list["TickCache"] = []

    def __init__(self, name: str, build: Callable[..., Encoded], *, period: Callable[[], int]):
        TickCache.instances.append(self)
        self.name = name
        self.build = build
        self.period = period
        self._local: dict[tuple, Built] = {}
        self._lock = threading.Lock()

    def _keys(self, variant: tuple) -> tuple[str, str]:
        # Per front-end build: a process of a new deploy never serves a shell (naming the previous
        # deploy's static files) or base map that a process of the old one left in the shared cache.
        suffix = ":".join(str(part) for part in (front_end_build(), *variant))
        return f"public:{self.name}:v1:{suffix}", f"public:{self.name}:v1:{suffix}:lock"

    def get(self, *variant, now: float | None = None) -> Built:
        """The build for this period (and `variant`, passed to the builder: e.g. a language)."""
        now = time.time() if now is None else now
        period = max(1, int(self.period()))
        tick = int(now // period)
        key, lock = self._keys(variant)
        with self._lock:
            local = self._local.get(variant)
            if local is not None and local.tick == tick:
                return local
            shared = cache.get(key)
            if shared is not None and shared.tick == tick:
                self._local[variant] = shared
                return shared
            previous = shared or local
            if previous is not None and not cache.add(lock, 1, timeout=LOCK_SECONDS):
                return previous  # another process is building this period's
            try:
                built = Built.of(self.build(*variant), tick=tick, period=period, previous=previous, now=now)
                cache.set(key, built, timeout=period * 10)
            finally:
                cache.delete(lock)
            self._local[variant] = built
            return built

    def forget(self) -> None:
        """The next get() builds afresh (for tests: this process's copies and the shared ones)."""
        with self._lock:
            variants = list(self._local)
            self._local.clear()
        for variant in {*variants, (), *((code,) for code, _ in settings.LANGUAGES)}:
            cache.delete_many(self._keys(variant))


def forget_all() -> None:
    for instance in TickCache.instances:
        instance.forget()
