"""Thin Celery wrapper: polling the agency's Atom feed (CELERY_BEAT_SCHEDULE has it only when
JMA_FEED_URL is set; without beat run `manage.py import_jma_xml --feed --loop`)."""

from celery import shared_task

from .feed import jma_feed_poll


@shared_task(name="jma.poll_feed")
def jma_feed_poll_task() -> dict:
    return vars(jma_feed_poll())
