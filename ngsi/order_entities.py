"""Evacuation orders (orders/) as NGSI-v2 entities of the Smart Data Models type `Alert`.

Why `Alert`, as for dam release notices (release_entities): an order is an alert issued by someone
(`alertSource`: the issuing town) for an area (`location`: its districts), valid from its issue until
it is lifted (`validFrom` / `validTo`), with a severity. Category `naturalDisaster`, subCategory
`flood`: the orders this platform issues are decided on river levels. The order's own facts keep
camelCase names of their own (`evacuationLevel`, `districts`, `shelters`, `triggeredBy`, `inForce`,
`capUrl`); its official words (`name` 避難指示 ..., `alternateName`, `description` what to do) come
from the level scheme the order was issued under, never from here.

Ids are ours: `urn:ngsi-ld:Alert:order-<n>`. Read-only: an order is issued by a town's operator
through the REST API or the HQ board (with its confirmation step), never by a gateway.

Who sees what is the orders selectors' (orders are public; the triggering gauges are listed only
when the reader may see them), so an NGSI reader sees what the same viewer sees on `/api/v1/orders`.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.utils import timezone
from shapely.geometry import shape

from orders.documents import districts_geometry
from orders.models import Order
from orders.selectors import evidence_stations, order_get, order_list, order_words
from tenancy.selectors import Viewer

from .entities import ID_PREFIX, Attribute, entity_id_of, orion_safe_text
from .errors import NotFound

ALERT_TYPE = "Alert"
ORDER_ID_PREFIX = f"{ID_PREFIX}{ALERT_TYPE}:order-"
CATEGORY, SUB_CATEGORY = "naturalDisaster", "flood"
# The model's severity scale, by order level: 高齢者等避難 medium, 避難指示 high, 緊急安全確保 critical.
SEVERITY = {3: "medium", 4: "high", 5: "critical"}
LIFTED_SEVERITY = "informational"
NOT_FOUND = "The requested entity has not been found. Check type and id"


@dataclass
class OrderEntity:
    id: str
    type: str
    lon: float
    lat: float
    attrs: dict[str, Attribute]

    @property
    def changed_by_a_reading(self) -> tuple[str, ...]:
        # Every step of an order (issue, raise, extend, lift) rewrites the entity as a whole.
        return tuple(self.attrs)


def _time(value) -> str | None:
    return timezone.localtime(value).isoformat() if value else None


def order_entity(order: Order, *, viewer: Viewer) -> OrderEntity:
    text = orion_safe_text
    words = order_words(order.level, order.level_scheme)
    districts = list(order.districts.all())
    geometry = districts_geometry(districts)
    point = shape(geometry).representative_point() if geometry else None
    lon, lat = (point.x, point.y) if point is not None else (None, None)
    in_force = order.lifted_at is None
    gauges = evidence_stations(viewer=viewer, events=list(order.events.all()))
    site = settings.SITE_URL.rstrip("/")
    attrs = {
        "category": Attribute("Text", CATEGORY),
        "subCategory": Attribute("Text", SUB_CATEGORY),
        "severity": Attribute("Text", SEVERITY[order.level] if in_force else LIFTED_SEVERITY),
        "name": Attribute("Text", text(words.title_ja)),
        "alternateName": Attribute("Text", text(words.title_en)),
        "description": Attribute("Text", text(f"{words.action_ja} / {words.action_en}")),
        "alertSource": Attribute("Text", text(order.municipality.slug)),
        "dataProvider": Attribute("Text", text(order.municipality.slug)),
        "dateIssued": Attribute("DateTime", _time(order.issued_at)),
        "dateModified": Attribute("DateTime", _time(order.updated_at)),
        "validFrom": Attribute("DateTime", _time(order.issued_at)),
        "validTo": Attribute("DateTime", _time(order.lifted_at)),
        "location": Attribute("geo:json", geometry),
        "evacuationLevel": Attribute("Number", order.level),
        "levelScheme": Attribute("Text", text(words.scheme or "")),
        "districts": Attribute(
            "StructuredValue",
            [{"code": d.code, "nameJa": text(d.name_ja), "nameEn": text(d.name_en)} for d in districts],
        ),
        "shelters": Attribute(
            "StructuredValue",
            [
                {"code": s.code, "nameJa": text(s.name_ja), "nameEn": text(s.name_en), "status": s.status,
                 "location": {"type": "Point", "coordinates": [s.lon, s.lat]}}
                for s in sorted(order.shelters.all(), key=lambda shelter: shelter.code)
            ],
        ),
        "triggeredBy": Attribute("StructuredValue", [entity_id_of(station) for station in gauges]),
        "inForce": Attribute("Boolean", in_force),
        "capUrl": Attribute("Text", f"{site}/api/v1/orders/{order.pk}/cap"),
    }
    return OrderEntity(id=f"{ORDER_ID_PREFIX}{order.pk}", type=ALERT_TYPE, lon=lon, lat=lat, attrs=attrs)


def is_order_id(entity_id: str) -> bool:
    return isinstance(entity_id, str) and entity_id.startswith(ORDER_ID_PREFIX)


def order_number(entity_id: str) -> int | None:
    number = entity_id[len(ORDER_ID_PREFIX):] if is_order_id(entity_id) else ""
    if not number.isascii() or not number.isdigit() or len(number) > 18:
        return None
    return int(number)


def order_entity_get(entity_id: str, *, viewer: Viewer) -> OrderEntity:
    """One order the viewer may see, in force or lifted (a consumer needs to see it end)."""
    number = order_number(entity_id)
    if number is None:
        raise NotFound(NOT_FOUND)
    try:
        return order_entity(order_get(viewer=viewer, order_id=number), viewer=viewer)
    except Order.DoesNotExist:
        raise NotFound(NOT_FOUND) from None


def order_entities(*, viewer: Viewer) -> list[OrderEntity]:
    """The orders in force the viewer may see (`GET /v2/entities?type=Alert`)."""
    return [order_entity(order, viewer=viewer) for order in order_list(viewer=viewer)]


def order_entities_changed(*, viewer: Viewer, ids) -> list[OrderEntity]:
    """These orders as the viewer may see them, lifted ones included (a subscriber hears of the lift)."""
    entities = []
    for order_id in sorted(ids):
        try:
            entities.append(order_entity(order_get(viewer=viewer, order_id=order_id), viewer=viewer))
        except Order.DoesNotExist:
            continue
    return entities
