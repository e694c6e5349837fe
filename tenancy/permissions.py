"""The one permission door: may this viewer, acting for one town, do an action to an object?

Like netbox's `RestrictedQuerySet.restrict(user, action)`: `permits(viewer, action, obj)` answers for
one object and `restrict(queryset, viewer, action)` narrows a listing. Every page, API, websocket
and NGSI handler that decides an action asks here, so the rule has one home.

Only the role in the town the viewer is acting for counts (`Viewer.role`), never a role the user
holds in another town: an operator of A acting as B, where they are a viewer, is a viewer.

tenancy sits at the bottom of the dependency graph and imports no other app, so each app registers
its models here from `AppConfig.ready()`: where the owning town is (`owner`, a lookup such as
`station__municipality`) and, for models that are not simply public, how to narrow a queryset to
what a viewer may see (`visible`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Callable

from django.db.models import Model, QuerySet

from .models import Membership, Municipality
from .selectors import Viewer


class Action(StrEnum):
    VIEW = "view"
    ADD_NOTE = "add_note"
    ACKNOWLEDGE = "acknowledge"
    RESOLVE = "resolve"
    SET_SHELTER_STATUS = "set_shelter_status"
    MANAGE_SUBSCRIPTIONS = "manage_subscriptions"
    EDIT_THRESHOLDS = "edit_thresholds"
    MANAGE_TOKENS = "manage_tokens"
    MANAGE_MEMBERS = "manage_members"
    MANAGE_SHARING = "manage_sharing"
    MANAGE_ALERT_CHANNELS = "manage_alert_channels"
    VIEW_AUDIT = "view_audit"
    MANAGE_SHELTERS = "manage_shelters"
    POST_RELEASE = "post_release"
    ISSUE_ORDER = "issue_order"
    LIFT_ORDER = "lift_order"
    MANAGE_TRIGGER_RULES = "manage_trigger_rules"
    ONBOARD_TOWN = "onboard_town"
    MANAGE_STATIONS = "manage_stations"


OWNER = "owner"  # the object must belong to the acting town
VISIBLE = "visible"  # the object must be visible to the acting town (a neighbour's shared station counts)
PLATFORM = "platform"  # the platform's own business (onboarding towns): its operators only, never a town's


@dataclass(frozen=True)
class Rule:
    role: str | None  # least role in the acting town; None: anyone, signed in or not
    scope: str


RULES: dict[Action, Rule] = {
    Action.VIEW: Rule(None, VISIBLE),
    # Neighbours who see a shared station see its alerts and may leave a note for the owner's HQ…
    Action.ADD_NOTE: Rule(Membership.Role.OPERATOR, VISIBLE),
    # …but acknowledging and resolving belong to the town that owns the station.
    Action.ACKNOWLEDGE: Rule(Membership.Role.OPERATOR, OWNER),
    Action.RESOLVE: Rule(Membership.Role.OPERATOR, OWNER),
    Action.SET_SHELTER_STATUS: Rule(Membership.Role.OPERATOR, OWNER),
    Action.MANAGE_SUBSCRIPTIONS: Rule(Membership.Role.OPERATOR, OWNER),
    Action.EDIT_THRESHOLDS: Rule(Membership.Role.ADMIN, OWNER),
    Action.MANAGE_TOKENS: Rule(Membership.Role.ADMIN, OWNER),
    Action.MANAGE_MEMBERS: Rule(Membership.Role.ADMIN, OWNER),
    Action.MANAGE_SHARING: Rule(Membership.Role.ADMIN, OWNER),
    Action.MANAGE_ALERT_CHANNELS: Rule(Membership.Role.ADMIN, OWNER),
    Action.VIEW_AUDIT: Rule(Membership.Role.ADMIN, OWNER),
    # The town's shelter register (import / export of the standard dataset); opening one is SET_SHELTER_STATUS.
    Action.MANAGE_SHELTERS: Rule(Membership.Role.ADMIN, OWNER),
    # A dam release notice (放流通知): posted and ended by the dam's town.
    Action.POST_RELEASE: Rule(Membership.Role.OPERATOR, OWNER),
    # Evacuation orders are the mayor's: only the districts' own town decides them, never a neighbour.
    Action.ISSUE_ORDER: Rule(Membership.Role.OPERATOR, OWNER),
    Action.LIFT_ORDER: Rule(Membership.Role.OPERATOR, OWNER),
    Action.MANAGE_TRIGGER_RULES: Rule(Membership.Role.ADMIN, OWNER),
    # Adding, editing, moving and retiring the town's own stations.
    Action.MANAGE_STATIONS: Rule(Membership.Role.ADMIN, OWNER),
    # A new town and its first admin: the platform operator's, not any town admin's.
    Action.ONBOARD_TOWN: Rule(Membership.Role.ADMIN, PLATFORM),
}


@dataclass(frozen=True)
class _Registration:
    owner: str  # lookup from the model to its owning Municipality ("" for Municipality itself)
    visible: Callable[[QuerySet, Viewer], QuerySet] | None


_registry: dict[type[Model], _Registration] = {Municipality: _Registration(owner="", visible=None)}


def register(model: type[Model], *, owner: str, visible: Callable[[QuerySet, Viewer], QuerySet] | None = None):
    """Called from an app's `ready()`: how to find `model`'s owning town, and its visibility rule."""
    _registry[model] = _Registration(owner=owner, visible=visible)


def _registration(model: type[Model]) -> _Registration:
    try:
        return _registry[model]
    except KeyError:
        raise LookupError(f"{model.__name__} is not registered with tenancy.permissions") from None


def owner_id(obj: Model) -> int:
    """The pk of the town that owns `obj`."""
    path = _registration(type(obj)).owner
    if not path:
        return obj.pk
    *hops, last = path.split("__")
    for hop in hops:
        obj = getattr(obj, hop)
    return getattr(obj, f"{last}_id")


def _role_allows(viewer: Viewer, rule: Rule) -> bool:
    if rule.role is None:
        return True
    # Gateway tokens read; they never act as a person (NGSI subscriptions take the token itself).
    return viewer.token_id is None and viewer.has_role(rule.role)


def restrict(queryset: QuerySet, viewer: Viewer, action: Action) -> QuerySet:
    """`queryset` narrowed to the objects `viewer` may do `action` to."""
    rule = RULES[action]
    registration = _registration(queryset.model)
    if not _role_allows(viewer, rule):
        return queryset.none()
    if rule.scope == PLATFORM:
        return queryset if viewer.is_platform_admin else queryset.none()
    if rule.scope == OWNER:
        if viewer.is_platform_admin:
            return queryset
        if viewer.acting_municipality_id is None:
            return queryset.none()
        field = f"{registration.owner}_id" if registration.owner else "pk"
        return queryset.filter(**{field: viewer.acting_municipality_id})
    if registration.visible is None:
        return queryset
    return registration.visible(queryset, viewer)


def permits(viewer: Viewer, action: Action, obj: Model) -> bool:
    """May `viewer`, acting for its town, do `action` to `obj`?"""
    rule = RULES[action]
    if not _role_allows(viewer, rule):
        return False
    if rule.scope == PLATFORM:
        return viewer.is_platform_admin
    if rule.scope == OWNER:
        return viewer.is_platform_admin or (
            viewer.acting_municipality_id is not None and owner_id(obj) == viewer.acting_municipality_id
        )
    if _registration(type(obj)).visible is None:
        return True
    return restrict(type(obj)._default_manager.filter(pk=obj.pk), viewer, action).exists()
