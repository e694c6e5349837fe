"""Thin Celery wrappers around tenancy services; periodic ones are in CELERY_BEAT_SCHEDULE."""

from celery import shared_task

from .api_usage import api_usage_flush


@shared_task(name="tenancy.flush_api_usage")
def api_usage_flush_task() -> int:
    return api_usage_flush()
