"""Reads of districts, orders, trigger rules and recommendations, each through the viewer.

Orders are public: residents must see them, and neighbouring towns see each other's (a flood crosses
borders); lifted ones stay readable by id (CAP consumers need the Cancel). Who acted and on what
evidence (an order's steps), recommendations and trigger rules are the owning town's staff's.
Districts are public geography, like shelters.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Prefetch, Q, QuerySet

from alerts.models import LevelDefinition, LevelScheme
from sensors.models import Station
from tenancy.permissions import Action, restrict
from tenancy.selectors import Viewer

from .models import District, Order, OrderDraft, OrderEvent, OrderPolicy, Recommendation, TriggerRule


@dataclass(frozen=True)
class OrderWords:
    """The official words of an order level in one scheme version: the only home of the order names."""

    level: int
    name_ja: str
    name_en: str
    action_ja: str
    action_en: str
    scheme: str | None

    @property
    def title_ja(self) -> str:
        return f"警戒レベル{self.level} {self.name_ja}"

    @property
    def title_en(self) -> str:
        return f"Level {self.level}: {self.name_en}"


def order_words(level: int, scheme: LevelScheme | None = None) -> OrderWords:
    """The words of order `level` in `scheme` (default: the active scheme), from alerts.LevelDefinition:
    the versioned data, never a copy in code. Without any scheme the level number alone is said."""
    definitions = LevelDefinition.objects.select_related("scheme").filter(level=level)
    definition = (
        definitions.filter(scheme=scheme).first() if scheme is not None else definitions.filter(scheme__is_active=True).first()
    )
    if definition is None:
        return OrderWords(level, f"警戒レベル{level}", f"Level {level}", "", "", None)
    return OrderWords(
        level, definition.name_ja, definition.name_en, definition.action_ja, definition.action_en,
        definition.scheme.version,
    )


def active_level_scheme() -> LevelScheme | None:
    return LevelScheme.objects.filter(is_active=True).first()


# --- visibility rules, registered with tenancy.permissions in OrdersConfig.ready --------------------


def lifted_orders_listed_for(queryset: QuerySet, viewer: Viewer) -> QuerySet:
    """What `?all=1` lists: orders in force, and the lifted orders of the viewer's own town (all of
    them for platform operators). A lifted order stays readable by id (its CAP Cancel is public)."""
    if viewer.is_platform_admin:
        return queryset
    if viewer.acting_municipality_id is not None and viewer.token_id is None:
        return queryset.filter(Q(lifted_at__isnull=True) | Q(municipality_id=viewer.acting_municipality_id))
    return queryset.filter(lifted_at__isnull=True)


def own_town_only(queryset: QuerySet, viewer: Viewer) -> QuerySet:
    """Recommendations and trigger rules: the acting town's members only (a gateway token is no one)."""
    if viewer.is_platform_admin:
        return queryset
    if viewer.acting_municipality_id is None or viewer.token_id is not None:
        return queryset.none()
    return queryset.filter(municipality_id=viewer.acting_municipality_id)


# --- districts ------------------------------------------------------------------------------------


def district_list(*, municipality: str | None = None, codes=None) -> list[District]:
    districts = District.objects.select_related("municipality").order_by("code")
    if municipality:
        districts = districts.filter(municipality__slug=municipality)
    if codes is not None:
        districts = districts.filter(code__in=list(codes))
    return list(districts)


# --- orders ---------------------------------------------------------------------------------------


def _orders() -> QuerySet[Order]:
    return Order.objects.select_related("municipality", "level_scheme").prefetch_related(
        Prefetch("districts", queryset=District.objects.order_by("code")),
        "shelters__municipality",
        Prefetch("events", queryset=OrderEvent.objects.order_by("at", "pk")),
    )


def order_list(
    *, viewer: Viewer, include_lifted: bool = False, municipality: str | None = None, ids=None
) -> list[Order]:
    """Orders in force (anyone), or with `include_lifted` also the lifted ones the viewer may see."""
    orders = restrict(_orders(), viewer, Action.VIEW)
    if ids is not None:
        orders = orders.filter(pk__in=list(ids))
    orders = lifted_orders_listed_for(orders, viewer) if include_lifted else orders.filter(lifted_at__isnull=True)
    if municipality:
        orders = orders.filter(municipality__slug=municipality)
    return list(orders.order_by("-level", "-issued_at", "-pk"))


def order_list_at(*, viewer: Viewer, at: datetime, municipality: str | None = None) -> list[Order]:
    """The orders in force at `at`, as they stood then (in memory, never saved): level, reason,
    districts and shelters of their last step up to `at` (shelter statuses of then), steps after it
    left out. Visibility is today's (orders are public). Four queries, however many orders."""
    from geo.selectors import shelter_list_at

    orders = restrict(_orders(), viewer, Action.VIEW).filter(issued_at__lte=at).exclude(lifted_at__lte=at)
    if municipality:
        orders = orders.filter(municipality__slug=municipality)
    orders = list(orders.order_by("-issued_at", "-pk"))
    steps = {order.pk: [event for event in order.events.all() if event.at <= at] for order in orders}
    orders = [order for order in orders if steps[order.pk]]
    if not orders:
        return []
    codes = {code for order in orders for code in steps[order.pk][-1].districts}
    districts = {district.code: district for district in District.objects.filter(code__in=codes)}
    shelters = {shelter.code: shelter for shelter in shelter_list_at(at)}
    for order in orders:
        last = steps[order.pk][-1]
        order.level, order.reason, order.updated_at, order.lifted_at = last.level, last.reason, last.at, None
        order.steps_then = steps[order.pk]
        order.districts_then = sorted((districts[c] for c in last.districts if c in districts), key=lambda d: d.code)
        order.shelters_then = sorted((shelters[c] for c in last.shelters if c in shelters), key=lambda s: s.code)
    return sorted(orders, key=lambda order: (-order.level, -order.issued_at.timestamp(), -order.pk))


def orders_in_force_during(*, viewer: Viewer, since: datetime, until: datetime, slugs=None) -> list[Order]:
    """The orders in force at any time in [since, until] (of the towns `slugs`), first issued first."""
    orders = restrict(_orders(), viewer, Action.VIEW).filter(issued_at__lte=until).filter(
        Q(lifted_at__isnull=True) | Q(lifted_at__gte=since)
    )
    if slugs is not None:
        orders = orders.filter(municipality__slug__in=list(slugs))
    return list(orders.order_by("issued_at", "pk"))


def order_steps_between(
    *, viewer: Viewer, since: datetime, until: datetime, municipality: str | None = None
) -> list[OrderEvent]:
    """The steps (issued, raised, lowered, districts changed, lifted) of the orders the viewer may see
    taken in [since, until], oldest first, with their order, its town and scheme loaded."""
    steps = OrderEvent.objects.filter(
        at__gte=since, at__lte=until, order__in=restrict(Order.objects.all(), viewer, Action.VIEW).values("pk")
    )
    if municipality:
        steps = steps.filter(order__municipality__slug=municipality)
    return list(steps.select_related("order__municipality", "order__level_scheme").order_by("at", "pk"))


def order_feed_list(*, viewer: Viewer, limit: int) -> list[Order]:
    """Every order, in force or lifted, newest change first (the public record the feed carries)."""
    return list(restrict(_orders(), viewer, Action.VIEW).order_by("-updated_at", "-pk")[:limit])


def order_get(*, viewer: Viewer, order_id: int) -> Order:
    """One order the viewer may see; raises Order.DoesNotExist otherwise (the same for both)."""
    return restrict(_orders(), viewer, Action.VIEW).get(pk=order_id)


def order_history_visible(*, viewer: Viewer, order: Order) -> bool:
    """Who acted and on what evidence is the owning town's record."""
    if viewer.token_id is not None:
        return False
    return viewer.is_platform_admin or viewer.acting_municipality_id == order.municipality_id


def evidence_stations(*, viewer: Viewer, events) -> list[Station]:
    """The gauges named in these steps' evidence that the viewer may see (a neighbour's private gauge
    that triggered an order stays unnamed to residents)."""
    codes = {event.evidence.get("station") for event in events if isinstance(event.evidence, dict)}
    codes.discard(None)
    if not codes:
        return []
    return list(Station.objects.visible_to(viewer).filter(code__in=codes).select_related("state").order_by("code"))


# --- trigger rules and recommendations ------------------------------------------------------------


def trigger_rule_list(*, viewer: Viewer) -> list[TriggerRule]:
    rules = restrict(TriggerRule.objects.all(), viewer, Action.VIEW)
    return list(rules.select_related("station", "municipality").prefetch_related("districts"))


def recommendation_list(*, viewer: Viewer, state: str | None = Recommendation.State.OPEN) -> list[Recommendation]:
    recommendations = restrict(Recommendation.objects.all(), viewer, Action.VIEW)
    if state:
        recommendations = recommendations.filter(state=state)
    return list(
        recommendations.select_related("municipality", "rule", "handled_by", "order").prefetch_related(
            Prefetch("districts", queryset=District.objects.order_by("code"))
        )
    )


def recommendation_get(*, viewer: Viewer, recommendation_id: int) -> Recommendation:
    return restrict(Recommendation.objects.all(), viewer, Action.VIEW).select_related("municipality").get(
        pk=recommendation_id
    )


# --- drafts waiting for a second operator (OrderPolicy.second_person) ------------------------------


def order_policy_of(municipality_id: int | None) -> OrderPolicy | None:
    if municipality_id is None:
        return None
    return OrderPolicy.objects.filter(municipality_id=municipality_id).first()


def order_draft_list(*, viewer: Viewer, state: str | None = OrderDraft.State.PENDING) -> list[OrderDraft]:
    """The acting town's drafts (its staff only, like recommendations)."""
    drafts = restrict(OrderDraft.objects.all(), viewer, Action.VIEW)
    if state:
        drafts = drafts.filter(state=state)
    return list(
        drafts.select_related("municipality").prefetch_related(
            Prefetch("districts", queryset=District.objects.order_by("code")), "shelters"
        )
    )


def order_draft_get(*, viewer: Viewer, draft_id: int) -> OrderDraft:
    return restrict(OrderDraft.objects.all(), viewer, Action.VIEW).select_related("municipality").get(pk=draft_id)


def pending_drafts_of(recommendation_ids) -> dict[int, OrderDraft]:
    """The pending draft of each recommendation that has one (the board shows who waits for whom)."""
    drafts = OrderDraft.objects.filter(recommendation_id__in=list(recommendation_ids), state=OrderDraft.State.PENDING)
    return {draft.recommendation_id: draft for draft in drafts}
