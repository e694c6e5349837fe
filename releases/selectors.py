"""Reads of dam release notices. They are public information (everyone downstream must hear of a
release), so reading them takes no viewer; who may post or end one is `may_manage`."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from sensors.selectors import local_iso
from tenancy.models import IngestToken
from tenancy.permissions import Action, permits
from tenancy.selectors import Viewer

from .models import ADVICE_EN, ADVICE_JA, DamRelease, ReleaseTransition

RECENT = timedelta(days=7)


def _loaded(queryset):
    return queryset.select_related("municipality", "dam", "river").prefetch_related("downstream")


def releases_in_force(*, now: datetime | None = None) -> list[DamRelease]:
    return list(_loaded(DamRelease.objects.in_force(now)))


def releases_affecting(*, viewer: Viewer, now: datetime | None = None) -> list[DamRelease]:
    """The notices in force that concern the viewer's town, for its HQ alert board: the town is
    downstream, or the dam is its own. Every notice is public; this chooses what an HQ must act on.
    A platform admin acting for no town is shown them all."""
    if viewer.acting_municipality_id is not None:
        towns = {viewer.acting_municipality_id}
    elif viewer.is_platform_admin:
        return releases_in_force(now=now)
    else:
        towns = set(viewer.municipality_ids)
    if not towns:
        return []
    in_force = DamRelease.objects.in_force(now)
    return list(_loaded(in_force.filter(Q(downstream__in=towns) | Q(municipality__in=towns)).distinct()))


def releases_recent(*, now: datetime | None = None) -> list[DamRelease]:
    """In force or ended within RECENT (the feed announces ends too)."""
    now = now or timezone.now()
    return list(_loaded(DamRelease.objects.filter(updated_at__gte=now - RECENT)))


def releases_by_ids(ids) -> list[DamRelease]:
    return list(_loaded(DamRelease.objects.filter(pk__in=list(ids))))


def release_get(*, pk: int) -> DamRelease:
    return _loaded(DamRelease.objects).get(pk=pk)


def may_manage(*, viewer: Viewer, token: IngestToken | None, release_town_id: int) -> bool:
    """The dam's town posts and ends its notices: its gateway token (the dam's own system), or its
    operators and admins acting for it (tenancy.permissions, Action.POST_RELEASE)."""
    if token is not None:
        return token.municipality_id == release_town_id
    probe = DamRelease(municipality_id=release_town_id)
    return permits(viewer, Action.POST_RELEASE, probe)


def release_document(release: DamRelease, *, now: datetime | None = None) -> dict:
    """The JSON of one notice (API, live messages, map layer): only public facts, and the advice."""
    now = now or timezone.now()
    river = release.river
    return {
        "id": release.pk,
        "dam": {"code": release.dam.code, "name_ja": release.dam.name_ja, "name_en": release.dam.name_en,
                "coordinates": [release.dam.lon, release.dam.lat]},
        "municipality": release.municipality.slug,
        "river": river.name_ja if river else None,
        "river_geometry": river.geometry if river else None,
        "reach": release.reach,
        "districts": release.districts,
        "downstream": sorted(town.slug for town in release.downstream.all()),
        "started_at": local_iso(release.started_at),
        "ends_at": local_iso(release.ends_at),
        "ended_at": local_iso(release.ended_at),
        "planned_discharge": release.planned_discharge,
        "current_discharge": release.current_discharge,
        "message": release.message,
        "in_force": release.in_force(now),
        "advice_ja": ADVICE_JA,
        "advice_en": ADVICE_EN,
    }


def release_notification_documents(transition_ids) -> dict[int, dict]:
    """What e-mail and webhooks send for each release transition (alerts' delivery outbox):
    `{"release_event": {"id", "kind", "at", "current_discharge"}, "release": <the notice now>}`."""
    transitions = ReleaseTransition.objects.filter(pk__in=list(transition_ids)).select_related(
        "release", "release__municipality", "release__dam", "release__river"
    ).prefetch_related("release__downstream")
    documents = {}
    for transition in transitions:
        release = transition.release
        documents[transition.pk] = {
            "release_event": {
                "id": transition.pk,
                "kind": transition.kind,
                "at": local_iso(transition.at),
                "current_discharge": transition.current_discharge,
            },
            "release": release_document(release)
            | {"cap_url": settings.SITE_URL.rstrip("/") + reverse("api-release-cap", args=[release.pk])},
        }
    return documents
