"""Writes of evacuation decisions: issuing, changing and lifting orders, handling recommendations,
importing districts. Each transition is one transaction that stores the order, one OrderEvent (its
history, audit trail and CAP version), one tenancy audit row, and an `order.changed` event in the
change log (live map, alert channels).

Who may do it is asked here, through tenancy.permissions (ISSUE_ORDER / LIFT_ORDER: operators of the
districts' own town, acting for it, and platform operators), so every door (API, HQ board) agrees.
"""

from __future__ import annotations

import unicodedata
from typing import Any, Iterable

from django.db import transaction
from django.utils import timezone

from events import emit
from geo.models import Shelter
from geo.services import shelter_status_set
from tenancy.models import AuditEvent
from tenancy.permissions import Action, permits
from tenancy.selectors import Viewer
from tenancy.services import audit_record

from .models import ORDER_LEVELS, District, Order, OrderDraft, OrderEvent, OrderPolicy, Recommendation
from .selectors import active_level_scheme

ORDER_CHANGED = "order.changed"
RECOMMENDATION_CHANGED = "recommendation.changed"
DRAFT_CHANGED = "order.draft_changed"
REASON_MAX_LENGTH = 1000
DISMISS_REASON_MAX_LENGTH = 300
MAX_DISTRICTS = 500
MAX_SHELTERS = 200


class OrderError(ValueError):
    """A request that cannot be carried out as given; `field` names what is wrong."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


class OrderForbidden(PermissionError):
    pass


class OrderConflict(RuntimeError):
    """The order (or recommendation) is not in a state that allows this step."""


# --- checking what was asked ---------------------------------------------------------------------


def checked_level(level: Any) -> int:
    if isinstance(level, bool) or not isinstance(level, int) or level not in ORDER_LEVELS:
        raise OrderError("level", f"level must be one of {', '.join(map(str, ORDER_LEVELS))} (an integer).")
    return level


def checked_text(value: Any, field: str, max_length: int, *, required: bool = False) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise OrderError(field, f"{field} must be text.")
    if len(value) > max_length:
        raise OrderError(field, f"{field} is longer than {max_length} characters.")
    if any(unicodedata.category(ch) == "Cc" and ch not in "\n\t" for ch in value):
        raise OrderError(field, f"{field} contains control characters.")
    value = value.strip()
    if required and not value:
        raise OrderError(field, f"{field} is required.")
    return value


def _codes(value: Any, field: str, limit: int, *, required: bool) -> list[str]:
    if value is None:
        value = []
    if not isinstance(value, list) or not all(isinstance(code, str) and 0 < len(code) <= 40 for code in value):
        raise OrderError(field, f"{field} must be a list of codes (text of at most 40 characters).")
    if any(unicodedata.category(ch) == "Cc" for code in value for ch in code):
        raise OrderError(field, f"{field}: a code contains control characters.")
    if len(value) > limit:
        raise OrderError(field, f"at most {limit} {field}.")
    if required and not value:
        raise OrderError(field, f"name at least one of the town's {field}.")
    return list(dict.fromkeys(value))


def checked_districts(value: Any, *, municipality_id: int | None) -> list[District]:
    """The districts named by code, all of one town (the order's): unknown or foreign codes are errors."""
    codes = _codes(value, "districts", MAX_DISTRICTS, required=True)
    found = {d.code: d for d in District.objects.select_related("municipality").filter(code__in=codes)}
    unknown = [code for code in codes if code not in found]
    if unknown:
        raise OrderError("districts", f"no district with code {', '.join(repr(c[:40]) for c in unknown[:5])}.")
    towns = {d.municipality_id for d in found.values()}
    if len(towns) > 1 or (municipality_id is not None and towns != {municipality_id}):
        raise OrderError("districts", "all districts of an order must belong to the order's town.")
    return [found[code] for code in codes]


def checked_shelters(value: Any, *, municipality_id: int) -> list[Shelter]:
    codes = _codes(value, "shelters", MAX_SHELTERS, required=False)
    found = {s.code: s for s in Shelter.objects.select_related("municipality").filter(code__in=codes)}
    unknown = [code for code in codes if code not in found]
    if unknown:
        raise OrderError("shelters", f"no shelter with code {', '.join(repr(c[:40]) for c in unknown[:5])}.")
    if any(s.municipality_id != municipality_id for s in found.values()):
        raise OrderError("shelters", "an order can open only its own town's shelters.")
    return [found[code] for code in codes]


DENIED = {
    Action.ISSUE_ORDER: "Only operators and admins of the districts' own town, acting for it, can issue or change its orders.",
    Action.LIFT_ORDER: "Only operators and admins of the districts' own town, acting for it, can lift its orders.",
    Action.MANAGE_TRIGGER_RULES: "Only the town's admins, acting for it, edit its trigger rules and order policy.",
}
OWN_DRAFT = "A second operator must confirm: the one who drafted an order cannot confirm it."


def _require(viewer: Viewer, action: Action, obj) -> None:
    if not permits(viewer, action, obj):
        raise OrderForbidden(DENIED[action])


# --- the transitions ------------------------------------------------------------------------------


def _record(order: Order, kind: str, *, actor, reason: str, evidence: dict, request=None) -> OrderEvent:
    event = OrderEvent.objects.create(
        order=order,
        kind=kind,
        level=order.level,
        districts=sorted(order.districts.values_list("code", flat=True)),
        shelters=sorted(order.shelters.values_list("code", flat=True)),
        reason=reason,
        evidence=evidence or {},
        at=order.lifted_at if kind == OrderEvent.Kind.LIFTED else order.updated_at,
        actor=actor if getattr(actor, "is_authenticated", False) else None,
        actor_name=actor.get_username() if getattr(actor, "is_authenticated", False) else "",
    )
    audit_record(
        action=AuditEvent.Action.ORDER_CHANGED,
        actor=actor,
        municipality=order.municipality_id,
        target=f"order {order.pk}",
        detail={"kind": kind, "level": order.level, "districts": event.districts, "reason": reason[:200]},
        request=request,
    )
    emit(ORDER_CHANGED, {"orders": [order.pk], "event": event.pk})
    return event


def _open_shelters(shelters: Iterable[Shelter], *, viewer: Viewer, actor, request=None) -> None:
    for shelter in shelters:
        if shelter.status == Shelter.Status.CLOSED:
            if not permits(viewer, Action.SET_SHELTER_STATUS, shelter):
                raise OrderForbidden(f"You may not open shelter {shelter.code}.")
            shelter_status_set(shelter=shelter, status=Shelter.Status.OPEN, actor=actor, request=request)


def second_person_required(municipality_id: int) -> bool:
    return OrderPolicy.objects.filter(municipality_id=municipality_id, second_person=True).exists()


def order_issue(
    *,
    viewer: Viewer,
    actor,
    level: Any,
    districts: Any,
    reason: Any = "",
    shelters: Any = None,
    open_shelters: bool = False,
    evidence: dict | None = None,
    recommendation: Recommendation | None = None,
    request=None,
) -> Order | OrderDraft:
    """Issue an order for districts of one town; optionally open its linked shelters in the same step.
    When the town asks for a second person (OrderPolicy), this only drafts it: the OrderDraft is
    returned, and the order is issued when another operator confirms (order_draft_confirm)."""
    level = checked_level(level)
    reason = checked_text(reason, "reason", REASON_MAX_LENGTH)
    chosen = checked_districts(districts, municipality_id=recommendation.municipality_id if recommendation else None)
    town = chosen[0].municipality
    _require(viewer, Action.ISSUE_ORDER, town)
    linked = checked_shelters(shelters, municipality_id=town.pk)
    if second_person_required(town.pk):
        return _order_draft(
            viewer=viewer, actor=actor, town=town, level=level, districts=chosen, shelters=linked, reason=reason,
            open_shelters=open_shelters, evidence=evidence, recommendation=recommendation, request=request,
        )
    return _order_issue_now(
        viewer=viewer, actor=actor, town=town, level=level, districts=chosen, shelters=linked, reason=reason,
        open_shelters=open_shelters, evidence=evidence, recommendation=recommendation, request=request,
    )


def _order_issue_now(
    *, viewer, actor, town, level, districts, shelters, reason, open_shelters, evidence, recommendation, request
) -> Order:
    chosen, linked = districts, shelters
    with transaction.atomic():
        now = timezone.now()
        order = Order.objects.create(
            municipality=town, level=level, reason=reason, level_scheme=active_level_scheme(),
            issued_at=now, updated_at=now, issued_by=actor if getattr(actor, "is_authenticated", False) else None,
        )
        order.districts.set(chosen)
        order.shelters.set(linked)
        if open_shelters:
            _open_shelters(linked, viewer=viewer, actor=actor, request=request)
        if recommendation is not None:
            evidence = {**recommendation.evidence, **(evidence or {})}
            _recommendation_close(
                recommendation, state=Recommendation.State.ISSUED, viewer=viewer, actor=actor, order=order, request=request
            )
        _record(order, OrderEvent.Kind.ISSUED, actor=actor, reason=reason, evidence=evidence or {}, request=request)
    return order


def order_change(
    *,
    viewer: Viewer,
    actor,
    order: Order,
    level: Any = None,
    districts: Any = None,
    shelters: Any = None,
    reason: Any = "",
    open_shelters: bool = False,
    evidence: dict | None = None,
    request=None,
) -> OrderEvent | None:
    """Raise or lower the level, change the districts (extend to more, or fewer) or the shelters.
    Returns the recorded step, or None when nothing changed."""
    _require(viewer, Action.ISSUE_ORDER, order)
    reason = checked_text(reason, "reason", REASON_MAX_LENGTH)
    new_level = order.level if level is None else checked_level(level)
    chosen = None if districts is None else checked_districts(districts, municipality_id=order.municipality_id)
    linked = None if shelters is None else checked_shelters(shelters, municipality_id=order.municipality_id)
    with transaction.atomic():
        locked = Order.objects.select_for_update().get(pk=order.pk)
        if locked.lifted_at is not None:
            raise OrderConflict("This order has been lifted; issue a new one.")
        before_districts = set(locked.districts.values_list("code", flat=True))
        before_shelters = set(locked.shelters.values_list("code", flat=True))
        district_change = chosen is not None and {d.code for d in chosen} != before_districts
        shelter_change = linked is not None and {s.code for s in linked} != before_shelters
        if new_level == locked.level and not district_change and not shelter_change:
            if linked and open_shelters:
                _open_shelters(linked, viewer=viewer, actor=actor, request=request)
            return None
        if new_level > locked.level:
            kind = OrderEvent.Kind.RAISED
        elif new_level < locked.level:
            kind = OrderEvent.Kind.LOWERED
        else:
            kind = OrderEvent.Kind.EXTENDED
        locked.level = new_level
        locked.updated_at = timezone.now()
        if reason:
            locked.reason = reason
        locked.save(update_fields=["level", "updated_at", "reason"])
        if district_change:
            locked.districts.set(chosen)
        if shelter_change:
            locked.shelters.set(linked)
        if open_shelters and linked:
            _open_shelters(linked, viewer=viewer, actor=actor, request=request)
        event = _record(locked, kind, actor=actor, reason=reason, evidence=evidence or {}, request=request)
    order.refresh_from_db()
    return event


def order_lift(*, viewer: Viewer, actor, order: Order, reason: Any = "", request=None) -> OrderEvent | None:
    """Lift an order (the danger has passed). Lifting a lifted order records nothing and returns None."""
    _require(viewer, Action.LIFT_ORDER, order)
    reason = checked_text(reason, "reason", REASON_MAX_LENGTH)
    with transaction.atomic():
        locked = Order.objects.select_for_update().get(pk=order.pk)
        if locked.lifted_at is not None:
            return None
        locked.lifted_at = locked.updated_at = timezone.now()
        locked.save(update_fields=["lifted_at", "updated_at"])
        event = _record(locked, OrderEvent.Kind.LIFTED, actor=actor, reason=reason, evidence={}, request=request)
    order.refresh_from_db()
    return event


# --- the second person (OrderPolicy.second_person) ------------------------------------------------


def _actor_name(actor) -> str:
    return actor.get_username() if getattr(actor, "is_authenticated", False) else ""


def _order_draft(
    *, viewer, actor, town, level, districts, shelters, reason, open_shelters, evidence, recommendation, request
) -> OrderDraft:
    with transaction.atomic():
        if recommendation is not None and OrderDraft.objects.filter(
            recommendation=recommendation, state=OrderDraft.State.PENDING
        ).exists():
            raise OrderConflict("This recommendation already waits for a second operator's confirmation.")
        draft = OrderDraft.objects.create(
            municipality=town, level=level, reason=reason, open_shelters=bool(open_shelters),
            evidence={**(recommendation.evidence if recommendation else {}), **(evidence or {})},
            recommendation=recommendation, drafted_at=timezone.now(),
            drafted_by=actor if getattr(actor, "is_authenticated", False) else None, drafted_by_name=_actor_name(actor),
        )
        draft.districts.set(districts)
        draft.shelters.set(shelters)
        audit_record(
            action=AuditEvent.Action.ORDER_CHANGED, actor=actor, municipality=town.pk, target=f"order draft {draft.pk}",
            detail={"kind": "drafted", "level": level, "districts": sorted(d.code for d in districts),
                    "reason": reason[:200], "evidence": draft.evidence},
            request=request,
        )
        _draft_changed(draft)
    return draft


def _draft_changed(draft: OrderDraft) -> None:
    emit(DRAFT_CHANGED, {"drafts": [draft.pk], "municipality": draft.municipality_id})
    if draft.recommendation_id:
        emit(RECOMMENDATION_CHANGED, {"recommendations": [draft.recommendation_id], "municipality": draft.municipality_id})


def _pending(draft: OrderDraft) -> OrderDraft:
    locked = OrderDraft.objects.select_for_update().get(pk=draft.pk)
    if locked.state != OrderDraft.State.PENDING:
        raise OrderConflict(f"This draft was already {locked.state}.")
    return locked


def order_draft_confirm(*, viewer: Viewer, actor, draft: OrderDraft, confirm: Any, request=None) -> Order:
    """The second operator confirms: the order is issued as drafted, by them, with both names in its
    evidence and both steps in the audit log. The drafter cannot confirm their own draft."""
    _require(viewer, Action.ISSUE_ORDER, draft)
    if confirm is not True:
        raise OrderError("confirm", "Issuing an order needs confirmation: send \"confirm\": true.")
    if not getattr(actor, "is_authenticated", False) or actor.pk == draft.drafted_by_id:
        raise OrderForbidden(OWN_DRAFT)
    with transaction.atomic():
        locked = _pending(draft)
        districts = list(locked.districts.select_related("municipality"))
        shelters = list(locked.shelters.all())
        recommendation = locked.recommendation
        if recommendation is not None and recommendation.state != Recommendation.State.OPEN:
            recommendation = None  # handled meanwhile (dismissed): the order still stands on its own
        order = _order_issue_now(
            viewer=viewer, actor=actor, town=locked.municipality, level=locked.level, districts=districts,
            shelters=shelters, reason=locked.reason, open_shelters=locked.open_shelters,
            evidence={**locked.evidence, "drafted_by": locked.drafted_by_name, "confirmed_by": _actor_name(actor),
                      "draft": locked.pk},
            recommendation=recommendation, request=request,
        )
        locked.state, locked.order = OrderDraft.State.CONFIRMED, order
        locked.handled_at, locked.handled_by, locked.handled_by_name = timezone.now(), actor, _actor_name(actor)
        locked.save(update_fields=["state", "order", "handled_at", "handled_by", "handled_by_name"])
        audit_record(
            action=AuditEvent.Action.ORDER_CHANGED, actor=actor, municipality=locked.municipality_id,
            target=f"order draft {locked.pk}",
            detail={"kind": "confirmed", "order": order.pk, "drafted_by": locked.drafted_by_name},
            request=request,
        )
        _draft_changed(locked)
    draft.refresh_from_db()
    return order


def order_draft_withdraw(*, viewer: Viewer, actor, draft: OrderDraft, reason: Any = "", request=None) -> None:
    """Withdraw a draft (its drafter or another operator of the town), with an optional reason."""
    _require(viewer, Action.ISSUE_ORDER, draft)
    reason = checked_text(reason, "reason", DISMISS_REASON_MAX_LENGTH)
    with transaction.atomic():
        locked = _pending(draft)
        locked.state, locked.withdraw_reason = OrderDraft.State.WITHDRAWN, reason
        locked.handled_at, locked.handled_by, locked.handled_by_name = timezone.now(), actor, _actor_name(actor)
        locked.save(update_fields=["state", "withdraw_reason", "handled_at", "handled_by", "handled_by_name"])
        audit_record(
            action=AuditEvent.Action.ORDER_CHANGED, actor=actor, municipality=locked.municipality_id,
            target=f"order draft {locked.pk}", detail={"kind": "withdrawn", "reason": reason},
            request=request,
        )
        _draft_changed(locked)
    draft.refresh_from_db()


def order_policy_set(*, viewer: Viewer, actor, town, second_person: Any, request=None) -> OrderPolicy:
    """The town's admins switch the second-person rule (audited)."""
    _require(viewer, Action.MANAGE_TRIGGER_RULES, town)
    if not isinstance(second_person, bool):
        raise OrderError("second_person", "second_person must be true or false.")
    with transaction.atomic():
        policy, _ = OrderPolicy.objects.select_for_update().get_or_create(municipality=town)
        if policy.second_person != second_person:
            policy.second_person = second_person
            policy.save(update_fields=["second_person", "updated_at"])
            audit_record(
                action=AuditEvent.Action.TRIGGER_RULE_CHANGED, actor=actor, municipality=town,
                target="order policy", detail={"second_person": second_person}, request=request,
            )
    return policy


# --- recommendations ------------------------------------------------------------------------------


def recommendation_open(*, municipality_id: int, level: int, districts: list[District], evidence: dict, rule=None) -> Recommendation:
    """A new open recommendation on the town's HQ board (from a trigger rule, or by hand)."""
    with transaction.atomic():
        recommendation = Recommendation.objects.create(
            municipality_id=municipality_id, rule=rule, level=level, evidence=evidence, created_at=timezone.now()
        )
        recommendation.districts.set(districts)
        emit(RECOMMENDATION_CHANGED, {"recommendations": [recommendation.pk], "municipality": municipality_id})
    return recommendation


def recommendation_manual(*, viewer: Viewer, actor, level: Any, districts: Any, note: Any = "", request=None) -> Recommendation:
    """The manual trigger: an operator puts a recommendation on the board for the team to confirm."""
    level = checked_level(level)
    note = checked_text(note, "note", DISMISS_REASON_MAX_LENGTH)
    chosen = checked_districts(districts, municipality_id=None)
    town = chosen[0].municipality
    _require(viewer, Action.ISSUE_ORDER, town)
    evidence = {"fired_by": "manual", "actor": actor.get_username() if actor else None, "note": note}
    return recommendation_open(municipality_id=town.pk, level=level, districts=chosen, evidence=evidence)


def _recommendation_close(recommendation, *, state, viewer, actor, order=None, reason="", request=None) -> None:
    locked = Recommendation.objects.select_for_update().get(pk=recommendation.pk)
    if locked.state != Recommendation.State.OPEN:
        raise OrderConflict(f"This recommendation was already {locked.state}.")
    locked.state = state
    locked.handled_at = timezone.now()
    locked.handled_by = actor if getattr(actor, "is_authenticated", False) else None
    locked.order = order
    locked.dismiss_reason = reason
    locked.save(update_fields=["state", "handled_at", "handled_by", "order", "dismiss_reason"])
    audit_record(
        action=AuditEvent.Action.RECOMMENDATION_HANDLED,
        actor=actor,
        municipality=locked.municipality_id,
        target=f"recommendation {locked.pk}",
        detail={"state": state, "order": order.pk if order else None, "reason": reason, "evidence": locked.evidence},
        request=request,
    )
    emit(RECOMMENDATION_CHANGED, {"recommendations": [locked.pk], "municipality": locked.municipality_id})
    recommendation.state, recommendation.handled_at, recommendation.order = locked.state, locked.handled_at, order


def recommendation_issue(
    *, viewer: Viewer, actor, recommendation: Recommendation, confirm: Any, level: Any = None, districts: Any = None,
    shelters: Any = None, open_shelters: bool = False, reason: Any = "", request=None,
) -> Order | OrderDraft:
    """Issue the recommended order, as recommended or changed (level, districts), after the operator
    confirmed it (`confirm` must be True: issuing an order is never one accidental click). With the
    town's second-person rule this drafts it (the recommendation stays open until confirmed)."""
    _require(viewer, Action.ISSUE_ORDER, recommendation)
    if confirm is not True:
        raise OrderError("confirm", "Issuing an order needs confirmation: send \"confirm\": true.")
    if recommendation.state != Recommendation.State.OPEN:
        raise OrderConflict(f"This recommendation was already {recommendation.state}.")
    return order_issue(
        viewer=viewer, actor=actor,
        level=recommendation.level if level is None else level,
        districts=list(recommendation.districts.values_list("code", flat=True)) if districts is None else districts,
        reason=reason, shelters=shelters, open_shelters=open_shelters, recommendation=recommendation, request=request,
    )


def recommendation_dismiss(*, viewer: Viewer, actor, recommendation: Recommendation, reason: Any, request=None) -> None:
    """Dismiss with a reason (kept in the audit log with the evidence that was shown)."""
    _require(viewer, Action.ISSUE_ORDER, recommendation)
    reason = checked_text(reason, "reason", DISMISS_REASON_MAX_LENGTH, required=True)
    with transaction.atomic():
        _recommendation_close(
            recommendation, state=Recommendation.State.DISMISSED, viewer=viewer, actor=actor, reason=reason,
            request=request,
        )


# --- districts from geodata files (import_geo --layer districts) ----------------------------------


def districts_import(context, features) -> tuple[int, int]:
    """The `districts` layer of geo's `import_geo`: keyed by district code (--code-field), owned by
    --municipality or else the town whose boundary contains the district's inner point. Several
    features with one code become one (Multi)Polygon. A district never moves to another town."""
    from geo.importers import POLYGONS, geojson_geometry, merged
    from geo.services import CODE_MAX_LENGTH, NAME_MAX_LENGTH, town_areas, town_containing

    chosen = context.options.municipality
    areas = [] if chosen else town_areas()
    groups: dict[str, list] = {}
    values_of: dict[str, dict] = {}
    for feature in features:
        try:
            code = context.text(feature, "code", CODE_MAX_LENGTH)
            name = context.text(feature, "name", NAME_MAX_LENGTH)
            name_en = context.text(feature, "name_en", NAME_MAX_LENGTH)
        except ValueError as exc:
            context.reject(feature, str(exc))
            continue
        if code is None:
            context.reject(feature, f"no district code in {context.fields.code}")
            continue
        if not District._meta.get_field("code").validators[0].regex.match(code):
            context.reject(feature, f"district code {code[:40]!r}: letters, digits, '.', '_' and '-' only")
            continue
        if name is None:
            context.reject(feature, f"no name in {context.fields.name}")
            continue
        town = chosen or town_containing(areas, feature.geometry.representative_point())
        if town is None:
            context.reject(feature, "outside every municipality boundary on the platform; give --municipality")
            continue
        previous = values_of.get(code)
        if previous is not None and previous["municipality"].pk != town.pk:
            context.reject(feature, f"code {code!r} is used in two towns in this file")
            continue
        groups.setdefault(code, []).append(feature)
        values_of[code] = {"municipality": town, "name_ja": name, "name_en": name_en or (previous or {}).get("name_en")}

    existing = {d.code: d for d in District.objects.select_related("municipality").filter(code__in=list(groups))}
    created = updated = 0
    for code, group in groups.items():
        values = values_of[code]
        geometry = geojson_geometry(merged((feature.geometry for feature in group), POLYGONS))
        district = existing.get(code)
        if district is None:
            District.objects.create(
                code=code, municipality=values["municipality"], name_ja=values["name_ja"],
                name_en=values["name_en"] or values["name_ja"], geometry=geometry,
            )
            created += 1
            continue
        if district.municipality_id != values["municipality"].pk:
            for feature in group:
                context.reject(
                    feature, f"district {code!r} belongs to {district.municipality.slug}; an import does not move it"
                )
            continue
        district.name_ja = values["name_ja"]
        district.name_en = values["name_en"] or district.name_en
        district.geometry = geometry
        district.save(update_fields=["name_ja", "name_en", "geometry"])
        updated += 1
    return created, updated


# --- trigger rules (the town's manual as data, edited by its admins) --------------------------------


def trigger_rule_add(
    *, viewer: Viewer, actor, town, station: Any = None, threshold: Any = None, level: Any, districts: Any,
    forecast_minutes: Any = None, jma_warning: Any = None, request=None,
):
    """Add a line to `town`'s trigger table. The gauge may be any the town may see (its own, or a
    neighbour's shared with it); or, instead of a gauge, a JMA warning for the town. The districts
    must be the town's own."""
    from sensors.models import Station

    from .models import JMA_TRIGGER_WARNINGS, TriggerRule

    _require(viewer, Action.MANAGE_TRIGGER_RULES, town)
    level = checked_level(level)
    if jma_warning not in (None, ""):
        if station not in (None, "") or threshold not in (None, "") or forecast_minutes not in (None, ""):
            raise OrderError("jma_warning", "a rule watches either a gauge (station, threshold) or a JMA warning, not both.")
        if jma_warning not in JMA_TRIGGER_WARNINGS:
            raise OrderError(
                "jma_warning", f"{str(jma_warning)[:40]!r} is not a JMA warning a rule may watch; "
                f"one of {', '.join(JMA_TRIGGER_WARNINGS)}.",
            )
        chosen = checked_districts(districts, municipality_id=town.pk)
        with transaction.atomic():
            rule = TriggerRule.objects.create(municipality=town, jma_warning=jma_warning, level=level)
            rule.districts.set(chosen)
            audit_record(
                action=AuditEvent.Action.TRIGGER_RULE_CHANGED, actor=actor, municipality=town, target=f"rule {rule.pk}",
                detail={"added": {"jma_warning": jma_warning, "level": level, "districts": [d.code for d in chosen]}},
                request=request,
            )
        # A warning already in force counts at once: the agency will not issue it a second time.
        transaction.on_commit(lambda: _jma_rules_now(town.pk))
        return rule
    code = checked_text(station, "station", 40, required=True)
    gauge = Station.objects.visible_to(viewer).filter(code=code).prefetch_related("thresholds").first()
    if gauge is None:
        raise OrderError("station", f"no gauge {code!r} that {town.slug} may see.")
    names = {t.name for t in gauge.thresholds.all()}
    if threshold not in names:
        raise OrderError("threshold", f"{code} has no threshold {str(threshold)[:40]!r}; it has {', '.join(sorted(names)) or 'none'}.")
    minutes = None
    if forecast_minutes not in (None, ""):
        try:
            minutes = int(forecast_minutes)
        except (TypeError, ValueError):
            raise OrderError("forecast_minutes", "forecast minutes must be a whole number (or empty).") from None
        if not 1 <= minutes <= 24 * 60:
            raise OrderError("forecast_minutes", "forecast minutes must be between 1 and 1440.")
    chosen = checked_districts(districts, municipality_id=town.pk)
    with transaction.atomic():
        rule = TriggerRule.objects.create(
            municipality=town, station=gauge, threshold=threshold, level=level, forecast_minutes=minutes
        )
        rule.districts.set(chosen)
        audit_record(
            action=AuditEvent.Action.TRIGGER_RULE_CHANGED, actor=actor, municipality=town, target=f"rule {rule.pk}",
            detail={"added": {"station": code, "threshold": threshold, "level": level, "forecast_minutes": minutes,
                              "districts": [d.code for d in chosen]}},
            request=request,
        )
    return rule


def _jma_rules_now(town_id: int) -> None:
    from .triggers import jma_rules_evaluate

    jma_rules_evaluate([town_id])


def trigger_rule_remove(*, viewer: Viewer, actor, rule, request=None) -> None:
    _require(viewer, Action.MANAGE_TRIGGER_RULES, rule)
    with transaction.atomic():
        audit_record(
            action=AuditEvent.Action.TRIGGER_RULE_CHANGED, actor=actor, municipality=rule.municipality_id,
            target=f"rule {rule.pk}",
            detail={"removed": {"station": rule.station.code, "threshold": rule.threshold, "level": rule.level}
                    if rule.station_id else {"jma_warning": rule.jma_warning, "level": rule.level}},
            request=request,
        )
        rule.delete()
