"""Writes of the live message log: append (by the live publisher only) and trim."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import transaction

from .models import LiveMessage, LiveStream

# Trimming runs once every this many messages, not on every insert.
TRIM_EVERY = 100


def live_stream() -> LiveStream:
    stream = LiveStream.objects.order_by("pk").first()
    if stream is None:
        stream, _ = LiveStream.objects.get_or_create(pk=1, defaults={"name": uuid.uuid4().hex[:12]})
    return stream


def live_message_append(group: str, body: dict) -> dict:
    """Store a message for `group` and return it with its sequence number (the row's id)."""
    return live_messages_append([(group, body)])[0]


def live_messages_append(messages: list[tuple[str, dict]]) -> list[dict]:
    """Store (group, message) pairs in one insert, in order, and return them numbered: a drain batch
    of a thousand alert events costs one write here, not a thousand."""
    rows = LiveMessage.objects.bulk_create(
        [LiveMessage(group=group, body={key: value for key, value in body.items() if key != "seq"})
         for group, body in messages]
    )
    if rows and any(row.pk is None for row in rows):  # a backend that cannot return ids
        raise RuntimeError("the live log needs ids back from bulk inserts (PostgreSQL, SQLite >= 3.35)")
    if rows and rows[-1].pk // TRIM_EVERY != (rows[0].pk - 1) // TRIM_EVERY:
        live_messages_trim(keep=settings.LIVE_REPLAY_KEEP)
    return [row.as_message() for row in rows]


def live_messages_trim(*, keep: int) -> int:
    """Delete all but the newest `keep` messages; remember the last number deleted."""
    newest = LiveMessage.objects.order_by("-pk").values_list("pk", flat=True).first()
    if newest is None or newest <= keep:
        return 0
    through = newest - keep
    with transaction.atomic():
        stream = LiveStream.objects.select_for_update().get(pk=live_stream().pk)
        deleted, _ = LiveMessage.objects.filter(pk__lte=through).delete()
        if through > stream.trimmed_through:
            stream.trimmed_through = through
            stream.save(update_fields=["trimmed_through"])
    return deleted
