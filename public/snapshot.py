"""The public snapshot document: everything the public page shows, public data only, built at most
once per publish tick for the whole deployment and served as the same bytes to every reader.

    {"version": 2, "seq", "stream", "tick", "mode": "map" | "minimal", "notice": null | {"ja", "en"},
     "live": {"transport": "websocket" | "poll", "interval": <tick seconds>, "websocket": <path>},
     "layers": [...], "threshold_sets": {<key>: [<thresholds>]},
     "features": [<public station features, `thresholds` named by `threshold_set`: <key>>],
     "alerts": [<public alert documents>], "shelters": [<shelter features>], <registered sections>}

The stations' thresholds are a table: thousands of stations share a few standard sets, which made up
more than half of the document's bytes and of the browser's time parsing it. Each feature names its
set by key (a digest of the set's JSON, so the same set has the same key in every build) and the
page puts the list back before drawing (static/mizumori/public.js), so the map reads the features as
the live `stations` messages carry them.

Sections beyond the stations are registered by name (`register_section`), so another app (the
towns' evacuation orders, for one) adds its public part in its own AppConfig.ready() without
touching this module; the page script hands every section to the renderers registered for it
(static/mizumori/public.js, `Mizumori.publicSections`).

Building reads as ANONYMOUS through the same selectors as every other public door, so nothing shared
only between towns can reach it. One process builds per tick (a cache lock); the others serve the
previous bytes meanwhile, then pick the new ones up from the shared cache.
"""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Callable, Iterable

from django.conf import settings

from dashboard.live import STATION_LAYERS, live_store

from dashboard.features import Entry, audience_features, encode, forget_audiences
from tenancy.selectors import ANONYMOUS

from . import load as load_module
from .tick_cache import JSON, Built, Encoded, TickCache

NOTICE = {
    "ja": "アクセスが集中しているため、簡易表示に切り替えています。情報は引き続き自動で更新されます。",
    "en": "The site is very busy, so this page shows a simplified list. It still updates automatically.",
}

SectionBuilder = Callable[[], object]
SECTIONS: dict[str, SectionBuilder] = {}
RESERVED_KEYS = {"version", "seq", "stream", "tick", "mode", "notice", "live", "layers", "threshold_sets", "features"}
VERSION = 2


def register_section(name: str, builder: SectionBuilder) -> None:
    """Adds `name` to the document, built by `builder()` (public data only: it runs for every reader)."""
    if name in RESERVED_KEYS:
        raise ValueError(f"{name!r} is a key of the document itself")
    SECTIONS[name] = builder


def public_alert_documents() -> list[dict]:
    from alerts.selectors import alert_document
    from dashboard.alert_views import public_alerts

    return [alert_document(alert) for alert in public_alerts()]


def public_shelter_features() -> list[dict]:
    from dashboard.live_geo import shelter_snapshot

    return shelter_snapshot()


def register_builtin_sections() -> None:
    register_section("alerts", public_alert_documents)
    register_section("shelters", public_shelter_features)


def tick_seconds() -> int:
    return max(1, int(settings.PUBLIC_SNAPSHOT_TICK_SECONDS))


def public_station_features():
    return audience_features(ANONYMOUS, show_sharing=False)


class ThresholdTable:
    """Each station feature of the document with its thresholds replaced by the key of their set,
    kept per process for as long as the feature is: features are replaced, never changed, when a
    station changes (dashboard.features.Entry), so a tick splits only the stations that changed."""

    def __init__(self):
        self._split: dict[int, tuple[Entry, str, str | None, str]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def split(entry: Entry) -> tuple[str, str | None, str]:
        """(the feature without thresholds, the key of its set, the set as JSON); a feature without
        thresholds stays as it is (key None)."""
        feature = json.loads(entry.text)
        properties = feature.get("properties") or {}
        if "thresholds" not in properties:
            return entry.text, None, ""
        thresholds = encode(properties.pop("thresholds"), sort_keys=True)
        key = hashlib.sha256(thresholds.encode()).hexdigest()[:16]
        properties["threshold_set"] = key
        return encode(feature, sort_keys=True), key, thresholds

    def document_parts(self, entries: Iterable[Entry]) -> tuple[str, str]:
        """(the `features` array, the `threshold_sets` object) as JSON text."""
        with self._lock:
            previous, split = self._split, {}
            features, sets = [], {}
            for entry in entries:
                kept = previous.get(id(entry))
                if kept is None or kept[0] is not entry:
                    kept = (entry, *self.split(entry))
                split[id(entry)] = kept  # the entry itself is held: its id is not reused meanwhile
                _, text, key, thresholds = kept
                if key is not None and sets.setdefault(key, thresholds) != thresholds:
                    raise RuntimeError(f"two threshold sets share the key {key}")  # 64-bit digest: not expected
                features.append(text)
            self._split = split
        table = "{" + ",".join(f'"{key}":{text}' for key, text in sets.items()) + "}"
        return "[" + ",".join(features) + "]", table


THRESHOLDS = ThresholdTable()


def public_snapshot_text(load: load_module.Load) -> str:
    """The document as JSON text. Its station features are the anonymous audience's, kept up to date
    from the live publisher's messages (dashboard.features), so a tick costs what changed, not every
    station."""
    store = live_store()
    # Read before the stations, as dashboard.live.page_snapshot does: anything published meanwhile
    # is newer than this number and reaches a websocket reader on resume.
    seq, stream = store.current_seq(), store.stream_id()
    mode = load_module.page_mode(load)
    transport = load_module.live_transport(load, mode)
    head = {
        "version": VERSION,
        "seq": seq,
        "stream": stream,
        "tick": tick_seconds(),
        "mode": mode,
        "notice": NOTICE if mode == load_module.MINIMAL else None,
        "live": {"transport": transport, "interval": tick_seconds(), "websocket": "/ws/live/?view=public"},
        "layers": list(STATION_LAYERS),
    }
    features, threshold_sets = THRESHOLDS.document_parts(public_station_features().current(seq=seq, stream=stream).entries)
    sections = {name: builder() for name, builder in SECTIONS.items()}
    text = encode(head)[:-1] + ',"threshold_sets":' + threshold_sets + ',"features":' + features
    return text + ("," + encode(sections)[1:] if sections else "}")


def encoded_snapshot() -> Encoded:
    return Encoded(public_snapshot_text(load_module.current_load()).encode(), JSON)


class SnapshotCache(TickCache):
    def forget(self) -> None:
        super().forget()
        forget_audiences()


SNAPSHOT = SnapshotCache("snapshot", encoded_snapshot, period=tick_seconds)


def public_snapshot(*, now: float | None = None) -> Built:
    return SNAPSHOT.get(now=now)
