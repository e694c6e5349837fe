"""Thin Celery wrappers around sensors services. Periodic ones are in CELERY_BEAT_SCHEDULE; in the
embedded default (SQLite, eager Celery, no beat) there are no partitions to keep."""

from celery import shared_task
from django.conf import settings

from . import partitions


@shared_task(name="sensors.observation_partitions_ahead")
def observation_partitions_ahead_task() -> dict:
    report = partitions.partitions_ensure_ahead(months_ahead=settings.OBSERVATION_PARTITIONS_AHEAD)
    return vars(report)
