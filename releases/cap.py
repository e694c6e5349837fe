"""A dam release notice as a CAP 1.2 message: `event` 放流 / Dam release, the area the affected reach
(the river line widened to a corridor, as CAP polygons), geocodes of the downstream towns. A notice
that ended is a Cancel referring to the Alert it ended."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import shapely
from django.conf import settings
from shapely.geometry import shape

from alerts.cap import CAP_NS, CIRCLE_RADIUS_KM, boundary_polygons, cap_element, cap_time

from .models import ADVICE_EN, ADVICE_JA, DamRelease

# Half-width of the corridor along the river that stands for "the reach": about 300 m.
CORRIDOR_DEGREES = 0.003


def cap_identifier(release: DamRelease, *, ended: bool) -> str:
    return f"mizumori-release-{release.pk}{'-end' if ended else ''}"


def _corridor(release: DamRelease) -> list[str]:
    if release.river is None:
        return []
    try:
        line = shape(release.river.geometry)
    except (ValueError, TypeError, AttributeError, KeyError):
        return []
    area = shapely.buffer(line, CORRIDOR_DEGREES)
    return boundary_polygons(shapely.geometry.mapping(area))


def cap_release(release: DamRelease) -> bytes:
    ended = release.ended_at is not None
    root = ET.Element(f"{{{CAP_NS}}}alert")
    cap_element(root, "identifier", cap_identifier(release, ended=ended))
    cap_element(root, "sender", settings.CAP_SENDER)
    cap_element(root, "sent", cap_time(release.ended_at if ended else release.created_at))
    cap_element(root, "status", "Actual")
    cap_element(root, "msgType", "Cancel" if ended else "Alert")
    cap_element(root, "source", f"Mizumori {release.municipality.name_en}")
    cap_element(root, "scope", "Public")
    if ended:
        cap_element(root, "references", f"{settings.CAP_SENDER},{cap_identifier(release, ended=False)},{cap_time(release.created_at)}")
    for ja in (True, False):
        info = cap_element(root, "info")
        cap_element(info, "language", "ja-JP" if ja else "en-US")
        cap_element(info, "category", "Safety")
        cap_element(info, "event", "放流" if ja else "Dam release")
        cap_element(info, "responseType", "AllClear" if ended else "Avoid")
        cap_element(info, "urgency", "Past" if ended else "Immediate")
        cap_element(info, "severity", "Minor" if ended else "Moderate")
        cap_element(info, "certainty", "Observed")
        cap_element(info, "onset", cap_time(release.started_at))
        if release.ends_at:
            cap_element(info, "expires", cap_time(release.ends_at))
        dam = release.dam
        cap_element(info, "senderName", f"{dam.name_ja if ja else dam.name_en}({release.municipality.name_ja})" if ja
             else f"{dam.name_en} ({release.municipality.name_en})")
        if ja:
            headline = f"【放流{'終了' if ended else ''}】{dam.name_ja} {release.reach}"
        else:
            headline = f"Dam release {'ended' if ended else 'in progress'}: {dam.name_en}, {release.reach}"
        cap_element(info, "headline", headline[:160])
        discharge = release.current_discharge if release.current_discharge is not None else release.planned_discharge
        lines = [
            f"{'ダム' if ja else 'Dam'}: {dam.name_ja if ja else dam.name_en}",
            f"{'放流量' if ja else 'Discharge'}: {discharge:g} m³/s"
            + (f"({'計画' if ja else 'planned'} {release.planned_discharge:g} m³/s)" if release.current_discharge is not None else ""),
            f"{'区間' if ja else 'Reach'}: {release.reach}",
        ]
        if release.districts:
            lines.append(f"{'地区' if ja else 'Districts'}: {'、'.join(release.districts)}")
        if release.message:
            lines.append(release.message)
        cap_element(info, "description", "\n".join(lines))
        if ended:
            cap_element(info, "instruction", "放流は終了しました。" if ja else "The release has ended.")
        else:
            cap_element(info, "instruction", ADVICE_JA if ja else ADVICE_EN)
        cap_element(info, "web", f"{settings.SITE_URL.rstrip('/')}/")
        for name, value in (("dam", dam.code), ("plannedDischarge", f"{release.planned_discharge:g}")):
            parameter = cap_element(info, "parameter")
            cap_element(parameter, "valueName", name)
            cap_element(parameter, "value", value)
        area = cap_element(info, "area")
        cap_element(area, "areaDesc", release.reach)
        for polygon in _corridor(release):
            cap_element(area, "polygon", polygon)
        cap_element(area, "circle", f"{dam.lat:.6f},{dam.lon:.6f} {CIRCLE_RADIUS_KM:g}")
        for town in sorted(release.downstream.all(), key=lambda town: town.code):
            geocode = cap_element(area, "geocode")
            cap_element(geocode, "valueName", "JP-LGCode")
            cap_element(geocode, "value", town.code)
    ET.register_namespace("", CAP_NS)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)
