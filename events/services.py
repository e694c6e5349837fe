"""Writes of the event path: `emit` (inside the writer's transaction) and the drain that hands claimed
batches to the registered handlers.

How the drain runs (settings.EVENTS_DRAIN):
- ``workers``: separate processes (`manage.py drain_events`, several may run). Production, where the
  channel layer is Redis and reaches every ASGI process.
- ``in-process``: a task on the ASGI server's event loop (events.runner), because the embedded
  default's in-memory channel layer only reaches browsers connected to that same process.
- ``eager``: right after the writer's transaction commits, in the writer's thread. Tests only.
"""

from __future__ import annotations

import json
import logging
import threading
import zlib
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from bulkwrite import pg_array

from . import registry
from .loops import first_line, is_service_outage
from .models import OutboxEvent

logger = logging.getLogger(__name__)

RETRY_BASE_SECONDS = 1
RETRY_MAX_SECONDS = 60
ERROR_MAX_LENGTH = 2000


def emit(kind: str, payload: dict) -> int:
    """Record that `kind` happened, for every handler registered for it; returns the rows written.

    Call it inside the transaction that makes the change: the event then exists if and only if
    the change was committed.
    """
    now = timezone.now()
    rows = []
    for handler in registry.handlers_for(kind):
        part = payload if handler.route is None else handler.route(kind, payload)
        if part is not None:
            rows.append((handler.name, part))
    if not rows:
        return 0
    if connection.vendor == "postgresql":
        _outbox_insert(kind, rows, now)
    else:
        OutboxEvent.objects.bulk_create(
            OutboxEvent(kind=kind, handler=name, payload=part, created_at=now, available_at=now) for name, part in rows
        )
    transaction.on_commit(_wake, robust=True)
    return len(rows)


_OUTBOX_INSERT = (
    f"INSERT INTO {OutboxEvent._meta.db_table} (kind, handler, payload, created_at, available_at, attempts, last_error) "
    "SELECT %s, h.handler, p.parts -> h.part, %s, %s, 0, '' "
    "FROM (SELECT %s::jsonb AS parts) AS p, unnest(%s::text[], %s::int[]) AS h(handler, part)"
)


def _outbox_insert(kind: str, rows: list[tuple[str, dict]], now) -> None:
    """The rows in one statement, each distinct payload sent and parsed once: most handlers get the
    same payload (an ingest batch's station ids), which PostgreSQL parsed into jsonb once per row
    before — most of the database's work for the change-log row of a batch."""
    parts: list = []
    index: dict[int, int] = {}
    positions = []
    for _, part in rows:
        if id(part) not in index:
            index[id(part)] = len(parts)
            parts.append(part)
        positions.append(index[id(part)])
    with connection.cursor() as cursor:
        cursor.execute(
            _OUTBOX_INSERT,
            [kind, now, now, json.dumps(parts), pg_array([name for name, _ in rows]), pg_array(positions)],
        )


_wakers: list = []


def add_waker(callback) -> None:
    """Called (from any thread) after a transaction that emitted events commits, e.g. to wake the
    in-process drain at once instead of at its next poll."""
    _wakers.append(callback)


def remove_waker(callback) -> None:
    if callback in _wakers:
        _wakers.remove(callback)


def _wake() -> None:
    if settings.EVENTS_DRAIN == "eager":
        drain_pending()
        return
    for callback in list(_wakers):
        callback()


@dataclass
class DrainReport:
    claimed: int = 0
    handled: int = 0
    failed: int = 0
    by_handler: dict[str, int] = field(default_factory=dict)

    def add(self, other: "DrainReport") -> None:
        self.claimed += other.claimed
        self.handled += other.handled
        self.failed += other.failed
        for name, count in other.by_handler.items():
            self.by_handler[name] = self.by_handler.get(name, 0) + count


def drain_once(*, handler_names: list[str] | None = None) -> DrainReport:
    """One pass: for every handler with claimable events, claim a batch of them and run it on them."""
    report = DrainReport()
    handlers = [handler for handler in registry.handlers() if handler_names is None or handler.name in handler_names]
    for handler in _with_claimable_events(handlers, now=timezone.now()):
        report.add(_drain_handler(handler))
    return report


def _with_claimable_events(handlers: list[registry.Handler], *, now) -> list[registry.Handler]:
    """The handlers that have an event claimable at `now`, found with one query (on PostgreSQL one
    probe of the claim index per handler). A handler with nothing to do then costs no transaction,
    lock and empty claim of its own: four of the nine registered handlers get nothing from a storm
    of readings, and a busy drain makes a pass after every batch."""
    if len(handlers) <= 1:
        return handlers
    names = [handler.name for handler in handlers]
    if connection.vendor == "postgresql":
        table = connection.ops.quote_name(OutboxEvent._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT name FROM unnest(%s::text[]) AS names (name) WHERE EXISTS ("
                f"SELECT 1 FROM {table} WHERE handler = name AND failed_at IS NULL AND available_at <= %s)",
                [pg_array(names), now],
            )
            claimable = {name for (name,) in cursor.fetchall()}
    else:
        claimable = set(
            OutboxEvent.objects.filter(handler__in=names, failed_at__isnull=True, available_at__lte=now)
            .values_list("handler", flat=True).distinct()
        )
    return [handler for handler in handlers if handler.name in claimable]


_draining = threading.local()


def drain_pending(*, max_passes: int = 1000) -> DrainReport:
    """Drain until nothing is claimable (events emitted by handlers included). Re-entrant calls (an
    eager drain woken by a handler's own commit) return at once: the outer loop picks them up."""
    report = DrainReport()
    if getattr(_draining, "active", False):
        return report
    _draining.active = True
    try:
        for _ in range(max_passes):
            step = drain_once()
            report.add(step)
            if step.claimed == step.failed:  # nothing claimed, or only failures waiting for their retry
                break
    finally:
        _draining.active = False
    return report


def _advisory_key(name: str) -> int:
    # pg_try_advisory_xact_lock takes a signed 64-bit key; a CRC is stable across processes.
    return 0x6D697A75_00000000 | zlib.crc32(name.encode())


def _drain_handler(handler: registry.Handler) -> DrainReport:
    report = DrainReport()
    now = timezone.now()
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # One worker per handler at a time: batches of one handler stay in order, and two workers
            # never evaluate the same station at once. Other workers take the other handlers.
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [_advisory_key(handler.name)])
                if not cursor.fetchone()[0]:
                    return report
        pending = OutboxEvent.objects.filter(handler=handler.name, failed_at__isnull=True)
        if handler.in_order:
            oldest = pending.order_by("id").values_list("available_at", flat=True).first()
            if oldest is None or oldest > now:
                return report
        rows = list(
            pending.select_for_update(skip_locked=True)
            .filter(available_at__lte=now)
            .order_by("id")
            .only("id", "kind", "payload", "attempts")[: handler.batch_size]
        )
        if not rows:
            return report
        report.claimed = len(rows)
        try:
            with transaction.atomic():
                handler.func([(row.kind, row.payload) for row in rows])
        except Exception as exc:
            _retry_later(handler, rows, exc, now=now)
            report.failed = len(rows)
            return report
        OutboxEvent.objects.filter(pk__in=[row.pk for row in rows]).delete()
        report.handled = len(rows)
        report.by_handler[handler.name] = len(rows)
    return report


def _retry_later(handler: registry.Handler, rows: list[OutboxEvent], exc: Exception, *, now) -> None:
    attempts = max(row.attempts for row in rows) + 1
    error = f"{type(exc).__name__}: {exc}"[:ERROR_MAX_LENGTH]
    cap = RETRY_MAX_SECONDS if handler.retry_max_seconds is None else min(handler.retry_max_seconds, RETRY_MAX_SECONDS)
    delay = min(RETRY_BASE_SECONDS * 2 ** (attempts - 1), cap)
    gives_up = attempts >= handler.max_attempts
    if attempts == 1 and is_service_outage(exc):
        # An outage (Redis stopped, the database restarting) is expected to end: one line, no traceback.
        logger.warning(
            "event handler %s could not run on %d event(s): %s; retrying in %g s",
            handler.name, len(rows), first_line(exc), delay,
        )
    elif attempts == 1 or gives_up:
        logger.exception(
            "event handler %s failed on %d event(s) (attempt %d)%s", handler.name, len(rows), attempts,
            "; giving up on them" if gives_up else f"; retrying in {delay:g} s",
        )
    else:
        logger.warning("event handler %s failed again (attempt %d): %s", handler.name, attempts, error.splitlines()[0])
    OutboxEvent.objects.filter(pk__in=[row.pk for row in rows]).update(
        attempts=attempts,
        last_error=error,
        available_at=now + timedelta(seconds=delay),
        failed_at=now if gives_up else None,
    )


def failed_events_retry(*, ids=None, handler_name: str | None = None) -> int:
    """Make events a handler gave up on claimable again (after the cause was fixed)."""
    rows = OutboxEvent.objects.filter(failed_at__isnull=False)
    if ids is not None:
        rows = rows.filter(pk__in=list(ids))
    if handler_name:
        rows = rows.filter(handler=handler_name)
    return rows.update(failed_at=None, attempts=0, available_at=timezone.now())
