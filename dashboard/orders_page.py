"""Evacuation orders on the map pages: what the public page and the HQ page render into the page
(templates/orders/) and what static/mizumori/orders.js draws from: orders in force as their API
features, every district, shelters with their status, and the official level colours (one home:
dashboard.maps.level_style)."""

from __future__ import annotations

from geo.selectors import shelter_list
from orders.documents import district_feature, draft_document, order_feature, recommendation_document
from orders.models import ORDER_LEVELS
from orders.selectors import district_list, order_draft_list, order_list, order_policy_of, recommendation_list
from tenancy.permissions import Action, permits
from tenancy.selectors import Viewer

from .maps import SHELTER_STATUSES, level_style

FLOOD = "flood"


def orders_page_data(viewer: Viewer) -> dict:
    orders = [order_feature(order, viewer=viewer) for order in order_list(viewer=viewer)]
    return {
        "orders": orders,
        "districts": [district_feature(district) for district in district_list()],
        "shelters": [
            {
                "code": s.code, "name_ja": s.name_ja, "name_en": s.name_en, "lon": s.lon, "lat": s.lat,
                "status": s.status, "municipality": s.municipality.slug,
                # Orders here are flood orders (river gauges, flood warnings): a shelter the national
                # dataset marks as not designated for floods is never suggested (null: not known).
                "for_flood": s.suitable_for(FLOOD),
            }
            for s in shelter_list()
        ],
        # A shelter's status in words ([ja, en]), as its marker says it (one home: dashboard.maps).
        "shelter_statuses": {status: [style.name_ja, style.name_en] for status, style in SHELTER_STATUSES.items()},
        "styles": {
            str(level): {"fill": style.fill, "text": style.text, "stroke": style.stroke, "badge": style.badge}
            for level, style in ((level, level_style(level)) for level in ORDER_LEVELS)
        },
    }


def hq_orders_board(viewer: Viewer, username: str = "") -> dict:
    """The recommendations and drafts (waiting for a second operator) of the acting town, whether this
    viewer may act on them, and who they are (a drafter cannot confirm their own draft)."""
    from tenancy.models import Municipality

    recommendations = recommendation_list(viewer=viewer)
    town = Municipality.objects.filter(pk=viewer.acting_municipality_id).first() if viewer.acting_municipality_id else None
    return {
        "municipality": town.slug if town else None,
        "recommendations": [recommendation_document(r) for r in recommendations],
        "drafts": [draft_document(d) for d in order_draft_list(viewer=viewer)],
        "second_person": bool(getattr(order_policy_of(viewer.acting_municipality_id), "second_person", False)),
        "username": username,
        "may_issue": viewer.is_platform_admin or (town is not None and permits(viewer, Action.ISSUE_ORDER, town)),
    }
