"""Evacuation orders and recommendations on the live layer (`orders`).

Orders are public, whoever's they are (a flood crosses borders): every change of an order goes to
`live.public`, the group every connection joins, as the order's feature for the public (no staff
history; `in_force` false once lifted, so pages drop it):

    {"type": "orders", "layer": "orders", "seq": n, "features": [<orders.documents.order_feature>, ...]}

Recommendations are the owning town's HQ business: they go to that town's group only:

    {"type": "recommendations", "layer": "orders", "seq": n, "recommendations": [<recommendation_document>, ...]}

So are orders drafted under the town's second-person rule, waiting for another operator:

    {"type": "order_drafts", "layer": "orders", "seq": n, "drafts": [<orders.documents.draft_document>, ...]}
"""

from __future__ import annotations

from orders.documents import draft_document, order_feature, recommendation_document
from orders.models import OrderDraft, Recommendation
from orders.selectors import order_list
from orders.services import DRAFT_CHANGED, ORDER_CHANGED, RECOMMENDATION_CHANGED
from tenancy.selectors import ANONYMOUS

from . import live

ORDER_LAYER = "orders"
ORDER_KINDS = (ORDER_CHANGED, RECOMMENDATION_CHANGED, DRAFT_CHANGED)


def publish_order_events(events: list[tuple[str, dict]]) -> None:
    """One `orders` message for every order changed in the batch, one `recommendations` message per town."""
    order_ids = sorted({int(pk) for kind, payload in events if kind == ORDER_CHANGED for pk in payload.get("orders", [])})
    recommendation_ids = sorted(
        {int(pk) for kind, payload in events if kind == RECOMMENDATION_CHANGED for pk in payload.get("recommendations", [])}
    )
    if order_ids:
        orders = order_list(viewer=live.PLATFORM, include_lifted=True, ids=order_ids)
        features = [order_feature(order, viewer=ANONYMOUS) for order in orders]
        if features:
            live.publish_to_audience(live.PUBLIC_GROUP, ORDER_LAYER, "orders", {"features": features})
    if recommendation_ids:
        by_town: dict[int, list[dict]] = {}
        rows = Recommendation.objects.filter(pk__in=recommendation_ids).select_related("municipality", "rule__station")
        for recommendation in rows.prefetch_related("districts").order_by("pk"):
            by_town.setdefault(recommendation.municipality_id, []).append(recommendation_document(recommendation))
        for town_id, documents in by_town.items():
            live.publish_to_audience(live.town_group(town_id), ORDER_LAYER, "recommendations", {"recommendations": documents})
    draft_ids = sorted({int(pk) for kind, payload in events if kind == DRAFT_CHANGED for pk in payload.get("drafts", [])})
    if draft_ids:
        drafts_by_town: dict[int, list[dict]] = {}
        rows = OrderDraft.objects.filter(pk__in=draft_ids).select_related("municipality")
        for draft in rows.prefetch_related("districts", "shelters").order_by("pk"):
            drafts_by_town.setdefault(draft.municipality_id, []).append(draft_document(draft))
        for town_id, documents in drafts_by_town.items():
            live.publish_to_audience(live.town_group(town_id), ORDER_LAYER, "order_drafts", {"drafts": documents})



