"""Writes of the live message log: append (by the live publisher only) and trim."""

from __future__ import annotations

import json
import uuid

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from .models import LiveMessage, LiveStream

# Trimming runs once every this many messages, not on every insert.
TRIM_EVERY = 100
# pg_advisory_xact_lock key of the log's writers (see `live_messages_append`); "mizu" and "live".
WRITERS_LOCK_KEY = 0x6D697A75_6C697665


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
    of a thousand alert events costs one write here, not a thousand.

    Numbers are handed out in commit order. Every reader of the log asks for "the messages after n"
    (a websocket resume, the features kept per audience in dashboard.features): a message numbered
    below one a reader already took, but committed after it, would never be read. So a writer holds
    the log until its transaction ends: on PostgreSQL a transaction-level advisory lock taken before
    its first number; SQLite has one writing transaction at a time anyway (BEGIN IMMEDIATE, see
    config.settings). The live publisher runs one drain batch at a time (events.services), so the
    lock is normally free; it makes the order a property of the log, not of who happens to write."""
    if not messages:
        return []
    bodies = [{key: value for key, value in body.items() if key != "seq"} for _, body in messages]
    # The lock lasts as long as the transaction: outside one, this block is it.
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [WRITERS_LOCK_KEY])
            ids = _insert_as_one_document([group for group, _ in messages], bodies)
        else:
            rows = LiveMessage.objects.bulk_create(
                [LiveMessage(group=group, body=body) for (group, _), body in zip(messages, bodies)]
            )
            ids = [row.pk for row in rows]
        if any(pk is None for pk in ids):  # a backend that cannot return ids
            raise RuntimeError("the live log needs ids back from bulk inserts (PostgreSQL, SQLite >= 3.35)")
        if ids[-1] // TRIM_EVERY != (ids[0] - 1) // TRIM_EVERY:
            live_messages_trim(keep=settings.LIVE_REPLAY_KEEP)
    return [{**body, "seq": pk} for body, pk in zip(bodies, ids)]


def _insert_as_one_document(groups: list[str], bodies: list[dict]) -> list[int]:
    """The rows as one jsonb parameter, split in SQL. `bulk_create` sends the bodies as a text array,
    which the driver escapes in Python character class by character class: for a drain batch's
    `stations` messages (every changed station's feature) that escaping cost more than everything
    else the publisher did. Ids come back in insertion order, as `bulk_create` relies on too."""
    table = connection.ops.quote_name(LiveMessage._meta.db_table)
    document = json.dumps([[group, body] for group, body in zip(groups, bodies)], ensure_ascii=False,
                          separators=(",", ":"))
    with connection.cursor() as cursor:
        cursor.execute(
            f'INSERT INTO {table} ("group", body, created_at) '
            "SELECT item->>0, item->1, %s "
            "FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS rows (item, position) "
            "ORDER BY position RETURNING id",
            [timezone.now(), document],
        )
        return [row[0] for row in cursor.fetchall()]


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
