"""`GET /health/`: is this deployment keeping up? For load balancers, monitoring and the HQ page.

Answers 200 while the database answers and the change log is drained within EVENTS_LAG_WARN_SECONDS,
503 otherwise, always as JSON and never cached. It names no station and no town: anyone may ask.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db import DatabaseError
from django.http import JsonResponse
from django.views.decorators.cache import never_cache

from events.selectors import EventLag, event_lag
from events.vacuum import autovacuum_state


@dataclass(frozen=True)
class PipelineStatus:
    """What the HQ page says about the change log: how far alerts and the live map lag behind storage."""

    lag: EventLag | None

    @property
    def lag_seconds(self) -> float | None:
        return None if self.lag is None else self.lag.lag_seconds

    @property
    def autovacuum(self) -> str | None:
        """PostgreSQL's `autovacuum` setting ("off": the hot tables bloat, docs/deployment.md); None
        elsewhere. Asked when the HQ page shows it, not by every /health/ poll."""
        return autovacuum_state()

    @property
    def healthy(self) -> bool:
        return self.lag is not None and self.lag.lag_seconds <= settings.EVENTS_LAG_WARN_SECONDS and not self.lag.failed


def pipeline_status() -> PipelineStatus:
    try:
        return PipelineStatus(lag=event_lag())
    except DatabaseError:
        return PipelineStatus(lag=None)


@never_cache
def health(request):
    status = pipeline_status()
    body = {
        "status": "ok" if status.healthy else "degraded",
        "database": "ok" if status.lag is not None else "unavailable",
        "events": status.lag.as_dict() if status.lag is not None else None,
        "events_drain": settings.EVENTS_DRAIN,
        "lag_warn_seconds": settings.EVENTS_LAG_WARN_SECONDS,
    }
    return JsonResponse(body, status=200 if status.healthy else 503)
