"""Reads of the event path: how far behind the handlers are."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Min, Q
from django.utils import timezone

from .models import OutboxEvent


@dataclass(frozen=True)
class HandlerLag:
    handler: str
    pending: int
    failed: int
    oldest_pending_at: datetime | None

    def lag_seconds(self, now: datetime) -> float:
        return 0.0 if self.oldest_pending_at is None else max(0.0, (now - self.oldest_pending_at).total_seconds())


@dataclass(frozen=True)
class EventLag:
    """Lag is the age of the oldest event not yet handled: how stale what browsers, alerts and NGSI
    subscribers see may be compared with what is stored."""

    at: datetime
    handlers: list[HandlerLag]

    @property
    def pending(self) -> int:
        return sum(item.pending for item in self.handlers)

    @property
    def failed(self) -> int:
        return sum(item.failed for item in self.handlers)

    @property
    def lag_seconds(self) -> float:
        return max((item.lag_seconds(self.at) for item in self.handlers), default=0.0)

    def as_dict(self) -> dict:
        return {
            "lag_seconds": round(self.lag_seconds, 3),
            "pending": self.pending,
            "failed": self.failed,
            "handlers": {
                item.handler: {
                    "pending": item.pending,
                    "failed": item.failed,
                    "lag_seconds": round(item.lag_seconds(self.at), 3),
                }
                for item in self.handlers
            },
        }


def event_lag() -> EventLag:
    """One aggregate query over the outbox (it holds only unhandled events, so it stays small)."""
    rows = (
        OutboxEvent.objects.values("handler")
        .annotate(
            pending=Count("id", filter=Q(failed_at__isnull=True)),
            failed=Count("id", filter=Q(failed_at__isnull=False)),
            oldest=Min("created_at", filter=Q(failed_at__isnull=True)),
        )
        .order_by("handler")
    )
    return EventLag(
        at=timezone.now(),
        handlers=[HandlerLag(row["handler"], row["pending"], row["failed"], row["oldest"]) for row in rows],
    )


def handler_retrying(handler: str) -> bool:
    """Whether `handler` has events it failed on and is waiting to retry (not given up on)."""
    return OutboxEvent.objects.filter(handler=handler, failed_at__isnull=True, attempts__gt=0).exists()
