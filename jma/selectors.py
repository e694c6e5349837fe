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
