"""Writes: a parsed JMA report replaces, for each town it names, what is in force of its warning type."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import transaction

from events import emit
from tenancy.models import Municipality

from .models import JmaReportState, JmaWarning
from .parser import Report

# In the change log with the towns whose warnings were replaced: the evacuation trigger rules
# (orders.triggers) watch it, so jma never imports orders.
JMA_CHANGED = "jma.changed"


@dataclass
class ApplyReport:
    towns: list[str] = field(default_factory=list)  # slugs updated
    unknown_areas: list[str] = field(default_factory=list)  # area codes of no town on the platform
    older: list[str] = field(default_factory=list)  # slugs skipped: a newer report was applied already


def jma_report_apply(report: Report) -> ApplyReport:
    """Area codes map to towns by their 5-digit local government code (the 6-digit code without its
    check digit). A report older than the one applied for a town and type changes nothing there;
    `取消` (a withdrawn report) clears what it had named."""
    result = ApplyReport()
    towns = {town.code[:5]: town for town in Municipality.objects.all()}
    changed: list[int] = []
    with transaction.atomic():
        for warning_type, areas in report.warnings.items():
            by_town: dict[int, tuple[Municipality, list]] = {}
            for area in areas:
                town = towns.get(area.area_code[:5])
                if town is None:
                    result.unknown_areas.append(area.area_code)
                    continue
                entry = by_town.setdefault(town.pk, (town, []))
                if report.info_type != "取消":
                    entry[1].extend((area, kind) for kind in area.kinds)
            for town, kinds in by_town.values():
                state = JmaReportState.objects.select_for_update().filter(
                    municipality=town, warning_type=warning_type
                ).first()
                if state is not None and state.reported_at > report.reported_at:
                    result.older.append(town.slug)
                    continue
                JmaWarning.objects.filter(municipality=town, warning_type=warning_type).delete()
                seen = set()
                rows = []
                for area, (name, code, status) in kinds:
                    if name in seen:
                        continue  # the same kind for two areas of one town (e.g. 東部 / 西部): once
                    seen.add(name)
                    rows.append(JmaWarning(
                        municipality=town, warning_type=warning_type, name=name, code=code, status=status,
                        area_name=area.area_name, report_title=report.title, reported_at=report.reported_at,
                        office=report.office,
                    ))
                JmaWarning.objects.bulk_create(rows)
                JmaReportState.objects.update_or_create(
                    municipality=town, warning_type=warning_type, defaults={"reported_at": report.reported_at}
                )
                result.towns.append(town.slug)
                changed.append(town.pk)
        if changed:
            emit(JMA_CHANGED, {"municipalities": changed})
    return result
