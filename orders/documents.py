"""The one shape of a district and of an order, as the API, the live layer and the pages carry them."""

from __future__ import annotations

from django.conf import settings

from sensors.selectors import local_iso
from tenancy.selectors import Viewer

from .models import District, Order, OrderDraft, OrderEvent, Recommendation
from .selectors import evidence_stations, order_history_visible, order_words, pending_drafts_of


def district_feature(district: District) -> dict:
    return {
        "type": "Feature",
        "id": district.code,
        "geometry": district.geometry,
        "properties": {
            "code": district.code,
            "name_ja": district.name_ja,
            "name_en": district.name_en,
            "municipality": district.municipality.slug,
        },
    }


def districts_geometry(districts) -> dict | None:
    """The districts as one MultiPolygon (their polygons side by side, not dissolved)."""
    polygons = []
    for district in districts:
        geometry = district.geometry or {}
        if geometry.get("type") == "Polygon":
            polygons.append(geometry["coordinates"])
        elif geometry.get("type") == "MultiPolygon":
            polygons.extend(geometry["coordinates"])
    return {"type": "MultiPolygon", "coordinates": polygons} if polygons else None


def event_document(event: OrderEvent) -> dict:
    return {
        "id": event.pk,
        "kind": event.kind,
        "level": event.level,
        "districts": event.districts,
        "shelters": event.shelters,
        "reason": event.reason,
        "evidence": event.evidence,
        "at": local_iso(event.at),
        "actor": event.actor_name or None,
        "cap_url": f"/api/v1/orders/{event.order_id}/cap?event={event.pk}",
    }


def order_feature(order: Order, *, viewer: Viewer) -> dict:
    """An order as a GeoJSON Feature (geometry: its districts). `gauges` lists only the triggering
    gauges the viewer may see; `events` (who acted, on what evidence) only for the owning town's staff.
    An order of selectors.order_list_at is drawn as it stood then (its districts, shelters and steps then)."""
    words = order_words(order.level, order.level_scheme)
    as_of = hasattr(order, "steps_then")
    districts = order.districts_then if as_of else list(order.districts.all())
    events = order.steps_then if as_of else list(order.events.all())
    linked = order.shelters_then if as_of else sorted(order.shelters.all(), key=lambda shelter: shelter.code)
    gauges = [
        {
            "code": station.code,
            "name_ja": station.name_ja,
            "name_en": station.name_en,
            "lon": station.lon,
            "lat": station.lat,
            "url": f"/stations/{station.code}/",
        }
        for station in evidence_stations(viewer=viewer, events=events)
    ]
    properties = {
        "id": order.pk,
        "level": order.level,
        "municipality": order.municipality.slug,
        "municipality_name_ja": order.municipality.name_ja,
        "municipality_name_en": order.municipality.name_en,
        "name_ja": words.name_ja,
        "name_en": words.name_en,
        "title_ja": words.title_ja,
        "title_en": words.title_en,
        "action_ja": words.action_ja,
        "action_en": words.action_en,
        "level_scheme": words.scheme,
        "districts": [{"code": d.code, "name_ja": d.name_ja, "name_en": d.name_en} for d in districts],
        "shelters": [
            {
                "code": s.code, "name_ja": s.name_ja, "name_en": s.name_en, "status": s.status,
                "lon": s.lon, "lat": s.lat,
            }
            for s in linked
        ],
        "gauges": gauges,
        "reason": order.reason,
        "issued_at": local_iso(order.issued_at),
        "updated_at": local_iso(order.updated_at),
        "lifted_at": local_iso(order.lifted_at),
        "in_force": order.lifted_at is None,
        "cap_url": f"{settings.SITE_URL.rstrip('/')}/api/v1/orders/{order.pk}/cap",
    }
    if order_history_visible(viewer=viewer, order=order):
        properties["events"] = [event_document(event) for event in events]
    return {"type": "Feature", "id": order.pk, "geometry": districts_geometry(districts), "properties": properties}


def recommendation_document(recommendation: Recommendation) -> dict:
    """A recommendation as the HQ board and its live messages carry it (the owning town's staff only)."""
    words = order_words(recommendation.level)
    return {
        "id": recommendation.pk,
        "municipality": recommendation.municipality.slug,
        "level": recommendation.level,
        "title_ja": words.title_ja,
        "title_en": words.title_en,
        "districts": [{"code": d.code, "name_ja": d.name_ja, "name_en": d.name_en} for d in recommendation.districts.all()],
        "evidence": recommendation.evidence,
        "state": recommendation.state,
        "created_at": local_iso(recommendation.created_at),
        "handled_at": local_iso(recommendation.handled_at),
        "dismiss_reason": recommendation.dismiss_reason,
        "order": recommendation.order_id,
        "draft": _draft_summary(pending_drafts_of([recommendation.pk]).get(recommendation.pk)),
    }


def _draft_summary(draft: OrderDraft | None) -> dict | None:
    if draft is None:
        return None
    return {"id": draft.pk, "drafted_by": draft.drafted_by_name, "drafted_at": local_iso(draft.drafted_at)}


def draft_document(draft: OrderDraft) -> dict:
    """An order waiting for a second operator (the town's staff only): what will be issued on confirm."""
    words = order_words(draft.level)
    return {
        "id": draft.pk,
        "municipality": draft.municipality.slug,
        "level": draft.level,
        "title_ja": words.title_ja,
        "title_en": words.title_en,
        "districts": [{"code": d.code, "name_ja": d.name_ja, "name_en": d.name_en} for d in draft.districts.all()],
        "shelters": sorted(s.code for s in draft.shelters.all()),
        "open_shelters": draft.open_shelters,
        "reason": draft.reason,
        "evidence": draft.evidence,
        "recommendation": draft.recommendation_id,
        "state": draft.state,
        "drafted_by": draft.drafted_by_name,
        "drafted_at": local_iso(draft.drafted_at),
        "handled_by": draft.handled_by_name or None,
        "handled_at": local_iso(draft.handled_at),
        "withdraw_reason": draft.withdraw_reason,
        "order": draft.order_id,
    }


def order_document(order: Order, *, viewer: Viewer) -> dict:
    """One order as the write endpoints answer: the feature's properties, flat, and its geometry."""
    feature = order_feature(order, viewer=viewer)
    return {**feature["properties"], "geometry": feature["geometry"]}


def _town_viewer(municipality_id: int) -> Viewer:
    """What the issuing town's staff may see: their channels get what their board shows."""
    return Viewer(municipality_ids=frozenset({municipality_id}), role="viewer", acting_municipality_id=municipality_id)


def order_notification_documents(event_ids) -> dict[int, dict]:
    """What e-mail and webhooks send for each step of an order (alerts' delivery outbox):
    `{"order_event": <the step, its CAP version's absolute URL>, "order": <the order now, with the
    public page and HQ board URLs>}`. Links are absolute on SITE_URL (a mail is read outside the site)."""
    from django.urls import reverse

    site = settings.SITE_URL.rstrip("/")
    events = OrderEvent.objects.filter(pk__in=list(event_ids)).select_related(
        "order", "order__municipality", "order__level_scheme"
    )
    documents = {}
    for event in events:
        order = event.order
        words = order_words(event.level, order.level_scheme)
        step = event_document(event) | {
            "cap_url": f"{site}{reverse('api-order-cap', args=[order.pk])}?event={event.pk}",
            "name_ja": words.name_ja,
            "name_en": words.name_en,
            "title_ja": words.title_ja,
            "title_en": words.title_en,
            "district_names": [
                {"code": d.code, "name_ja": d.name_ja, "name_en": d.name_en}
                for d in District.objects.filter(code__in=event.districts).order_by("code")
            ],
        }
        documents[event.pk] = {
            "order_event": step,
            "order": order_document(order, viewer=_town_viewer(order.municipality_id))
            | {"page_url": f"{site}/", "board_url": f"{site}{reverse('dashboard-hq')}"},
        }
    return documents
