"""Live map layers: who hears about which station, the sequence numbers, and the replay buffer.

Every changed station is published once per audience group, coalesced per ingestion batch:

- ``live.public``          stations anyone may see
- ``live.region``          stations every town on the platform may see
- ``live.town.<id>``       a town's private stations (its own members only)

A viewer's connection joins exactly the groups `audience_groups(viewer)` names, so what reaches a
browser is decided by the same rule as `Station.objects.visible_to`. Messages carry one platform-wide
sequence number; the last messages are kept in the database (livelog), so a reconnecting client
can ask for what it missed (`LiveStore.since`) or, when too far behind, reload a snapshot — across
Redis restarts too.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import defaultdict

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.utils import timezone

from alerts.selectors import events_for_notification, live_group, live_groups_for_stations, notification_document
from alerts.services import ALERT_CHANGED
from livelog.selectors import live_current_seq, live_messages_since, live_stream_name
from livelog.services import live_message_append, live_messages_append
from sensors.models import Station, Visibility
from sensors.selectors import live_features_of, station_audiences, station_feature
from tenancy.selectors import Viewer

from .selectors import MapStation, map_stations

logger = logging.getLogger(__name__)

# The change-log handler that publishes (registered in dashboard.apps).
LIVE_HANDLER = "dashboard.live"
PUBLIC_GROUP = "live.public"
REGION_GROUP = "live.region"
STATION_LAYERS = ("river", "rain", "reservoir", "tide")
LAYERS = (*STATION_LAYERS, "alerts", "shelters", "releases", "orders")
# The shape of the live messages (docs/api.md), announced in `subscribed`: a page's live.js that does
# not know it (a page loaded before a deploy that changed them) draws nothing more and asks the reader
# to reload. Raise it with any change a page of the previous deploy would draw wrongly.
PROTOCOL_VERSION = 1
# At most this many missed messages are replayed to a reconnecting client; further behind, it gets a
# snapshot (cheaper, and the same result: messages carry current state).
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


class LiveStore:
    """The sequence and the replay buffer, kept in the database (livelog) by the one publisher: they
    survive a Redis restart, and every ASGI process reads the same ones. A message's number is its
    row's id, so numbers only grow; `stream` changes only with a new database."""

    def current_seq(self) -> int:
        return live_current_seq()

    def stream_id(self) -> str:
        return live_stream_name()

    def remember(self, group: str, message: dict) -> dict:
        """Store `message` for `group`; returns it numbered."""
        return live_message_append(group, message)

    def remember_many(self, messages: list[tuple[str, dict]]) -> list[dict]:
        """Store (group, message) pairs in one write; returns the messages numbered, in order."""
        return live_messages_append(messages)

    def since(self, groups, seq: int) -> tuple[list[dict], bool]:
        """Messages of `groups` (a group name or several) after `seq`, and whether the log reaches back
        far enough to be complete."""
        if isinstance(groups, str):
            groups = [groups]
        return live_messages_since(groups, seq, limit=REPLAY_DEPTH)


_store = LiveStore()


def live_store() -> LiveStore:
    return _store


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
    *,
    seq: int,
    stream: str,
    layers: list[str],
    features: list[dict] | None = None,
    feature_texts: list[str] | None = None,
    shelters: list[dict] | None = None,
) -> list[str]:
    """A websocket snapshot as JSON text frames, each at most SNAPSHOT_PART_BYTES (UTF-8) and
    SNAPSHOT_PART_ITEMS features and shelters:

        {"type": "snapshot", "seq", "stream", "part": i, "parts": n, "layers", "features": [...]
         [, "shelters": [...]]}

    Parts are numbered from 0; every part has the same seq, stream and layers, and `shelters` is in
    every part when the shelters layer was asked for (possibly empty). The client applies the
    snapshot only once it holds all `parts`. A single item bigger than a part (not a real station)
    travels alone in its own part rather than being dropped. The features come as dicts, or already
    encoded as JSON text (`feature_texts`, as dashboard.features keeps them).
    """

    def encode(value) -> str:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)

    items = [("features", encode(feature)) for feature in features or ()]
    items += [("features", text) for text in feature_texts or ()]
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


# One snapshot per (sequence number, stream, layers, audience), for a few seconds: the same bytes for
# every reader of that audience, valid only while nothing newer was published (a new number is a new
# key) and while `stale` flags judged at build time still hold.
SHARED_SNAPSHOT_SECONDS = 5.0
SHARED_SNAPSHOT_KEYS = 64
_shared_snapshot: dict[tuple, tuple[float, list[str]]] = {}
_shared_snapshot_building: dict[tuple, threading.Event] = {}
_shared_snapshot_lock = threading.Lock()


def snapshot_audience(viewer: Viewer) -> tuple:
    """What a viewer's snapshot depends on: viewers with equal keys see the same stations with the
    same properties (`station_list` restricts by these fields only; `show_sharing` is `is_member`)."""
    if viewer.is_platform_admin:
        return ("platform",)
    return ("towns", tuple(sorted(viewer.municipality_ids)))


def shared_snapshot(key: tuple, build) -> list[str]:
    """The frames of the snapshot for `key`, built by `build()` at most once per key and
    SHARED_SNAPSHOT_SECONDS in this process: concurrent readers of one key wait for the one build,
    readers of other keys do not wait for it."""
    while True:
        with _shared_snapshot_lock:
            cached = _shared_snapshot.get(key)
            if cached is not None and time.monotonic() - cached[0] < SHARED_SNAPSHOT_SECONDS:
                return cached[1]
            pending = _shared_snapshot_building.get(key)
            if pending is None:
                pending = _shared_snapshot_building[key] = threading.Event()
                break
        # Someone else builds it; a builder that failed leaves no frames, and the next one tries.
        pending.wait(timeout=60)
    try:
        frames = build()
        with _shared_snapshot_lock:
            now = time.monotonic()
            for old in [k for k, (at, _) in _shared_snapshot.items() if now - at >= SHARED_SNAPSHOT_SECONDS]:
                del _shared_snapshot[old]
            if len(_shared_snapshot) >= SHARED_SNAPSHOT_KEYS:
                del _shared_snapshot[min(_shared_snapshot, key=lambda k: _shared_snapshot[k][0])]
            _shared_snapshot[key] = (now, frames)
        return frames
    finally:
        with _shared_snapshot_lock:
            _shared_snapshot_building.pop(key, None)
        pending.set()


def _publish(group: str, message: dict) -> dict:
    """Number and store the message, then hand it to the channel layer. Runs inside the drain's
    transaction: if the channel layer is unreachable (Redis down) the error rolls the stored
    message back with it, and the change-log events stay pending and are published on retry."""
    return _publish_many([(group, message)])[0]


def _publish_many(messages: list[tuple[str, dict]]) -> list[dict]:
    """`_publish` for many (group, message) pairs: numbered and stored in one write, then sent in order."""
    if not messages:
        return []
    numbered = live_store().remember_many(messages)
    layer = get_channel_layer()

    async def send_all():
        for (group, _), message in zip(messages, numbered):
            await layer.group_send(group, {"type": "live.message", "message": message})

    async_to_sync(send_all)()
    return numbered


def publish_stations(station_ids) -> None:
    """One `stations` message per audience group for all these stations, as committed now."""
    if not station_ids:
        return
    audiences = station_audiences(station_ids)
    by_group: dict[str, list[dict]] = defaultdict(list)
    for pk, feature in live_features_of(station_ids, now=timezone.now()).items():
        groups = audience_of(*audiences[pk])
        feature = audience_feature(feature, show_sharing=groups != [PUBLIC_GROUP])
        for group in groups:
            by_group[group].append(feature)
    _publish_many([(group, {"type": "stations", "features": features}) for group, features in by_group.items()])


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
        _publish(group, {"type": "withdrawn", "stations": sorted(lost_codes)})
    publish_stations(station_ids)


def publish_to_audience(group: str, layer: str, message_type: str, payload: dict) -> dict:
    """For the other layers (alerts, shelters): delivered to connections subscribed to `layer`."""
    if layer not in LAYERS:
        raise ValueError(f"unknown layer {layer!r}")
    return _publish(group, {"type": message_type, "layer": layer, **payload})


# --- alerts -------------------------------------------------------------------------------------

PUBLIC_ALERT_MIN_LEVEL = 3


def publish_alert_events(event_ids) -> None:
    """Alert events to the alert groups of every town that may see the station, and to the public
    (level 3 and up only, without who on the staff acted), each as a sequenced `alert` message."""
    events = events_for_notification(event_ids)
    if not events:
        return
    groups = live_groups_for_stations({event.alert.station_id for event in events})
    messages: list[tuple[str, dict]] = []
    for event in events:
        document = notification_document(event)
        alert = {**document["alert"], "event": document["event"]}
        for group in groups.get(event.alert.station_id, []):
            if group == live_group(None):
                if (alert.get("peak_level") or 0) < PUBLIC_ALERT_MIN_LEVEL:
                    continue
                if alert.get("unconfirmed") or event.metrics.get("unconfirmed") or event.metrics.get("withdrawn"):
                    continue  # QC: an unconfirmed raise and its withdrawal are for HQ only
                payload = {**alert, "event": {**alert["event"], "actor": None}}
            else:
                payload = alert
            messages.append((group, {"type": "alert", "layer": "alerts", "alert": payload}))
    _publish_many(messages)


# --- dam release notices -----------------------------------------------------------------------


def publish_releases(release_ids) -> None:
    """Dam release notices are public: one `releases` message to everyone with their current state
    (an ended notice says so, and the map takes it away)."""
    from releases.selectors import release_document, releases_by_ids

    documents = [release_document(release) for release in releases_by_ids(release_ids)]
    if documents:
        publish_to_audience(PUBLIC_GROUP, "releases", "releases", {"releases": documents})


# --- the change-log handler ----------------------------------------------------------------------


def live_events_publish(events: list[tuple[str, dict]]) -> None:
    """The one live publisher: every change of a drain batch, coalesced — visibility changes first
    (so a viewer who lost a station hears `withdrawn` before anything else), then one `stations`
    message per audience, alert events, one `shelters` message, then orders (dashboard.live_orders)."""
    from sensors.services import STATION_CHANGED, VISIBILITY_CHANGED

    from releases.services import RELEASE_CHANGED

    from .live_geo import SHELTER_CHANGED, publish_shelters
    from .live_orders import ORDER_KINDS, publish_order_events

    order_events = [(kind, payload) for kind, payload in events if kind in ORDER_KINDS]
    before: dict[int, tuple[str, frozenset[int]]] = {}
    stations: set[int] = set()
    alert_events: list[int] = []
    shelters: set[int] = set()
    releases: set[int] = set()
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
        elif kind == RELEASE_CHANGED:
            releases.update(payload.get("releases", []))
    if before:
        publish_visibility_change(sorted(before), before)
        stations -= set(before)  # published with their new audience just now
    publish_stations(sorted(stations))
    if alert_events:
        publish_alert_events(list(dict.fromkeys(alert_events)))
    if shelters:
        publish_shelters(sorted(shelters))
    if releases:
        publish_releases(sorted(releases))
    if order_events:
        publish_order_events(order_events)
