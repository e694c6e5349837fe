"""Reading the Japan Meteorological Agency's 防災情報XML: 気象警報・注意報 (VPWW5x), 指定河川洪水予報
(VXKO5x) and 土砂災害警戒情報 (VXWW50) reports. No database access here.

A report (namespace http://xml.kishou.go.jp/jmaxml1/) has `Control` (Title, DateTime, Status,
PublishingOffice), `Head` (Title, ReportDateTime, InfoType 発表 / 訂正 / 取消) and a `Body` with
`Warning type="..."` elements, each with `Item`s: one or more `Kind` (Name, Code, Status) and the
`Area`s (Name, Code) they apply to. Municipal areas (市町村等) have 7-digit codes: the 5-digit local
government code and two more digits (e.g. 1310100 for 千代田区, 13101). Parsing is done with
defusedxml: DTDs, entity declarations and external references are refused, so a hostile file cannot
expand, read local files or reach the network.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from defusedxml import DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
from defusedxml.ElementTree import ParseError, fromstring

MAX_BYTES = 5 * 1024 * 1024
MAX_ITEMS = 10_000
TEXT_MAX = 120
REPORT_NS = "http://xml.kishou.go.jp/jmaxml1/"
HEAD_NS = "http://xml.kishou.go.jp/jmaxml1/informationBasis1/"
# Kind statuses under which nothing is in force for the area.
NOT_IN_FORCE = {"解除", "発表警報・注意報はなし", "なし"}
# Warning types naming municipalities (市町村等): the ones mapped to towns.
MUNICIPAL_TYPES_CONTAIN = ("市町村",)
RIVER_FLOOD_TYPE = "指定河川洪水予報"
# 土砂災害警戒情報 (VXWW50) names municipalities too, but its Kind says only 警戒 / 解除 / なし: the
# product's own name is what a town knows it by, so that is the name stored for 警戒.
LANDSLIDE_TYPE = "土砂災害警戒情報"
LANDSLIDE_IN_FORCE_KIND = "警戒"


class ReportError(ValueError):
    """Not a 防災情報XML report we can read; nothing from it is used."""


@dataclass(frozen=True)
class AreaWarning:
    area_code: str  # 7 digits for 市町村等
    area_name: str
    kinds: tuple[tuple[str, str, str], ...]  # (name, code, status) in force; empty: nothing in force


@dataclass
class Report:
    title: str
    reported_at: datetime
    info_type: str  # 発表 / 訂正 / 取消
    office: str
    warnings: dict[str, list[AreaWarning]] = field(default_factory=dict)  # by Warning@type


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(element, name: str):
    return next((child for child in element if _local(child.tag) == name), None)


def _children(element, name: str):
    return [child for child in element if _local(child.tag) == name]


def _text(element, name: str) -> str:
    child = _child(element, name) if element is not None else None
    text = (child.text or "").strip() if child is not None else ""
    if len(text) > TEXT_MAX or any(ord(char) < 32 for char in text):
        raise ReportError(f"<{name}> is longer than {TEXT_MAX} characters or holds control characters")
    return text


def parse_report(data: bytes) -> Report:
    if len(data) > MAX_BYTES:
        raise ReportError(f"larger than {MAX_BYTES // (1024 * 1024)} MiB")
    try:
        root = fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden) as exc:
        raise ReportError(f"refused: {type(exc).__name__} (DTDs and entities are not allowed)") from None
    except (ParseError, ValueError) as exc:
        raise ReportError(f"not well-formed XML: {str(exc)[:120]}") from None
    if root.tag != f"{{{REPORT_NS}}}Report":
        raise ReportError("not a JMA 防災情報XML Report (root element / namespace)")
    control, head, body = _child(root, "Control"), _child(root, "Head"), _child(root, "Body")
    if control is None or head is None or body is None:
        raise ReportError("a Report needs Control, Head and Body")
    if _text(control, "Status") not in ("通常", ""):
        raise ReportError(f"Control/Status {_text(control, 'Status')!r}: only 通常 (real) reports are used")
    raw_time = _text(head, "ReportDateTime")
    try:
        reported_at = datetime.fromisoformat(raw_time)
    except ValueError:
        raise ReportError(f"Head/ReportDateTime {raw_time[:40]!r} is not an ISO 8601 time") from None
    if reported_at.utcoffset() is None:
        raise ReportError("Head/ReportDateTime has no UTC offset")
    report = Report(
        title=_text(head, "Title") or _text(control, "Title"), reported_at=reported_at,
        info_type=_text(head, "InfoType"), office=_text(control, "PublishingOffice"),
    )
    items = 0
    for warning in _children(body, "Warning"):
        warning_type = (warning.get("type") or "").strip()[:60]
        landslide = warning_type == LANDSLIDE_TYPE
        if not landslide and not any(part in warning_type for part in MUNICIPAL_TYPES_CONTAIN):
            continue
        areas: list[AreaWarning] = []
        for item in _children(warning, "Item"):
            items += 1
            if items > MAX_ITEMS:
                raise ReportError(f"more than {MAX_ITEMS} Items")
            kinds = []
            for kind in _children(item, "Kind"):
                name, status = _text(kind, "Name"), _text(kind, "Status")
                if landslide:
                    if name != LANDSLIDE_IN_FORCE_KIND:
                        continue
                    name = LANDSLIDE_TYPE
                if name and status not in NOT_IN_FORCE:
                    kinds.append((name, _text(kind, "Code"), status))
            area_elements = _children(item, "Area")
            for container in _children(item, "Areas"):
                area_elements.extend(_children(container, "Area"))
            for area in area_elements:
                code = _text(area, "Code")
                if not (code.isascii() and code.isdigit() and len(code) == 7):
                    continue  # not a 市町村等 area (a river, a forecast district)
                areas.append(AreaWarning(code, _text(area, "Name"), tuple(kinds)))
        report.warnings[warning_type] = areas
    return report
