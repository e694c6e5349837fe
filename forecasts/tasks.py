"""Thin Celery wrappers. In production Celery beat retrains what is due (CELERY_BEAT_SCHEDULE); in
the embedded default (eager Celery, no beat) `manage.py forecast_train --loop` does."""

from celery import shared_task

from . import services


@shared_task(name="forecasts.retrain_due")
def forecasts_retrain_due_task() -> int:
    return len(services.forecasts_retrain_due())
