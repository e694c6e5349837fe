"""Reads of the live message log: the current number, the stream's name, and replay."""

from __future__ import annotations

from django.db.models import Max

from .models import LiveMessage
from .services import live_stream


def live_current_seq() -> int:
    """The newest number issued (0 before the first message)."""
    newest = LiveMessage.objects.aggregate(newest=Max("pk"))["newest"]
    return newest or live_stream().trimmed_through


def live_stream_name() -> str:
    return live_stream().name


def live_messages_since(groups, seq: int, *, limit: int) -> tuple[list[dict], bool]:
    """Messages of these groups numbered after `seq`, oldest first, and whether that is everything
    the client missed: False when some were trimmed already, or when more than `limit` are
    waiting (a snapshot is then cheaper than the replay)."""
    if seq < live_stream().trimmed_through:
        return [], False
    rows = list(LiveMessage.objects.filter(group__in=list(groups), pk__gt=seq).order_by("pk")[: limit + 1])
    if len(rows) > limit:
        return [], False
    return [row.as_message() for row in rows], True
