"""Thin Celery wrapper (CELERY_BEAT_SCHEDULE); without beat run `manage.py end_expired_releases --loop`."""

from celery import shared_task

from .services import releases_expired_end


@shared_task(name="releases.end_expired")
def releases_expired_end_task() -> int:
    return len(releases_expired_end())
