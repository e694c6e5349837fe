"""Live map layers: who hears about which station, the sequence numbers, and the replay buffer.

Every changed station is published once per audience group, coalesced per ingestion batch:

- ``live.public``          stations anyone may see
- ``live.region``          stations every town on the platform may see
- ``live.town.<id>``       a town's private stations (its own members only)

A viewer's connection joins exactly the groups `audience_groups(viewer)` names, so what reaches a
browser is decided by the same rule as `Station.objects.visible_to`. Messages carry one platform-wide
sequence number; the last messages of each group are kept so a reconnecting client can ask for
what it missed (`messages_since`) or, when too far behind, reload a snapshot.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections import defaultdict, deque

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.utils import timezone

from alerts.selectors import events_for_notification, live_group, live_groups_for_stations, notification_document
from alerts.services import ALERT_CHANGED
from sensors.models import Station, Visibility
from sensors.selectors import station_audiences, station_feature, station_list
from tenancy.selectors import Viewer

from .selectors import MapStation, map_stations

logger = logging.getLogger(__name__)

PUBLIC_GROUP = "live.public"
REGION_GROUP = "live.region"
STATION_LAYERS = ("river", "rain", "reservoir")
LAYERS = (*STATION_LAYERS, "alerts", "shelters", "orders")
# How many messages per group a reconnecting client can catch up on before it gets a snapshot.
REPLAY_DEPTH = 200
# daphne closes the connection (1011) on a frame over 1 MiB, and a phone on a weak connection
# should not wait for one huge frame: a snapshot goes out in parts of at most this many bytes
# (UTF-8) and features each.
SNAPSHOT_PART_BYTES = 256 * 1024
SNAPSHOT_PART_ITEMS = 500
PLATFORM = Viewer(is_platform_admin=True)


def town_group(municipality_id: int) -> str:
    return f"live.town.{municipality_id}"


def audience_groups(viewer: Viewer, all_town_ids=()) -> list[str]:
    """The groups whose messages this viewer may receive."""
    if viewer.is_platform_admin:
        return [PUBLIC_GROUP, REGION_GROUP, *(town_group(pk) for pk in sorted(all_town_ids))]
    if viewer.is_member:
        return [PUBLIC_GROUP, REGION_GROUP, *(town_group(pk) for pk in sorted(viewer.municipality_ids))]
    return [PUBLIC_GROUP]


def audience_of(visibility: str, towns) -> list[str]:
    """The groups that hear about a station: its one public or region group, else the towns that
    may see it (the owner and, for shared stations, the grantees)."""
    if visibility == Visibility.PUBLIC:
        return [PUBLIC_GROUP]
    if visibility == Visibility.REGION:
        return [REGION_GROUP]
    return [town_group(pk) for pk in sorted(towns)]


class MemoryLiveStore:
    """Sequence and replay buffer inside one process: the embedded default's in-memory channel layer
    only reaches browsers connected to this same process anyway."""

    def __init__(self):
        self._lock = threading.Lock()
        self._stream = uuid.uuid4().hex[:12]
        self._seq = 0
        self._buffers: dict[str, deque] = defaultdict(lambda: deque(maxlen=REPLAY_DEPTH))

    def next_seq(self) -> int:
        with self._lock:
            self._seq += 1
            return self._seq

    def current_seq(self) -> int:
        return self._seq

    def stream_id(self) -> str:
        """Names this run of the sequence: it starts again at 0 when the process restarts."""
        return self._stream

    def remember(self, group: str, message: dict) -> None:
        with self._lock:
            self._buffers[group].append(message)

    def since(self, group: str, seq: int) -> tuple[list[dict], bool]:
        """Messages after `seq`, and whether the buffer reaches back far enough to be complete."""
        with self._lock:
            buffered = list(self._buffers[group])
        complete = not buffered or buffered[0]["seq"] <= seq + 1 or len(buffered) < REPLAY_DEPTH
        return [m for m in buffered if m["seq"] > seq], complete


class RedisLiveStore:
    """Shared by every ASGI process: INCR for the sequence, a capped sorted set per group."""

    def __init__(self, url: str, prefix: str):
        import redis

        self._redis = redis.Redis.from_url(url)
        self._prefix = prefix

    def _key(self, name: str) -> str:
        return f"{self._prefix}:live:{name}"

    def next_seq(self) -> int:
        return int(self._redis.incr(self._key("seq")))

    def current_seq(self) -> int:
        return int(self._redis.get(self._key("seq")) or 0)

    def stream_id(self) -> str:
        """Names this run of the sequence; a new one if Redis lost the counter (restart, flush)."""
        key = self._key("stream")
        self._redis.set(key, uuid.uuid4().hex[:12], nx=True)
        return self._redis.get(key).decode()

    def remember(self, group: str, message: dict) -> None:
        key = self._key(group)
        pipe = self._redis.pipeline()
        pipe.zadd(key, {json.dumps(message, separators=(",", ":")): message["seq"]})
        pipe.zremrangebyrank(key, 0, -REPLAY_DEPTH - 1)
        pipe.execute()

    def since(self, group: str, seq: int) -> tuple[list[dict], bool]:
        key = self._key(group)
        pipe = self._redis.pipeline()
        pipe.zrange(key, 0, 0, withscores=True)
        pipe.zrangebyscore(key, f"({seq}", "+inf")
        pipe.zcard(key)
        oldest, newer, size = pipe.execute()
        complete = not oldest or oldest[0][1] <= seq + 1 or size < REPLAY_DEPTH
        return [json.loads(raw) for raw in newer], complete


_store = None
_store_lock = threading.Lock()


def live_store():
    global _store
    with _store_lock:
        if _store is None:
            if settings.REDIS_URL:
                _store = RedisLiveStore(settings.REDIS_URL, settings.CHANNEL_PREFIX)
            else:
                _store = MemoryLiveStore()
        return _store


def reset_live_store() -> None:
    """For tests that switch settings."""
    global _store
    with _store_lock:
        _store = None


def audience_feature(feature: dict, *, show_sharing: bool) -> dict:
    """The contract feature as one audience receives it: data only (static/mizumori/stations.js draws
    it). Whom a station is shared with is staff information, so `visibility` stays out unless
    `show_sharing`. Returns a copy; `feature` is not changed."""
    if show_sharing:
        return feature
    properties = {key: value for key, value in feature["properties"].items() if key != "visibility"}
    return {**feature, "properties": properties}


def live_feature(station: Station, *, now, show_sharing: bool) -> dict:
    """A station as the live layer and the map page carry it: the /api/v1/stations feature, no HTML."""
    return audience_feature(station_feature(station, now=now), show_sharing=show_sharing)


def page_snapshot(*, viewer: Viewer, show_sharing: bool) -> tuple[dict, list[MapStation]]:
    """The first snapshot, rendered into the map page so the page's socket resumes from its number
    instead of asking for the whole set again: {"seq", "stream", "layers", "features"} and the
    stations it holds. The number is read before the stations, so anything published meanwhile is
    newer than the snapshot and reaches the page on resume."""
    store = live_store()
    seq, stream = store.current_seq(), store.stream_id()
    stations = map_stations(viewer=viewer)
    features = [audience_feature(item.feature, show_sharing=show_sharing) for item in stations]
    return {"seq": seq, "stream": stream, "layers": list(STATION_LAYERS), "features": features}, stations


def snapshot_frames(
    *, seq: int, stream: str, layers: list[str], features: list[dict], shelters: list[dict] | None = None
) -> list[str]:
    """A websocket snapshot as JSON text frames, each at most SNAPSHOT_PART_BYTES (UTF-8) and
    SNAPSHOT_PART_ITEMS features and shelters:

        {"type": "snapshot", "seq", "stream", "part": i, "parts": n, "layers", "features": [...]
         [, "shelters": [...]]}

    Parts are numbered from 0; every part has the same seq, stream and layers, and `shelters` is in
    every part when the shelters layer was asked for (possibly empty). The client applies the
    snapshot only once it holds all `parts`. A single item bigger than a part (not a real station)
    travels alone in its own part rather than being dropped.
    """

    def encode(value) -> str:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)

    items = [("features", encode(feature)) for feature in features]
    if shelters is not None:
        items += [("shelters", encode(shelter)) for shelter in shelters]
    # Room for the envelope: type, numbers, stream and layers (names from live.LAYERS) and brackets.
    budget = SNAPSHOT_PART_BYTES - 1024 - len(encode(stream)) - len(encode(layers))
    parts: list[dict[str, list[str]]] = []
    current: dict[str, list[str]] = {"features": [], "shelters": []}
    size = count = 0
    for key, text in items:
        item_bytes = len(text.encode("utf-8")) + 1  # and its comma
        if count and (size + item_bytes > budget or count >= SNAPSHOT_PART_ITEMS):
            parts.append(current)
            current, size, count = {"features": [], "shelters": []}, 0, 0
        current[key].append(text)
        size += item_bytes
        count += 1
    parts.append(current)

    frames = []
    for index, part in enumerate(parts):
        envelope = encode(
            {"type": "snapshot", "seq": seq, "stream": stream, "part": index, "parts": len(parts), "layers": layers}
        )
        body = '"features":[' + ",".join(part["features"]) + "]"
        if shelters is not None:
            body += ',"shelters":[' + ",".join(part["shelters"]) + "]"
        frames.append(envelope[:-1] + "," + body + "}")
    return frames


# One public snapshot per (sequence number, stream, layers), for a few seconds: the same bytes for
# every anonymous reader, valid only while nothing newer was published (a new number is a new key)
# and while `stale` flags judged at build time still hold.
SHARED_SNAPSHOT_SECONDS = 5.0
_shared_snapshot: dict[tuple, tuple[float, list[str]]] = {}
_shared_snapshot_lock = threading.Lock()


def shared_public_snapshot(key: tuple, build) -> list[str]:
    """The frames of the public snapshot for `key`, built by `build()` at most once per key and
    SHARED_SNAPSHOT_SECONDS in this process."""
    with _shared_snapshot_lock:
        cached = _shared_snapshot.get(key)
        if cached is not None and time.monotonic() - cached[0] < SHARED_SNAPSHOT_SECONDS:
            return cached[1]
        frames = build()
        _shared_snapshot.clear()
        _shared_snapshot[key] = (time.monotonic(), frames)
        return frames


def _publish(group: str, message: dict) -> None:
    live_store().remember(group, message)
    async_to_sync(get_channel_layer().group_send)(group, {"type": "live.message", "message": message})


def publish_stations(station_ids) -> None:
    """One `stations` message per audience group for all these stations, as committed now."""
    if not station_ids:
        return
    now = timezone.now()
    audiences = station_audiences(station_ids)
    by_group: dict[str, list[dict]] = defaultdict(list)
    for station in station_list(viewer=PLATFORM).filter(pk__in=station_ids):
        groups = audience_of(*audiences[station.pk])
        feature = live_feature(station, now=now, show_sharing=groups != [PUBLIC_GROUP])
        for group in groups:
            by_group[group].append(feature)
    for group, features in by_group.items():
        _publish(group, {"type": "stations", "seq": live_store().next_seq(), "features": features})


def publish_visibility_change(station_ids, before) -> None:
    """Groups that could see a station and no longer can get a `withdrawn` message (only they ever
    learn its code); the station's current audience gets it afresh."""
    after = station_audiences(station_ids)
    codes = dict(Station.objects.filter(pk__in=list(station_ids)).values_list("pk", "code"))
    withdrawn: dict[str, list[str]] = defaultdict(list)
    for pk in station_ids:
        if pk not in before or pk not in codes:
            continue
        lost = set(audience_of(*before[pk])) - set(audience_of(*after.get(pk, ("private", frozenset()))))
        for group in lost:
            withdrawn[group].append(codes[pk])
    for group, lost_codes in withdrawn.items():
        _publish(group, {"type": "withdrawn", "seq": live_store().next_seq(), "stations": sorted(lost_codes)})
    publish_stations(station_ids)


def publish_to_audience(group: str, layer: str, message_type: str, payload: dict) -> dict:
    """For the other layers (alerts, shelters): delivered to connections subscribed to `layer`."""
    if layer not in LAYERS:
        raise ValueError(f"unknown layer {layer!r}")
    message = {"type": message_type, "layer": layer, "seq": live_store().next_seq(), **payload}
    _publish(group, message)
    return message


# --- alerts -------------------------------------------------------------------------------------

PUBLIC_ALERT_MIN_LEVEL = 3


def publish_alert_events(event_ids) -> None:
    """Alert events to the alert groups of every town that may see the station, and to the public
    (level 3 and up only, without who on the staff acted), each as a sequenced `alert` message."""
    events = events_for_notification(event_ids)
    if not events:
        return
    groups = live_groups_for_stations({event.alert.station_id for event in events})
    for event in events:
        document = notification_document(event)
        alert = {**document["alert"], "event": document["event"]}
        for group in groups.get(event.alert.station_id, []):
            if group == live_group(None):
                if (alert.get("peak_level") or 0) < PUBLIC_ALERT_MIN_LEVEL:
                    continue
                payload = {**alert, "event": {**alert["event"], "actor": None}}
            else:
                payload = alert
            publish_to_audience(group, "alerts", "alert", {"alert": payload})


# --- the change-log handler ----------------------------------------------------------------------


def live_events_publish(events: list[tuple[str, dict]]) -> None:
    """The one live publisher: every change of a drain batch, coalesced — visibility changes first
    (so a viewer who lost a station hears `withdrawn` before anything else), then one `stations`
    message per audience, alert events, one `shelters` message, then orders (dashboard.live_orders)."""
    from sensors.services import STATION_CHANGED, VISIBILITY_CHANGED

    from .live_geo import SHELTER_CHANGED, publish_shelters
    from .live_orders import ORDER_KINDS, publish_order_events

    order_events = [(kind, payload) for kind, payload in events if kind in ORDER_KINDS]
    before: dict[int, tuple[str, frozenset[int]]] = {}
    stations: set[int] = set()
    alert_events: list[int] = []
    shelters: set[int] = set()
    for kind, payload in events:
        if kind == VISIBILITY_CHANGED:
            for pk, (visibility, towns) in payload.get("before", {}).items():
                before.setdefault(int(pk), (visibility, frozenset(towns)))  # the first: what browsers were told
        elif kind == STATION_CHANGED:
            stations.update(payload.get("stations", []))
        elif kind == ALERT_CHANGED:
            alert_events.extend(payload.get("events", []))
        elif kind == SHELTER_CHANGED:
            shelters.update(payload.get("shelters", []))
    if before:
        publish_visibility_change(sorted(before), before)
        stations -= set(before)  # published with their new audience just now
    publish_stations(sorted(stations))
    if alert_events:
        publish_alert_events(list(dict.fromkeys(alert_events)))
    if shelters:
        publish_shelters(sorted(shelters))
    if order_events:
        publish_order_events(order_events)
