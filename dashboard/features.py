"""Station features per audience, kept up to date from what the live publisher publishes.

A map page (the public snapshot document, `/hq/`) and a websocket snapshot (dashboard.consumers) carry
the feature of every station their reader may see. Building them all (each station's state, thresholds and trend readings) takes seconds at 2,000
stations, longer than the public page's publish tick on a loaded machine, and every tick and every
board load did it again although a tick changes a few stations. The live publisher already builds
the feature of every station that changed, once per drain batch, for each audience group, and keeps
the message in the live log (the one a websocket reader resumes from). So each audience's features
are kept here as encoded JSON text, and brought up to date by applying only the messages of that
audience's groups published since the last look: the work is proportional to the stations that
changed. Everything is built afresh, through the viewer's selector, only when what changed cannot
be known from the messages:

- on first use in this process, or when the live log's stream changed (another database);
- when the station catalog changed (`sensors.catalog` stamp, moved by database triggers on any write
  to stations and thresholds: a station added, renamed, made private or public, a threshold edited);
- when more messages are waiting than the log replays, or some were trimmed already;
- every FULL_REBUILD_SECONDS (setting PUBLIC_SNAPSHOT_FULL_REBUILD_SECONDS), a safety net for a
  change that reached no live message.

Who sees what: an audience is `snapshot_audience(viewer)` with whether sharing is shown, the same key
the websocket snapshot is shared by; its features come only from `map_stations(viewer=...)` and from
the messages of `audience_groups(viewer)`, exactly what that viewer's socket receives.

Whether a reading is stale is a matter of time, not of messages: each look judges again the features
whose `stale_after` has passed (`sensors.selectors.stale_at`), as the page itself does.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.utils import timezone, translation

from sensors.catalog import current_stamp
from sensors.selectors import stale_at
from tenancy.models import Municipality
from tenancy.selectors import Viewer

from .live import audience_feature, audience_groups, live_store, snapshot_audience
from .selectors import NOTICE_LEVEL, features_needing_notice, map_stations

# As Django's json_script: no raw <, > or & in the text, so no browser or proxy that sniffs it as
# HTML finds markup in a station's name (the text goes into pages and the public document).
JSON_ESCAPES = {ord("<"): "\\u003c", ord(">"): "\\u003e", ord("&"): "\\u0026"}
# Audiences kept per process (each ~2 KB of text per station); the least recently used goes first.
MAX_AUDIENCES = 16


def encode(value, *, sort_keys: bool = False) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=sort_keys).translate(JSON_ESCAPES)


@dataclass(frozen=True)
class Entry:
    text: str  # the feature as JSON
    kind: str | None  # the station's layer (live.STATION_LAYERS)
    level: int | None
    point: tuple[float, float] | None  # (lat, lon)
    town: str | None  # the owner town's slug: a town without a boundary is outlined from its points
    stale_after: datetime | None  # when it turns stale; None once stale, or never by time

    @classmethod
    def of(cls, feature: dict) -> "Entry":
        properties = feature.get("properties") or {}
        stale_after = None
        if not properties.get("stale") and properties.get("stale_after"):
            stale_after = datetime.fromisoformat(properties["stale_after"])
        coordinates = (feature.get("geometry") or {}).get("coordinates") or ()
        point = (coordinates[1], coordinates[0]) if len(coordinates) == 2 else None
        level = properties.get("level")
        # Keys sorted: a feature read back from the live log (PostgreSQL's jsonb keeps no key order)
        # gives the same text as the one built here.
        text = encode(feature, sort_keys=True)
        return cls(
            text,
            properties.get("kind"),
            level if isinstance(level, int) else None,
            point,
            properties.get("municipality"),
            stale_after,
        )

    def feature(self) -> dict:
        return json.loads(self.text)


@dataclass(frozen=True)
class Features:
    """One audience's features at one moment (ordered by station code as first built)."""

    entries: tuple[Entry, ...]

    def json_array(self) -> str:
        return "[" + ",".join(entry.text for entry in self.entries) + "]"

    def texts(self, kinds) -> list[str]:
        """The features (as JSON) of the stations of these kinds: a websocket snapshot's layers."""
        return [entry.text for entry in self.entries if entry.kind in kinds]

    def points_by_town(self) -> dict[str, list[tuple[float, float]]]:
        """{town slug: [(lat, lon)]} of the stations this audience sees."""
        points: dict[str, list[tuple[float, float]]] = {}
        for entry in self.entries:
            if entry.point is not None:
                points.setdefault(entry.town or "", []).append(entry.point)
        return points

    def needing_notice(self, min_level: int = NOTICE_LEVEL) -> list[dict]:
        """`features_needing_notice`, decoding only the features that can be among them."""
        maybe = [entry.feature() for entry in self.entries if entry.level is not None and entry.level >= min_level]
        return features_needing_notice(maybe, min_level=min_level)

    def __len__(self) -> int:
        return len(self.entries)


class AudienceFeatures:
    """One audience's station features in this process."""

    def __init__(self, viewer: Viewer, *, show_sharing: bool):
        self.viewer = viewer
        self.show_sharing = show_sharing
        self._lock = threading.Lock()
        self.forget()

    def forget(self) -> None:
        self._entries: dict[str, Entry] = {}
        self._seq: int | None = None
        self._stream: str | None = None
        self._stamp: int | None = None
        self._built_at = 0.0
        self.last_update = "none"  # "full" or "changes": how the last look got its features (bench, tests)

    def current(self, *, seq: int, stream: str, now: datetime | None = None) -> Features:
        """The features, current at least up to the live log's number `seq` (read by the caller
        before this, so anything published meanwhile reaches the reader on resume)."""
        now = timezone.now() if now is None else now
        with self._lock:
            stamp = current_stamp()
            if not self._apply_changes(stamp, stream):
                self._rebuild(seq, stream, stamp)
            self._seq = max(self._seq or 0, seq)
            self._judge_staleness(now)
            return Features(tuple(self._entries.values()))

    def _groups(self) -> list[str]:
        town_ids = Municipality.objects.values_list("pk", flat=True) if self.viewer.is_platform_admin else ()
        return audience_groups(self.viewer, town_ids)

    def _apply_changes(self, stamp: int | None, stream: str) -> bool:
        """Applies the audience's messages since the last look; False when a full build is needed."""
        if (
            self._seq is None
            or stamp is None
            or stamp != self._stamp
            or stream != self._stream
            or time.monotonic() - self._built_at >= float(settings.PUBLIC_SNAPSHOT_FULL_REBUILD_SECONDS)
        ):
            return False
        messages, complete = live_store().since(self._groups(), self._seq)
        if not complete:
            return False
        for message in messages:
            if message.get("type") == "stations":
                for feature in message.get("features", []):
                    self._entries[str(feature["id"])] = Entry.of(self._as_seen(feature))
            elif message.get("type") == "withdrawn":
                for code in message.get("stations", []):
                    self._entries.pop(str(code), None)
            self._seq = max(self._seq, int(message["seq"]))
        self.last_update = "changes"
        return True

    def _as_seen(self, feature: dict) -> dict:
        """The feature as this audience's full build has it. Only the public group's messages leave
        out whom a station is shared with (anyone may read them): a station without it is public."""
        if not self.show_sharing:
            return audience_feature(feature, show_sharing=False)
        if "visibility" not in feature["properties"]:
            return {**feature, "properties": {**feature["properties"], "visibility": "public"}}
        return feature

    def _rebuild(self, seq: int, stream: str, stamp: int | None) -> None:
        # In the site's language, as the live publisher builds its messages: the same text whichever
        # reader's request happened to start the build.
        with translation.override(settings.LANGUAGE_CODE):
            stations = map_stations(viewer=self.viewer)
            self._entries = {
                item.station.code: Entry.of(audience_feature(item.feature, show_sharing=self.show_sharing))
                for item in stations
            }
        self._seq, self._stream, self._stamp = seq, stream, stamp
        self._built_at = time.monotonic()
        self.last_update = "full"

    def _judge_staleness(self, now: datetime) -> None:
        for code, entry in self._entries.items():
            if entry.stale_after is not None and stale_at(entry.stale_after, now):
                feature = entry.feature()
                feature["properties"]["stale"] = True
                self._entries[code] = Entry.of(feature)


_audiences: OrderedDict[tuple, AudienceFeatures] = OrderedDict()
_audiences_lock = threading.Lock()


def audience_features(viewer: Viewer, *, show_sharing: bool) -> AudienceFeatures:
    """The features store of this viewer's audience (viewers of one audience see the same stations)."""
    key = (*snapshot_audience(viewer), show_sharing)
    with _audiences_lock:
        store = _audiences.get(key)
        if store is None:
            store = _audiences[key] = AudienceFeatures(viewer, show_sharing=show_sharing)
            while len(_audiences) > MAX_AUDIENCES:
                _audiences.popitem(last=False)
        _audiences.move_to_end(key)
        return store


def forget_audiences() -> None:
    """Every audience builds afresh on its next look (for tests)."""
    with _audiences_lock:
        _audiences.clear()
