"""Thin Celery wrappers around alert services. Periodic ones belong in CELERY_BEAT_SCHEDULE; in the
embedded default (eager Celery, no beat) run `manage.py check_stale_sensors --loop` and
`manage.py dispatch_alerts --loop` instead."""

from celery import shared_task

from . import services


@shared_task(name="alerts.dispatch_deliveries")
def deliveries_dispatch_task() -> dict:
    report = services.deliveries_dispatch()
    return vars(report)


@shared_task(name="alerts.check_stale_sensors")
def stale_sensors_check_task() -> int:
    return len(services.stale_sensors_check())
