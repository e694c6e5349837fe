"""Shelters on the live map: the one feature shape, and telling every browser when a shelter changes.

The same `shelter_feature` is drawn on the page, sent in the websocket snapshot and in live
`shelters` messages, so a marker patched by static/mizumori/live.js looks exactly like one the
server drew. Shelter status is public information, so every change goes to `live.public`, the
group every connection joins:

    {"type": "shelters", "layer": "shelters", "seq": n, "features": [<shelter_feature>, ...]}

Publishing is triggered by the Shelter post_save receiver (dashboard.signals), after the
transaction commits: the HQ status endpoint, the admin and any other save all reach browsers
the same way, and a rolled-back change never does.
"""

from __future__ import annotations

import threading
from typing import Iterable

from django.db import transaction

from geo.models import Shelter
from geo.selectors import shelter_list
from sensors.selectors import local_iso

from . import live
from .maps import shelter_display

SHELTER_LAYER = "shelters"


def shelter_feature(shelter: Shelter) -> dict:
    """A GeoJSON Feature for one shelter (needs shelter.municipality loaded) with its display strings."""
    return {
        "type": "Feature",
        "id": shelter.code,
        "geometry": {"type": "Point", "coordinates": [shelter.lon, shelter.lat]},
        "properties": {
            "code": shelter.code,
            "name_ja": shelter.name_ja,
            "name_en": shelter.name_en,
            "municipality": shelter.municipality.slug,
            "capacity": shelter.capacity,
            "status": shelter.status,
            "status_updated_at": local_iso(shelter.status_updated_at),
            "display": shelter_display(shelter),
        },
    }


def shelter_features(shelters: Iterable[Shelter]) -> list[dict]:
    return [shelter_feature(shelter) for shelter in shelters]


def shelter_snapshot() -> list[dict]:
    """Every shelter, for the websocket snapshot (one query)."""
    return shelter_features(shelter_list())


def publish_shelters(shelter_ids: Iterable[int]) -> dict | None:
    """One `shelters` message with the current state of these shelters (read fresh: what was
    committed is what is sent), or None when none of them exists any more."""
    features = shelter_features(shelter_list(ids=shelter_ids))
    if not features:
        return None
    return live.publish_to_audience(live.PUBLIC_GROUP, SHELTER_LAYER, SHELTER_LAYER, {"features": features})


# --- after commit, coalesced --------------------------------------------------------------------

_pending = threading.local()


def _pending_ids() -> set[int]:
    if not hasattr(_pending, "ids"):
        _pending.ids = set()
    return _pending.ids


def shelter_changed(shelter_id: int) -> None:
    """Publish this shelter once the current transaction commits (at once outside a transaction).

    Saves in one transaction (a seed, a bulk admin action) become one message: the first commit
    callback sends every shelter pending in this thread and the later ones find nothing left. If
    a transaction rolls back, its ids stay pending and go out with the next commit; that is
    harmless, as a message always carries the shelter's current committed state.
    """
    _pending_ids().add(shelter_id)
    # robust: the change is already committed; a channel layer that is down must not turn the
    # operator's successful save into an error page. Django logs the failure.
    transaction.on_commit(_publish_pending, robust=True)


def _publish_pending() -> None:
    pending = _pending_ids()
    if not pending:
        return
    shelter_ids = sorted(pending)
    pending.clear()
    publish_shelters(shelter_ids)
