"""Reads for the NGSI interface. Stations come only through `sensors.selectors.station_list`, with
the viewer; `Fiware-Service` narrows that further to one owner town, never widens it."""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.db.models import Q, QuerySet
from django.utils import timezone

from sensors.models import Station
from sensors.selectors import station_list
from tenancy.models import IngestToken, Municipality
from tenancy.selectors import Viewer, viewer_for_token, viewer_for_user

from .entities import StationEntity, kinds_of_type, parse_entity_id, station_entity
from .errors import BadRequest, NotFound, SUBSCRIPTION_NOT_FOUND, entity_not_found
from .filters import EntityFilter, QueryDocument, sort_entities
from .models import NotifyMapping, Subscription

# Orion: a service (tenant) is alphanumerics and underscores, at most 50 characters.
SERVICE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,50}$")
SERVICE_PATH_LEVEL = re.compile(r"^[A-Za-z0-9_]{1,50}$")
MAX_SERVICE_PATHS = 10
MAX_SERVICE_PATH_LEVELS = 10


def tenant_name(municipality: Municipality) -> str:
    """The Fiware-Service name of a town: its slug, with '-' as '_' because Orion (and clients that
    validate like it, such as filip) allow only letters, digits and underscores."""
    return municipality.slug.replace("-", "_")


@dataclass(frozen=True)
class Tenant:
    """What the Fiware-Service and Fiware-ServicePath headers select."""

    service: str = ""
    municipality: Municipality | None = None
    # False for an unknown service or a service path below '/': Orion would show an empty tenant.
    reaches_stations: bool = True

    @property
    def is_set(self) -> bool:
        return bool(self.service)


def _service_paths(raw: str) -> list[str]:
    paths = [path.strip() for path in raw.split(",")] if raw.strip() else ["/"]
    if len(paths) > MAX_SERVICE_PATHS:
        raise BadRequest(f"Too many service paths: at most {MAX_SERVICE_PATHS}")
    for path in paths:
        if not path.startswith("/"):
            raise BadRequest("Only absolute service paths are allowed (Fiware-ServicePath must start with '/')")
        levels = [level for level in path[1:].split("/")] if path not in ("/", "/#") else []
        if levels and levels[-1] == "#":
            levels = levels[:-1]
        if len(levels) > MAX_SERVICE_PATH_LEVELS or not all(SERVICE_PATH_LEVEL.match(level) for level in levels):
            raise BadRequest(f"Bad character or level in Fiware-ServicePath {path[:60]!r}")
    return paths


def tenant_for(service: str | None, service_path: str | None) -> Tenant:
    service = (service or "").strip().lower()
    if service and not SERVICE_NAME.match(service):
        raise BadRequest("Bad character in tenant name (Fiware-Service: letters, digits, '_' or '-', at most 50)")
    # Stations all live at the root path '/'; '/#' reaches it, a deeper path does not.
    reaches_root = any(path in ("/", "/#") for path in _service_paths(service_path or ""))
    if not service:
        return Tenant(reaches_stations=reaches_root)
    municipality = (
        Municipality.objects.filter(slug=service).first()
        or Municipality.objects.filter(slug=service.replace("_", "-")).first()
    )
    return Tenant(service=service, municipality=municipality, reaches_stations=reaches_root and municipality is not None)


def visible_stations(*, viewer: Viewer, tenant: Tenant) -> QuerySet[Station]:
    if not tenant.reaches_stations:
        return Station.objects.none()
    # With each gauge's current forecast (WaterObserved's `forecast` attribute), in the same query.
    return station_list(viewer=viewer, municipality=tenant.municipality.slug if tenant.municipality else None).select_related(
        "forecast"
    )


def _narrowed(queryset: QuerySet[Station], entity_filter: EntityFilter) -> QuerySet[Station]:
    """Push the id and type parts of a filter into SQL; the rest is evaluated on the entities."""
    if entity_filter.ids is not None:
        wanted = [parsed for parsed in map(parse_entity_id, entity_filter.ids) if parsed]
        codes = {code for _, code in wanted}
        queryset = queryset.filter(code__in=codes)
    if entity_filter.types is not None:
        kinds = [kind for entity_type in entity_filter.types for kind in kinds_of_type(entity_type)]
        queryset = queryset.filter(kind__in=kinds)
    return queryset


def entity_search(
    *, viewer: Viewer, tenant: Tenant, entity_filter: EntityFilter, order_by=()
) -> list[StationEntity]:
    """Every visible entity matching the filter, ordered (default: by station code)."""
    stations = _narrowed(visible_stations(viewer=viewer, tenant=tenant), entity_filter)
    matching = [entity for entity in map(station_entity, stations) if entity_filter.matches(entity)]
    return sort_entities(matching, order_by)


def entity_query(*, viewer: Viewer, tenant: Tenant, query: QueryDocument, order_by=()) -> list[StationEntity]:
    """POST /v2/op/query: every visible entity matching one of the query's subjects and its expression."""
    stations = visible_stations(viewer=viewer, tenant=tenant)
    if len(query.subjects) == 1:
        stations = _narrowed(stations, query.subjects[0])
    matching = [entity for entity in map(station_entity, stations) if query.matches(entity)]
    return sort_entities(matching, order_by)


def entity_get(*, viewer: Viewer, tenant: Tenant, entity_id: str, entity_type: str | None = None) -> StationEntity:
    """One visible entity; NotFound alike for missing, not-visible and wrongly typed ones."""
    parsed = parse_entity_id(entity_id)
    if parsed is None or (entity_type and entity_type != parsed[0]):
        raise entity_not_found()
    station = visible_stations(viewer=viewer, tenant=tenant).filter(code=parsed[1]).first()
    if station is None:
        raise entity_not_found()
    entity = station_entity(station)
    if entity.id != entity_id:
        raise entity_not_found()
    return entity


def writable_entities(
    *, token: IngestToken, tenant: Tenant, references: list[tuple[str, str | None]]
) -> list[StationEntity]:
    """The entities named by (id, type), in order, whose stations the token's town owns; NotFound
    if any is not one, whether it exists elsewhere or not at all. One query for a whole batch."""
    codes = {parsed[1] for parsed in (parse_entity_id(entity_id) for entity_id, _ in references) if parsed}
    stations = visible_stations(viewer=viewer_for_token(token), tenant=tenant).filter(
        code__in=codes, municipality_id=token.municipality_id
    )
    by_id = {entity.id: entity for entity in map(station_entity, stations)}
    entities = []
    for entity_id, entity_type in references:
        entity = by_id.get(entity_id)
        if entity is None or (entity_type and entity_type != entity.type):
            raise entity_not_found()
        entities.append(entity)
    return entities


def writable_entity(*, token: IngestToken, tenant: Tenant, entity_id: str, entity_type: str | None = None) -> StationEntity:
    return writable_entities(token=token, tenant=tenant, references=[(entity_id, entity_type)])[0]


# --- subscriptions ---------------------------------------------------------------------------------


def subscriptions_of(*, viewer: Viewer, tenant: Tenant) -> QuerySet[Subscription]:
    """Subscriptions the viewer manages: its towns' (all for platform operators), in the service if set."""
    queryset = Subscription.objects.select_related("municipality", "service").order_by("created_at", "pk")
    if not viewer.is_platform_admin:
        queryset = queryset.filter(municipality_id__in=viewer.municipality_ids)
    if tenant.is_set:
        queryset = queryset.filter(service=tenant.municipality) if tenant.municipality else queryset.none()
    return queryset


def subscription_get(*, viewer: Viewer, tenant: Tenant, public_id: str) -> Subscription:
    subscription = subscriptions_of(viewer=viewer, tenant=tenant).filter(public_id=public_id).first()
    if subscription is None:
        raise NotFound(SUBSCRIPTION_NOT_FOUND)
    return subscription


def subscription_owner_viewer(subscription: Subscription) -> Viewer | None:
    """Who a subscription reads as: the token or user that created it, while it still may.

    A revoked token, a deactivated user or one no longer a member of the owning town ends what
    the subscription can see (None: it notifies nothing)."""
    if subscription.owner_token_id is not None:
        token = subscription.owner_token
        if token is None or not token.is_active or token.municipality_id != subscription.municipality_id:
            return None
        return viewer_for_token(token)
    if subscription.owner_user_id is not None:
        viewer = viewer_for_user(subscription.owner_user, active_municipality_id=subscription.municipality_id)
        if viewer.is_anonymous:
            return None
        if viewer.acting_municipality_id != subscription.municipality_id and not viewer.is_platform_admin:
            return None
        return viewer
    return None


def subscription_tenant(subscription: Subscription) -> Tenant:
    if subscription.service_id is None:
        return Tenant()
    return Tenant(service=tenant_name(subscription.service), municipality=subscription.service)


def subscriptions_to_notify() -> list[Subscription]:
    now = timezone.now()
    return list(
        Subscription.objects.filter(status=Subscription.Status.ACTIVE)
        .filter(Q(expires__isnull=True) | Q(expires__gt=now))
        .select_related("municipality", "service", "owner_token", "owner_user")
        .order_by("pk")
    )


def municipality_get(pk: int) -> Municipality:
    return Municipality.objects.get(pk=pk)


# --- notification receiver ---------------------------------------------------------------------------


def notify_mappings_for(municipality: Municipality) -> list[NotifyMapping]:
    """Active mappings onto stations the town owns; mappings onto other towns' stations never apply."""
    return list(
        NotifyMapping.objects.filter(is_active=True, station__municipality=municipality, station__is_active=True)
        .select_related("station")
        .order_by("pk")
    )
