"""CAP 1.2 (OASIS Common Alerting Protocol) messages for an alert.

Every notified event of an alert (opened, escalated, de-escalated, resolved) is one CAP message
version: identifier ``mizumori-<alert id>-<event id>``, `sent` = when the event was recorded, in
TIME_ZONE with a numeric offset (the schema refuses "Z" and fractions of a second). Opened → Alert;
level changes → Update, resolved → Cancel, both with `references` to every earlier version. Each
message has an `<info>` in Japanese and one in English, and an `<area>` with the owner town's
boundary (exterior rings, "lat,lon" pairs, closed, simplified when large) and a circle around the
station.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime

from django.conf import settings
from django.utils import timezone

from sensors.models import StationKind, Visibility

from .models import Alert, AlertEvent, AlertRule
from .rules import measure_label, rule_unit
from .selectors import alert_gauge_words, alert_may_go_public, cap_versions
from .vocabulary import EVENT_KIND_WORDS

CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
CONTENT_TYPE = "application/cap+xml"
CIRCLE_RADIUS_KM = 2.0
# Above this many vertices a boundary ring is simplified; consumers (sirens, phones) choke on more.
MAX_POLYGON_POINTS = 200
MAX_POLYGONS = 5

MSG_TYPES = {
    AlertEvent.Kind.OPENED: "Alert",
    AlertEvent.Kind.ESCALATED: "Update",
    AlertEvent.Kind.DEESCALATED: "Update",
    AlertEvent.Kind.RESOLVED: "Cancel",
}
# Level → (urgency, severity); certainty is always Observed: these come from measurements.
LEVEL_URGENCY_SEVERITY = {
    5: ("Immediate", "Extreme"),
    4: ("Immediate", "Severe"),
    3: ("Expected", "Severe"),
    2: ("Expected", "Moderate"),
    1: ("Future", "Minor"),
}
LEVEL_RESPONSE = {5: "Shelter", 4: "Evacuate", 3: "Evacuate", 2: "Prepare", 1: "Monitor"}
EVENT_NAMES = {
    StationKind.RIVER: ("河川水位", "River water level"),
    StationKind.RAIN: ("大雨", "Heavy rain"),
    StationKind.RESERVOIR: ("貯水率", "Reservoir storage"),
    StationKind.TIDE: ("潮位", "Tide level"),
}
STALE_EVENT = ("観測欠測", "Gauge not reporting")
KIND_WORDS = EVENT_KIND_WORDS
ENDED_INSTRUCTION = (
    "この警戒は解除されました。引き続き自治体からの最新の情報に注意してください。",
    "This alert has ended. Keep following your municipality's latest information.",
)
STALE_INSTRUCTION = (
    "この観測所からのデータが途絶えています。近くの観測所や現地の状況を確認してください。",
    "This gauge has stopped reporting. Check nearby gauges and conditions on site.",
)


def cap_time(value: datetime) -> str:
    """`2026-07-01T14:05:00+09:00`: local time, whole seconds, numeric offset (never "Z")."""
    return timezone.localtime(value).replace(microsecond=0).isoformat()


def cap_identifier(event: AlertEvent) -> str:
    return f"mizumori-{event.alert_id}-{event.pk}"


def cap_reference(event: AlertEvent) -> str:
    return f"{settings.CAP_SENDER},{cap_identifier(event)},{cap_time(event.at)}"


def cap_element(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
    """A CAP child element (namespaced), with its text when given; shared by every CAP document we write."""
    element = ET.SubElement(parent, f"{{{CAP_NS}}}{tag}")
    if text is not None:
        element.text = text
    return element


def cap_message(alert: Alert, event: AlertEvent, earlier: list[AlertEvent]) -> bytes:
    """The CAP 1.2 XML of one version (`event`) of `alert`; `earlier` are the versions before it."""
    station = alert.station
    root = ET.Element(f"{{{CAP_NS}}}alert")
    cap_element(root, "identifier", cap_identifier(event))
    cap_element(root, "sender", settings.CAP_SENDER)
    cap_element(root, "sent", cap_time(event.at))
    cap_element(root, "status", "Actual")
    cap_element(root, "msgType", MSG_TYPES[event.kind])
    cap_element(root, "source", f"Mizumori {station.municipality.name_en}")
    if station.visibility == Visibility.PUBLIC and alert_may_go_public(station):
        cap_element(root, "scope", "Public")
    else:
        cap_element(root, "scope", "Restricted")
        cap_element(root, "restriction", _restriction(alert))
    if earlier:
        cap_element(root, "references", " ".join(cap_reference(previous) for previous in earlier))
    cap_element(root, "incidents", f"mizumori-{alert.pk}")
    for language in ("ja", "en"):
        _info(root, alert, event, language)
    ET.register_namespace("", CAP_NS)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def _restriction(alert: Alert) -> str:
    station = alert.station
    if station.visibility == Visibility.PUBLIC:  # a public gauge whose alerts are for HQ (heavy rain)
        return "For the disaster headquarters of the municipalities that may see this gauge."
    if station.visibility == Visibility.REGION:
        return "For the disaster headquarters of the municipalities sharing the Mizumori platform."
    if station.visibility == Visibility.SHARED:
        return (
            f"For the disaster headquarters of {station.municipality.name_en} and of the municipalities "
            "it shares this station with."
        )
    return f"For the disaster headquarters of {station.municipality.name_en} only."


def _info(root: ET.Element, alert: Alert, event: AlertEvent, language: str) -> None:
    station = alert.station
    ja = language == "ja"
    stale = alert.rule.kind == AlertRule.Kind.STALE
    ended = event.kind == AlertEvent.Kind.RESOLVED
    words = alert_gauge_words(alert, event.level)
    info = cap_element(root, "info")
    cap_element(info, "language", "ja-JP" if ja else "en-US")
    for category in _categories(alert):
        cap_element(info, "category", category)
    event_ja, event_en = STALE_EVENT if stale else EVENT_NAMES[StationKind(station.kind)]
    cap_element(info, "event", event_ja if ja else event_en)
    if ended:
        cap_element(info, "responseType", "AllClear")
        urgency, severity = "Past", "Minor"
    else:
        cap_element(info, "responseType", "Monitor" if stale else LEVEL_RESPONSE[event.level])
        urgency, severity = LEVEL_URGENCY_SEVERITY[event.level]
    cap_element(info, "urgency", urgency)
    cap_element(info, "severity", severity)
    # An unconfirmed raise (an implausible jump, HQ only) is possible, not observed.
    cap_element(info, "certainty", "Possible" if (event.metrics or {}).get("unconfirmed") else "Observed")
    cap_element(info, "senderName", f"Mizumori {station.municipality.name_ja if ja else station.municipality.name_en}")
    cap_element(info, "headline", _headline(alert, event, words, ja))
    cap_element(info, "description", _description(alert, event, words, ja))
    if ended:
        instruction = ENDED_INSTRUCTION
    elif stale:
        instruction = STALE_INSTRUCTION
    else:
        instruction = (words.advice_ja, words.advice_en)
    if instruction[0 if ja else 1]:
        cap_element(info, "instruction", instruction[0 if ja else 1])
    cap_element(info, "web", f"{settings.SITE_URL.rstrip('/')}/stations/{station.code}/")
    for name, value in (
        ("level", str(event.level)),
        ("levelScheme", alert.level_scheme.version if alert.level_scheme else "none"),
        ("station", station.code),
    ):
        parameter = cap_element(info, "parameter")
        cap_element(parameter, "valueName", name)
        cap_element(parameter, "value", value)
    area = cap_element(info, "area")
    town = station.municipality
    cap_element(area, "areaDesc", f"{station.name_ja}周辺({town.name_ja})" if ja else f"Around {station.name_en}, {town.name_en}")
    for polygon in boundary_polygons(town.boundary):
        cap_element(area, "polygon", polygon)
    cap_element(area, "circle", f"{station.lat:.6f},{station.lon:.6f} {CIRCLE_RADIUS_KM:g}")
    geocode = cap_element(area, "geocode")
    cap_element(geocode, "valueName", "JP-LGCode")  # 全国地方公共団体コード
    cap_element(geocode, "value", town.code)


def _categories(alert: Alert) -> list[str]:
    if alert.rule.kind == AlertRule.Kind.STALE:
        return ["Infra"]
    if alert.station.kind == StationKind.RAIN:
        return ["Met", "Geo"]  # heavy rain: floods and landslides
    return ["Met"]


def _headline(alert: Alert, event: AlertEvent, words, ja: bool) -> str:
    station = alert.station
    kind_ja, kind_en = KIND_WORDS[event.kind]
    if ja:
        reached = f" {words.reached_ja}" if words.reached_ja else ""
        return f"【{words.name_ja}】{station.name_ja}{reached} {kind_ja}"[:160]
    reached = f", {words.reached_en}" if words.reached_en else ""
    return f"{words.name_en}: {station.name_en}{reached} ({kind_en})"[:160]


def _number(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}".rstrip("0").rstrip(".")


def _description(alert: Alert, event: AlertEvent, words, ja: bool) -> str:
    station = alert.station
    metrics = event.metrics or {}
    unit = rule_unit(alert.rule, station)
    observed = cap_time(event.observed_at) if event.observed_at else cap_time(event.at)
    lines: list[str] = []
    if ja:
        lines.append(f"観測所: {station.name_ja}({station.code}、{station.municipality.name_ja})")
        lines.append(f"{measure_label(alert.rule, station, ja=True)}: {_number(event.value)} {unit}({observed})")
        lines.append(f"{words.name_ja}: {words.reached_ja}".rstrip(": "))
    else:
        lines.append(f"Station: {station.name_en} ({station.code}, {station.municipality.name_en})")
        lines.append(f"{measure_label(alert.rule, station, ja=False)}: {_number(event.value)} {unit} ({observed})")
        lines.append(f"{words.name_en}: {words.reached_en}".rstrip(": "))
    rate = metrics.get("rate_of_rise_per_hour")
    if rate is not None:
        lines.append(
            f"水位上昇速度(30分): {rate:+.2f} {station.unit}/時" if ja else f"Rate of rise (30 min): {rate:+.2f} {station.unit}/h"
        )
    forecast = metrics.get("forecast")
    if forecast and not event.kind == AlertEvent.Kind.RESOLVED:
        minutes = round(forecast["eta_seconds"] / 60)
        spread = round(forecast["uncertainty_seconds"] / 60)
        if ja:
            lines.append(f"現在の傾向が続くと、約{minutes}分(±{spread}分)で警戒レベル{forecast['level']}相当の基準に達します。")
        else:
            lines.append(
                f"If the trend holds, level {forecast['level']} is reached in about {minutes} min (± {spread} min)."
            )
    rain = metrics.get("rain") or {}
    if rain:
        totals = ", ".join(f"{label} {_number(amount)} mm" for label, amount in rain.items())
        lines.append(("雨量: " if ja else "Rainfall: ") + totals)
    return "\n".join(lines)


def boundary_polygons(geometry: dict | None) -> list[str]:
    """CAP polygons ("lat,lon" pairs, first = last) for the exterior rings of a GeoJSON (Multi)Polygon."""
    if not geometry:
        return []
    from shapely.geometry import MultiPolygon, Polygon, shape

    try:
        boundary = shape(geometry)
    except (ValueError, TypeError, AttributeError, KeyError):
        return []
    if isinstance(boundary, Polygon):
        parts = [boundary]
    elif isinstance(boundary, MultiPolygon):
        parts = sorted(boundary.geoms, key=lambda part: part.area, reverse=True)[:MAX_POLYGONS]
    else:
        return []
    polygons = []
    for part in parts:
        ring = Polygon(part.exterior)
        tolerance = 0.0005
        while len(ring.exterior.coords) > MAX_POLYGON_POINTS and tolerance < 1:
            ring = Polygon(part.exterior).simplify(tolerance, preserve_topology=True)
            tolerance *= 2
        coords = list(ring.exterior.coords)
        if len(coords) < 4:
            continue
        if coords[0] != coords[-1]:
            coords.append(coords[0])
        polygons.append(" ".join(f"{lat:.6f},{lon:.6f}" for lon, lat, *_ in coords))
    return polygons


def cap_document(alert: Alert, *, event_id: int | None = None) -> bytes | None:
    """The newest CAP version of `alert`, or the version of `event_id`; None when there is none."""
    versions = cap_versions(alert)
    if event_id is not None:
        index = next((i for i, version in enumerate(versions) if version.pk == event_id), None)
    else:
        index = len(versions) - 1 if versions else None
    if index is None:
        return None
    return cap_message(alert, versions[index], versions[:index])
