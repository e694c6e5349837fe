"""Reads of sensor data. Every function takes the viewer and goes through `Station.objects.visible_to`."""

from __future__ import annotations

from datetime import datetime

from django.db.models import QuerySet
from django.utils import timezone

from tenancy.selectors import Viewer

from .models import Observation, SharingGrant, Station, StationGroup, StationState, Visibility
from .trends import station_trend, trend_readings_prefetch


def station_list(*, viewer: Viewer, kind: str | None = None, municipality: str | None = None) -> QuerySet[Station]:
    """Stations the viewer may see, with owner, latest state, thresholds and the readings their trend
    is judged on loaded (three queries)."""
    queryset = (
        Station.objects.visible_to(viewer)
        .filter(is_active=True)
        .select_related("municipality", "state")
        .prefetch_related("thresholds", trend_readings_prefetch())
        .order_by("code")
    )
    if kind:
        queryset = queryset.filter(kind=kind)
    if municipality:
        queryset = queryset.filter(municipality__slug=municipality)
    return queryset


def station_get(*, viewer: Viewer, code: str) -> Station:
    """One visible station; raises Station.DoesNotExist alike for missing and not-visible ones."""
    return station_list(viewer=viewer).get(code=code)


def _state_of(station: Station) -> StationState | None:
    try:
        return station.state
    except StationState.DoesNotExist:
        return None


def station_stale_after(station: Station) -> datetime | None:
    """When the latest reading stops counting as current: the expected interval, doubled for one
    missed report of slack. None for gauges that report only above a start level (silence is normal)
    and for stations that never reported (stale already)."""
    state = _state_of(station)
    if station.expected_interval is None or state is None or state.observed_at is None:
        return None
    return state.observed_at + 2 * station.expected_interval


def station_is_stale(station: Station, *, now: datetime) -> bool:
    if station.expected_interval is None:
        return False
    stale_after = station_stale_after(station)
    return stale_after is None or now > stale_after


def local_iso(value: datetime | None) -> str | None:
    return timezone.localtime(value).isoformat() if value else None


def station_feature(station: Station, *, now: datetime) -> dict:
    """A GeoJSON Feature in the shape of the `/api/v1/stations` contract (and the live layer)."""
    state = _state_of(station)
    thresholds = station.thresholds.all()
    return {
        "type": "Feature",
        "id": station.code,
        "geometry": {"type": "Point", "coordinates": [station.lon, station.lat]},
        "properties": {
            "code": station.code,
            "name": station.name_ja if _lang() == "ja" else station.name_en,
            "name_ja": station.name_ja,
            "name_en": station.name_en,
            "kind": station.kind,
            "municipality": station.municipality.slug,
            "river": station.river_name,
            "unit": station.unit,
            "value": state.value if state else None,
            "observed_at": local_iso(state.observed_at) if state else None,
            "level": state.level if state else None,
            # "suspect": the latest reading jumped implausibly; it is shown but does not set the level.
            "quality": state.quality if state and state.observed_at else None,
            "trend": station_trend(station),
            "accumulations": state.accumulations if state else {},
            "thresholds": [
                {
                    "name": t.name,
                    "label_ja": t.label_ja,
                    "label_en": t.label_en,
                    "level": t.level,
                    "value": t.value,
                    "window_minutes": int(t.window.total_seconds() // 60) if t.window else None,
                }
                for t in thresholds
            ],
            "stale": station_is_stale(station, now=now),
            # Lets a page that stops hearing from the server still grey the station out on time.
            "stale_after": local_iso(station_stale_after(station)),
            "visibility": station.visibility,
        },
    }


def _lang() -> str:
    from django.utils import translation

    return (translation.get_language() or "ja")[:2]


def station_feature_collection(*, viewer: Viewer, kind: str | None = None, municipality: str | None = None) -> dict:
    now = timezone.now()
    return {
        "type": "FeatureCollection",
        "features": [
            station_feature(station, now=now)
            for station in station_list(viewer=viewer, kind=kind, municipality=municipality)
        ],
    }


def observation_range(*, station: Station, since: datetime, until: datetime) -> QuerySet[Observation]:
    """Readings of an already visibility-checked station in [since, until], oldest first."""
    return (
        Observation.objects.filter(station=station, observed_at__gte=since, observed_at__lte=until)
        .order_by("observed_at")
        .only("observed_at", "value", "quality")
    )


def station_audiences(station_ids) -> dict[int, tuple[str, frozenset[int]]]:
    """Who may see each station: (visibility, towns with access). For public and region stations the
    town set is just the owner; for private and shared ones it is exactly the towns that may see it.
    A fixed number of queries however many stations; used to route live messages, not to answer a viewer."""
    rows = Station.objects.filter(pk__in=list(station_ids)).values_list("pk", "visibility", "municipality_id")
    stations = {pk: visibility for pk, visibility, _ in rows}
    towns: dict[int, set[int]] = {pk: {owner} for pk, _, owner in rows}
    shared = [pk for pk, visibility in stations.items() if visibility == Visibility.SHARED]
    if shared:
        active = SharingGrant.objects.active()
        for station_id, grantee_id in active.filter(station_id__in=shared).values_list("station_id", "grantee_id"):
            towns[station_id].add(grantee_id)
        memberships = StationGroup.stations.through.objects.filter(station_id__in=shared)
        grantees_by_group: dict[int, set[int]] = {}
        for group_id, grantee_id in active.filter(group__isnull=False).filter(
            group_id__in=memberships.values("stationgroup_id")
        ).values_list("group_id", "grantee_id"):
            grantees_by_group.setdefault(group_id, set()).add(grantee_id)
        for station_id, group_id in memberships.values_list("station_id", "stationgroup_id"):
            towns[station_id] |= grantees_by_group.get(group_id, set())
    return {pk: (stations[pk], frozenset(towns[pk])) for pk in stations}


def sharing_grants_of(*, municipality_id: int) -> QuerySet[SharingGrant]:
    """Grants a town has given (active first), for its admin's sharing page."""
    return (
        SharingGrant.objects.filter(grantor_id=municipality_id)
        .select_related("station", "group", "grantee", "granted_by", "withdrawn_by")
        .order_by("withdrawn_at", "-granted_at")
    )
