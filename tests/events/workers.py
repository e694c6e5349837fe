"""Several change-log workers at once, as threads with their own database connections."""

from __future__ import annotations

import threading

from django.db import connection

from events.models import OutboxEvent
from events.services import drain_once


def drain_in_threads(*, handler_names: list[str] | None = None, threads: int = 2, passes: int = 500) -> list[Exception]:
    """Each thread drains until nothing is left to claim (bounded by `passes`); returns their errors."""
    errors: list[Exception] = []

    def worker():
        try:
            for _ in range(passes):
                pending = OutboxEvent.objects.filter(failed_at__isnull=True)
                if handler_names is not None:
                    pending = pending.filter(handler__in=handler_names)
                if not drain_once(handler_names=handler_names).claimed and not pending.exists():
                    break
        except Exception as exc:  # pragma: no cover - reported by the caller
            errors.append(exc)
        finally:
            connection.close()

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(timeout=120)
    return errors
