"""Reads of hazard zones and shelters.

Both are public information (a resident needs to know where the flood may reach and which shelter
is open more than anyone), so reading them takes no viewer. Changing a shelter's status does: who
may is decided here, once, for the HQ page and the status endpoint alike.
"""

from __future__ import annotations

from typing import Iterable

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
