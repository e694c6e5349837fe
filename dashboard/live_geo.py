"""Shelters on the live map: the one feature shape, and telling every browser when a shelter changes.

The same `shelter_feature` is drawn on the page, sent in the websocket snapshot and in live
`shelters` messages, so a marker patched by static/mizumori/live.js looks exactly like one the
server drew. Shelter status is public information, so every change goes to `live.public`, the
group every connection joins:

    {"type": "shelters", "layer": "shelters", "seq": n, "features": [<shelter_feature>, ...]}

Publishing is triggered by the Shelter post_save receiver (dashboard.signals), which puts a
`shelter.changed` event in the change log in the saving transaction: the HQ status endpoint, the
admin and any other save all reach browsers the same way, and a rolled-back change never does.
"""

from __future__ import annotations

from typing import Iterable

from events import emit
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
            "address": shelter.address,
            "status": shelter.status,
            "status_updated_at": local_iso(shelter.status_updated_at),
            # Designated for floods (the national dataset's 洪水; null: not known): residents' "nearest
            # open shelter" passes over one marked as not designated, as the orders' suggestions do.
            "for_flood": shelter.suitable_for("flood"),
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


SHELTER_CHANGED = "shelter.changed"


def shelter_changed(shelter_id: int) -> None:
    """Put this shelter's change in the change log with the transaction that saved it; the live
    publisher (dashboard.live.live_events_publish) sends every shelter changed in a drain batch as
    one message, with the state committed by then."""
    emit(SHELTER_CHANGED, {"shelters": [shelter_id]})
