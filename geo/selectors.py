"""Reads of hazard zones and shelters.

Both are public information (a resident needs to know where the flood may reach and which shelter
is open more than anyone), so reading them takes no viewer. Changing a shelter's status does: who
may is decided here, once, for the HQ page and the status endpoint alike.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Iterable

from tenancy.models import AuditEvent
from tenancy.permissions import Action, permits
from tenancy.selectors import Viewer

from .models import HazardZone, Shelter


def hazard_zone_list() -> list[HazardZone]:
    """Every hazard zone, in drawing order (kind, then name): one query."""
    return list(HazardZone.objects.all())


def shelter_list(*, ids: Iterable[int] | None = None) -> list[Shelter]:
    """Shelters with their town, by code (one query); `ids` narrows it to those shelters."""
    shelters = Shelter.objects.select_related("municipality").order_by("code")
    if ids is not None:
        shelters = shelters.filter(pk__in=list(ids))
    return list(shelters)


def shelter_list_at(at: datetime) -> list[Shelter]:
    """Shelters as they stood at `at` (status and when it was set, in memory, never saved), from the
    audit trail of status changes (geo.services.shelter_status_set): the last change up to `at`, else
    the state the first later change started from, else today's status. Two queries."""
    shelters = shelter_list()
    changes: dict[str, list[AuditEvent]] = defaultdict(list)
    for event in AuditEvent.objects.filter(action=AuditEvent.Action.SHELTER_UPDATED).order_by("at", "pk"):
        changes[event.target].append(event)
    for shelter in shelters:
        trail = changes.get(shelter.code, [])
        before = [event for event in trail if event.at <= at]
        after = [event for event in trail if event.at > at]
        if before:
            shelter.status, shelter.status_updated_at = before[-1].detail.get("to", shelter.status), before[-1].at
        elif after:
            shelter.status = after[0].detail.get("from", Shelter.Status.CLOSED)
            shelter.status_updated_at = None
    return shelters


def shelter_get(*, code: str) -> Shelter:
    """One shelter by code, with its town; raises Shelter.DoesNotExist."""
    return Shelter.objects.select_related("municipality").get(code=code)


def shelter_status_settable(*, viewer: Viewer, shelter: Shelter) -> bool:
    """Operators (and admins) of the town that runs the shelter may open, fill or close it, in the
    town they are acting for; platform admins may for any town (the rule: tenancy.permissions)."""
    return permits(viewer, Action.SET_SHELTER_STATUS, shelter)


def shelter_dataset_csv(*, municipality=None) -> str:
    """Shelters (of one town, or all) as the national standard 指定緊急避難場所一覧 CSV."""
    from sensors.api import csv_cell

    from .shelter_dataset import render

    shelters = Shelter.objects.select_related("municipality").order_by("municipality__code", "code")
    if municipality is not None:
        shelters = shelters.filter(municipality=municipality)
    return render(shelters, text_cell=csv_cell)
