"""CAP 1.2 messages for an evacuation order: one version per step of its life.

Issued → Alert; raised, lowered, districts changed → Update; lifted → Cancel. Updates and the Cancel
carry `references` to every earlier version. Each message has an `<info>` in ja-JP and one in en-US
with the official words of the order's level (from its level scheme), and one `<area>` per district
with the district's name and its polygons as "lat,lon" rings (alerts.cap.boundary_polygons).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from django.conf import settings

from alerts.cap import CAP_NS, boundary_polygons, cap_element, cap_time

from .models import District, Order, OrderEvent
from .selectors import order_words

MSG_TYPES = {
    OrderEvent.Kind.ISSUED: "Alert",
    OrderEvent.Kind.RAISED: "Update",
    OrderEvent.Kind.LOWERED: "Update",
    OrderEvent.Kind.EXTENDED: "Update",
    OrderEvent.Kind.LIFTED: "Cancel",
}
# Level → (responseType, urgency, severity); 緊急安全確保 means "secure safety where you are" (Shelter).
LEVEL_CAP = {3: ("Evacuate", "Expected", "Severe"), 4: ("Evacuate", "Immediate", "Severe"), 5: ("Shelter", "Immediate", "Extreme")}
STEP_WORDS = {
    OrderEvent.Kind.ISSUED: ("発令", "issued"),
    OrderEvent.Kind.RAISED: ("引き上げ", "raised"),
    OrderEvent.Kind.LOWERED: ("引き下げ", "lowered"),
    OrderEvent.Kind.EXTENDED: ("対象地区変更", "districts changed"),
    OrderEvent.Kind.LIFTED: ("解除", "lifted"),
}
LIFTED_INSTRUCTION = (
    "避難情報は解除されました。引き続き町からの情報に注意してください。",
    "The evacuation order has been lifted. Keep following your town's information.",
)


def cap_identifier(event: OrderEvent) -> str:
    return f"mizumori-order-{event.order_id}-{event.pk}"


def cap_reference(event: OrderEvent) -> str:
    return f"{settings.CAP_SENDER},{cap_identifier(event)},{cap_time(event.at)}"


def cap_message(order: Order, event: OrderEvent, earlier: list[OrderEvent]) -> bytes:
    """The CAP 1.2 XML of one version (`event`) of `order`; `earlier` are the versions before it."""
    town = order.municipality
    root = ET.Element(f"{{{CAP_NS}}}alert")
    cap_element(root, "identifier", cap_identifier(event))
    cap_element(root, "sender", settings.CAP_SENDER)
    cap_element(root, "sent", cap_time(event.at))
    cap_element(root, "status", "Actual")
    cap_element(root, "msgType", MSG_TYPES[event.kind])
    cap_element(root, "source", f"Mizumori {town.name_en}")
    cap_element(root, "scope", "Public")
    if earlier:
        cap_element(root, "references", " ".join(cap_reference(previous) for previous in earlier))
    cap_element(root, "incidents", f"mizumori-order-{order.pk}")
    districts = {d.code: d for d in District.objects.filter(code__in=event.districts).order_by("code")}
    for ja in (True, False):
        _info(root, order, event, [districts[c] for c in event.districts if c in districts], ja)
    ET.register_namespace("", CAP_NS)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def _info(root: ET.Element, order: Order, event: OrderEvent, districts: list[District], ja: bool) -> None:
    town = order.municipality
    words = order_words(event.level, order.level_scheme)
    lifted = event.kind == OrderEvent.Kind.LIFTED
    info = cap_element(root, "info")
    cap_element(info, "language", "ja-JP" if ja else "en-US")
    cap_element(info, "category", "Safety")
    cap_element(info, "category", "Met")
    cap_element(info, "event", "避難情報" if ja else "Evacuation order")
    if lifted:
        response, urgency, severity, certainty = "AllClear", "Past", "Minor", "Observed"
    else:
        response, urgency, severity = LEVEL_CAP[event.level]
        certainty = "Likely"
    cap_element(info, "responseType", response)
    cap_element(info, "urgency", urgency)
    cap_element(info, "severity", severity)
    cap_element(info, "certainty", certainty)
    cap_element(info, "senderName", town.name_ja if ja else town.name_en)
    step_ja, step_en = STEP_WORDS[event.kind]
    names = "、".join(d.name_ja for d in districts) if ja else ", ".join(d.name_en for d in districts)
    if ja:
        headline = f"【{words.title_ja}】{town.name_ja} {names} {step_ja}"
    else:
        headline = f"{words.title_en} — {town.name_en}, {names} ({step_en})"
    cap_element(info, "headline", headline[:160])
    lines = [
        (f"{town.name_ja}は{names}に{words.title_ja}を{step_ja}しました。" if ja
         else f"{town.name_en} has {step_en} {words.title_en} for {names}."),
    ]
    if event.reason:
        lines.append(("理由: " if ja else "Reason: ") + event.reason)
    if event.shelters and not lifted:
        shelters = {s.code: s for s in order.shelters.all()}
        opened = [shelters[c] for c in event.shelters if c in shelters]
        if opened:
            label = "避難所: " if ja else "Shelters: "
            lines.append(label + ("、" if ja else ", ").join(s.name_ja if ja else s.name_en for s in opened))
    cap_element(info, "description", "\n".join(lines))
    instruction = LIFTED_INSTRUCTION[0 if ja else 1] if lifted else (words.action_ja if ja else words.action_en)
    if instruction:
        cap_element(info, "instruction", instruction)
    cap_element(info, "web", f"{settings.SITE_URL.rstrip('/')}/")
    for name, value in (("level", str(event.level)), ("levelScheme", words.scheme or "none")):
        parameter = cap_element(info, "parameter")
        cap_element(parameter, "valueName", name)
        cap_element(parameter, "value", value)
    for district in districts:
        area = cap_element(info, "area")
        cap_element(area, "areaDesc", f"{district.name_ja}({town.name_ja})" if ja else f"{district.name_en}, {town.name_en}")
        for polygon in boundary_polygons(district.geometry):
            cap_element(area, "polygon", polygon)
        geocode = cap_element(area, "geocode")
        cap_element(geocode, "valueName", "JP-LGCode")
        cap_element(geocode, "value", town.code)


def cap_document(order: Order, *, event_id: int | None = None) -> bytes | None:
    """The newest CAP version of `order`, or the version of `event_id`; None when there is none."""
    versions = list(order.events.order_by("at", "pk"))
    if event_id is not None:
        index = next((i for i, version in enumerate(versions) if version.pk == event_id), None)
    else:
        index = len(versions) - 1 if versions else None
    if index is None:
        return None
    return cap_message(order, versions[index], versions[:index])
