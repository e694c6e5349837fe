"""A dam release notice as a CAP 1.2 message: `event` 放流 / Dam release, the area the affected reach
(the river line widened to a corridor, as CAP polygons), geocodes of the downstream towns. A notice
that ended is a Cancel referring to the Alert it ended."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import shapely
from django.conf import settings
from shapely.geometry import shape

from alerts.cap import CAP_NS, CIRCLE_RADIUS_KM, _sub, boundary_polygons, cap_time

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
    _sub(root, "identifier", cap_identifier(release, ended=ended))
    _sub(root, "sender", settings.CAP_SENDER)
    _sub(root, "sent", cap_time(release.ended_at if ended else release.created_at))
    _sub(root, "status", "Actual")
    _sub(root, "msgType", "Cancel" if ended else "Alert")
    _sub(root, "source", f"Mizumori {release.municipality.name_en}")
    _sub(root, "scope", "Public")
    if ended:
        _sub(root, "references", f"{settings.CAP_SENDER},{cap_identifier(release, ended=False)},{cap_time(release.created_at)}")
    for ja in (True, False):
        info = _sub(root, "info")
        _sub(info, "language", "ja-JP" if ja else "en-US")
        _sub(info, "category", "Safety")
        _sub(info, "event", "放流" if ja else "Dam release")
        _sub(info, "responseType", "AllClear" if ended else "Avoid")
        _sub(info, "urgency", "Past" if ended else "Immediate")
        _sub(info, "severity", "Minor" if ended else "Moderate")
        _sub(info, "certainty", "Observed")
        _sub(info, "onset", cap_time(release.started_at))
        if release.ends_at:
            _sub(info, "expires", cap_time(release.ends_at))
        dam = release.dam
        _sub(info, "senderName", f"{dam.name_ja if ja else dam.name_en}({release.municipality.name_ja})" if ja
             else f"{dam.name_en} ({release.municipality.name_en})")
        if ja:
            headline = f"【放流{'終了' if ended else ''}】{dam.name_ja} {release.reach}"
        else:
            headline = f"Dam release {'ended' if ended else 'in progress'}: {dam.name_en}, {release.reach}"
        _sub(info, "headline", headline[:160])
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
        _sub(info, "description", "\n".join(lines))
        if ended:
            _sub(info, "instruction", "放流は終了しました。" if ja else "The release has ended.")
        else:
            _sub(info, "instruction", ADVICE_JA if ja else ADVICE_EN)
        _sub(info, "web", f"{settings.SITE_URL.rstrip('/')}/")
        for name, value in (("dam", dam.code), ("plannedDischarge", f"{release.planned_discharge:g}")):
            parameter = _sub(info, "parameter")
            _sub(parameter, "valueName", name)
            _sub(parameter, "value", value)
        area = _sub(info, "area")
        _sub(area, "areaDesc", release.reach)
        for polygon in _corridor(release):
            _sub(area, "polygon", polygon)
        _sub(area, "circle", f"{dam.lat:.6f},{dam.lon:.6f} {CIRCLE_RADIUS_KM:g}")
        for town in sorted(release.downstream.all(), key=lambda town: town.code):
            geocode = _sub(area, "geocode")
            _sub(geocode, "valueName", "JP-LGCode")
            _sub(geocode, "value", town.code)
    ET.register_namespace("", CAP_NS)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)
