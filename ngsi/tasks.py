"""Celery wrappers around ngsi.services (thin: the work and its bookkeeping live in the service)."""

from celery import shared_task

from .conf import ngsi_setting
from .services import notification_backoff_seconds, notification_deliver


@shared_task(bind=True, name="ngsi.notify_subscription", ignore_result=True, max_retries=None)
def notify_subscription(self, subscription_pk: int, body: str) -> bool:
    """POST one notification; on a retryable failure try again with exponential backoff.

    The retry is returned, not raised: eager Celery (the embedded default, which propagates task
    exceptions) would otherwise surface it as an error instead of running the next attempt, which
    it does at once, without the wait. A worker schedules it with the countdown either way."""
    outcome = notification_deliver(subscription_pk=subscription_pk, body=body)
    if outcome.retry and self.request.retries + 1 < ngsi_setting("NGSI_NOTIFY_MAX_ATTEMPTS"):
        return self.retry(countdown=notification_backoff_seconds(self.request.retries), throw=False)
    return outcome.delivered
