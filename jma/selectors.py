"""Reads: the agency's warnings in force per town (public information: no viewer)."""

from __future__ import annotations

from collections import defaultdict

from .models import JmaWarning

ATTRIBUTION_JA = "出典：気象庁（防災情報XML）"
ATTRIBUTION_EN = "Source: Japan Meteorological Agency (JMA disaster-prevention XML)"


def jma_warnings_by_town() -> list[dict]:
    """[{"town": Municipality, "warnings": [JmaWarning, ...], "reported_at": newest}], by town code."""
    grouped: dict[int, dict] = {}
    rows = defaultdict(list)
    for warning in JmaWarning.objects.select_related("municipality").order_by("municipality__code", "warning_type", "code"):
        grouped.setdefault(warning.municipality_id, {"town": warning.municipality})
        rows[warning.municipality_id].append(warning)
    result = []
    for pk, entry in grouped.items():
        warnings = rows[pk]
        result.append({**entry, "warnings": warnings, "reported_at": max(w.reported_at for w in warnings)})
    return result


def special_of(name: str) -> str | None:
    """The 特別警報 of a 警報's phenomenon (大雨警報 → 大雨特別警報): in force, it satisfies what the 警報 would."""
    return name.replace("警報", "特別警報") if name.endswith("警報") and "特別" not in name else None


def jma_warnings_in_force(municipality_ids) -> dict[int, dict[str, JmaWarning]]:
    """{town pk: {the agency's name: JmaWarning}} in force now, for these towns."""
    result: dict[int, dict[str, JmaWarning]] = defaultdict(dict)
    for warning in JmaWarning.objects.filter(municipality_id__in=list(municipality_ids)).order_by("reported_at"):
        result[warning.municipality_id][warning.name] = warning
    return result


def jma_warning_matching(in_force: dict[str, JmaWarning], name: str) -> JmaWarning | None:
    """The warning in force that satisfies `name` (itself, or its 特別警報)."""
    special = special_of(name)
    return in_force.get(special) if special and special in in_force else in_force.get(name)
