"""Alert events to browsers through Channels groups.

Groups: ``alerts.public`` for alerts of public stations, and ``alerts.<municipality-slug>`` for every
town that may see the station (its owner, every town for region-wide stations, every town for public
ones too). Which towns is decided by `Station.objects.visible_to`, see
`alerts.selectors.live_groups_for_stations`. A member's connection joins the groups of its towns; an
anonymous one joins ``alerts.public`` only. A client in several of them may get one event more than
once: de-duplicate by ``alert.event.id``.

Message (channel-layer event, handled by a consumer method ``alert_message``)::

    {"type": "alert.message", "alert": {<alerts.selectors.alert_document>, "event": {<event_document>}}}
"""

from __future__ import annotations

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)

MESSAGE_TYPE = "alert.message"


def message_for(notification: dict) -> dict:
    return {"type": MESSAGE_TYPE, "alert": {**notification["alert"], "event": notification["event"]}}


def send(groups: list[str], notification: dict) -> None:
    """Must be called from sync code outside the event-loop thread (async_to_sync raises there)."""
    layer = get_channel_layer()
    if layer is None:
        return
    group_send = async_to_sync(layer.group_send)
    message = message_for(notification)
    for group in groups:
        group_send(group, message)
