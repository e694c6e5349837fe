"""Writes through the NGSI interface: readings (always via `sensors.services.observation_ingest`),
subscriptions and their notifications, and Orion notifications received from other brokers."""

from __future__ import annotations

import http.client
from collections import defaultdict
import json
import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Mapping, Sequence
from urllib.parse import urlencode, urlsplit

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from events import emit
from orders.models import OrderEvent
from outbound import http as outbound_http
from outbound.destinations import RefusedDestination
from sensors.models import Observation
from sensors.parsers import number_from_text
from sensors.services import STATION_CHANGED, IngestReport, changed_station_ids, observation_ingest
from tenancy.models import IngestToken, Municipality
from tenancy.permissions import Action, permits
from tenancy.selectors import Viewer

from .conf import ngsi_setting
from .documents import subscription_fields
from .entities import (
    KEY_VALUES,
    NUMERIC_TYPES,
    READ_ONLY_ATTRIBUTES,
    TIME_ATTRIBUTES,
    TIME_TYPES,
    Attribute,
    StationEntity,
    name_is_valid,
    render_attribute,
    station_entity,
    to_stored_value,
)
from .errors import BadRequest, Forbidden, NotFound, PartialUpdate, Unauthorized, Unprocessable
from .filters import EntityFilter, compile_pattern, parse_geo, parse_q, parse_time
from .models import NotifyMapping, Subscription
from .order_entities import order_entities_changed, order_number
from .selectors import (
    Tenant,
    municipality_get,
    notify_mappings_for,
    subscription_owner_viewer,
    subscription_tenant,
    subscriptions_to_notify,
    tenant_name,
    visible_stations,
    writable_entities,
    writable_entity,
)

logger = logging.getLogger(__name__)

MAX_BATCH_ENTITIES = 1000

# --- readings written as attributes ------------------------------------------------------------------


def _attribute_payload(name: str, payload: Any, *, key_values: bool) -> tuple[Any, dict]:
    """(value, metadata) of one attribute in a request body."""
    if key_values:
        return payload, {}
    if not isinstance(payload, dict):
        raise BadRequest(f"Attribute '{name}' must be a JSON object with a 'value' (or use options=keyValues)")
    unknown = sorted(set(payload) - {"value", "type", "metadata"})
    if unknown:
        raise BadRequest(f"Unrecognized field in attribute '{name}': /{unknown[0][:40]}/")
    if "value" not in payload:
        raise BadRequest(f"Attribute '{name}' has no 'value'")
    if "type" in payload and not isinstance(payload["type"], str):
        raise BadRequest(f"The type of attribute '{name}' must be a string")
    metadata = payload.get("metadata", {})
    if not isinstance(metadata, dict):
        raise BadRequest(f"The metadata of attribute '{name}' must be a JSON object")
    return payload["value"], {"type": payload.get("type"), "metadata": metadata}


def finite_number(raw: Any) -> float | None:
    """A JSON number as a finite float; None for anything else (true/false, text, 1e400, 10**5000)."""
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        return None
    try:
        number = float(raw)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _time_value(raw: Any, where: str) -> datetime:
    if not isinstance(raw, str):
        raise BadRequest(f"{where} must be an ISO 8601 time string")
    parsed = parse_time(raw)
    if parsed is None:
        raise BadRequest(f"{where} {raw[:40]!r} is not an ISO 8601 time in the representable range")
    return parsed


def reading_from_attributes(entity: StationEntity, attrs: Any, *, key_values: bool) -> dict:
    """One observation item for `observation_ingest` from the attributes written to an entity."""
    if not isinstance(attrs, dict):
        raise BadRequest("The attributes must be a JSON object")
    if not attrs:
        raise BadRequest("Empty payload: no attribute to update")
    measured = entity.measured_attribute
    value, observed_at, time_from_metadata = None, None, None
    for name, payload in attrs.items():
        if not name_is_valid(name):
            raise BadRequest(f"Invalid characters in attribute name {name[:60]!r}")
        if name in READ_ONLY_ATTRIBUTES:
            raise Unprocessable(f"Attribute '{name}' of {entity.id} cannot be written: it comes from {READ_ONLY_ATTRIBUTES[name]}")
        if name != measured and name not in TIME_ATTRIBUTES:
            raise Unprocessable(
                f"{entity.id} has no writable attribute '{name}': write '{measured}' (a reading), "
                "optionally with 'dateObserved'"
            )
        raw, details = _attribute_payload(name, payload, key_values=key_values)
        declared = details.get("type")
        if name == measured:
            if declared is not None and declared not in NUMERIC_TYPES:
                raise BadRequest(f"Attribute '{name}' must have a numeric type ({', '.join(NUMERIC_TYPES)}), not {declared[:40]!r}")
            value = finite_number(raw)
            if value is None:
                raise BadRequest(f"The value of attribute '{name}' must be a finite number")
            instant = details.get("metadata", {}).get("TimeInstant")
            if instant is not None:
                time_from_metadata = _time_value(
                    instant.get("value") if isinstance(instant, dict) else instant, f"Metadata TimeInstant of '{name}'"
                )
        else:
            if declared is not None and declared not in TIME_TYPES:
                raise BadRequest(f"Attribute '{name}' must have type DateTime, not {declared[:40]!r}")
            observed_at = _time_value(raw, f"Attribute '{name}'")
    if value is None:
        raise Unprocessable(f"'dateObserved' can only be written together with '{measured}' on {entity.id}")
    return {
        "station": entity.code,
        "observed_at": observed_at or time_from_metadata or timezone.now(),
        "value": to_stored_value(entity.kind, value),
    }


def _rejection_text(error: str, entity: StationEntity) -> str:
    text = error.replace("'observed_at'", "'dateObserved'").replace("'value'", f"'{entity.measured_attribute}'")
    return f"{entity.id}: {text}"


# Readings stored through NGSI that did not move their station's latest state (stamped older than
# it): Orion notifies subscribers of every update, so these reach `station_changes_notify` too,
# while alert evaluation and the live maps, which follow the latest state only, do not hear of them.
READINGS_STORED = "ngsi.readings_stored"


def _ingest(token: IngestToken, entities: Sequence[StationEntity], items: list[dict]) -> IngestReport:
    with transaction.atomic():
        report = observation_ingest(municipality=token.municipality, items=items, source=Observation.Source.NGSI)
        unmoved = report.stored_station_ids - {state.station_id for state in report.changed_states}
        if unmoved:
            emit(READINGS_STORED, {"stations": sorted(unmoved)})
    if report.rejected:
        reasons = "; ".join(_rejection_text(r["error"], entities[r["index"]]) for r in report.rejected)
        if report.accepted or report.duplicates:
            raise PartialUpdate(reasons)
        raise Unprocessable(reasons)
    return report


def entity_attributes_write(
    *,
    token: IngestToken,
    tenant: Tenant,
    entity_id: str,
    entity_type: str | None,
    attrs: Any,
    key_values: bool,
    append_strict: bool = False,
) -> IngestReport:
    """POST/PATCH /v2/entities/<id>/attrs: a new reading of the entity's station."""
    entity = writable_entity(token=token, tenant=tenant, entity_id=entity_id, entity_type=entity_type)
    if append_strict and isinstance(attrs, dict) and attrs:
        existing = sorted(set(attrs) & set(entity.attrs))
        if existing:
            raise Unprocessable(f"Attributes already exist (options=append): {', '.join(existing)[:200]}")
    return _ingest(token, [entity], [reading_from_attributes(entity, attrs, key_values=key_values)])


def attribute_write(
    *, token: IngestToken, tenant: Tenant, entity_id: str, entity_type: str | None, name: str, payload: Any, value_only: bool
) -> IngestReport:
    """PUT /v2/entities/<id>/attrs/<name> (an attribute object) or .../value (the bare value)."""
    entity = writable_entity(token=token, tenant=tenant, entity_id=entity_id, entity_type=entity_type)
    if not name_is_valid(name):
        raise BadRequest("Invalid characters in attribute name")
    if name in TIME_ATTRIBUTES:
        raise Unprocessable(f"'{name}' can only be written together with '{entity.measured_attribute}' on {entity.id}")
    item = reading_from_attributes(entity, {name: payload}, key_values=value_only)
    return _ingest(token, [entity], [item])


BATCH_ACTIONS = ("append", "appendStrict", "update", "replace", "delete")


def entities_batch_update(
    *, token: IngestToken, tenant: Tenant, action_type: Any, entities: Any, key_values: bool
) -> IngestReport:
    """POST /v2/op/update: every entity's reading in one ingestion batch (so one notification each).

    The whole request is checked first (shape, entities, attributes): any problem refuses it all
    and stores nothing. What the ingestion service then refuses (future times, inactive stations)
    is reported as Unprocessable, or PartialUpdate when other readings were stored.
    """
    if action_type not in BATCH_ACTIONS:
        raise BadRequest(f"Invalid actionType: use one of {', '.join(BATCH_ACTIONS)}")
    if action_type == "delete":
        raise Unprocessable("actionType delete is not supported: stations are removed in the platform, readings are never deleted")
    if action_type == "appendStrict":
        raise Unprocessable("actionType appendStrict: the attributes of a station entity always exist; use update")
    if not isinstance(entities, list) or not entities:
        raise BadRequest("entities must be a non-empty array")
    if len(entities) > MAX_BATCH_ENTITIES:
        raise BadRequest(f"At most {MAX_BATCH_ENTITIES} entities per batch update")
    references = []
    for index, document in enumerate(entities):
        if not isinstance(document, dict):
            raise BadRequest(f"entities[{index}] must be a JSON object")
        entity_id, entity_type = document.get("id"), document.get("type")
        if not isinstance(entity_id, str) or not name_is_valid(entity_id):
            raise BadRequest(f"entities[{index}] needs a valid string id")
        if entity_type is not None and (not isinstance(entity_type, str) or not name_is_valid(entity_type)):
            raise BadRequest(f"entities[{index}] has an invalid type")
        references.append((entity_id, entity_type))
    resolved = writable_entities(token=token, tenant=tenant, references=references)
    items = [
        reading_from_attributes(
            entity, {key: value for key, value in document.items() if key not in ("id", "type")}, key_values=key_values
        )
        for entity, document in zip(resolved, entities)
    ]
    return _ingest(token, resolved, items)


def entity_create(
    *, token: IngestToken, tenant: Tenant, document: Any, key_values: bool, upsert: bool
) -> IngestReport:
    """POST /v2/entities. Stations are registered in the platform, so this only ever adds a reading
    to an existing station of the token's town, and only with options=upsert (as Orion would)."""
    if not isinstance(document, dict):
        raise BadRequest("The entity must be a JSON object")
    entity_id, entity_type = document.get("id"), document.get("type")
    if not isinstance(entity_id, str) or not name_is_valid(entity_id):
        raise BadRequest("The entity needs a valid string id")
    if entity_type is not None and (not isinstance(entity_type, str) or not name_is_valid(entity_type)):
        raise BadRequest("Invalid entity type")
    try:
        entity = writable_entity(token=token, tenant=tenant, entity_id=entity_id, entity_type=entity_type)
    except NotFound:
        # The same answer whether the station exists in another town or nowhere.
        raise Unprocessable(
            "Entity creation is not supported: register stations in the platform (admin), then write "
            "their readings here"
        ) from None
    if not upsert:
        raise Unprocessable("Already Exists (use options=upsert, or POST /v2/entities/<id>/attrs, to add a reading)")
    attrs = {key: value for key, value in document.items() if key not in ("id", "type")}
    return _ingest(token, [entity], [reading_from_attributes(entity, attrs, key_values=key_values)])


# --- subscriptions -------------------------------------------------------------------------------------


def _owner_town(*, viewer: Viewer, token: IngestToken | None, tenant: Tenant) -> Municipality:
    """A gateway token's town, or the town a member is acting for (an operator or admin there)."""
    if token is not None:
        return token.municipality
    if viewer.is_anonymous:
        raise Unauthorized("Subscriptions need a gateway token (Authorization: Bearer) or a logged-in member")
    if viewer.acting_municipality_id is not None:
        town = municipality_get(viewer.acting_municipality_id)
        if not permits(viewer, Action.MANAGE_SUBSCRIPTIONS, town):
            raise Forbidden("Managing subscriptions takes the operator or admin role in your municipality")
        return town
    if viewer.is_platform_admin and tenant.municipality is not None:
        return tenant.municipality
    raise BadRequest("Set Fiware-Service to the municipality that will own this subscription")


def subscription_check_manager(*, viewer: Viewer, token: IngestToken | None, subscription: Subscription) -> None:
    """Changing a subscription: its town's gateway token, or an operator or admin of that town."""
    if token is None and not permits(viewer, Action.MANAGE_SUBSCRIPTIONS, subscription):
        raise Forbidden("Managing subscriptions takes the operator or admin role in your municipality")


def subscription_create(
    *, viewer: Viewer, token: IngestToken | None, user_id: int | None, tenant: Tenant, document: Any
) -> Subscription:
    if tenant.is_set and tenant.municipality is None:
        raise Unprocessable(f"Unknown Fiware-Service {tenant.service!r}: not a municipality on this platform")
    owner = _owner_town(viewer=viewer, token=token, tenant=tenant)
    fields = subscription_fields(document, partial=False)
    return Subscription.objects.create(
        municipality=owner,
        service=tenant.municipality,
        owner_token=token,
        owner_user_id=None if token is not None else user_id,
        **fields,
    )


def subscription_update(*, subscription: Subscription, document: Any) -> Subscription:
    fields = subscription_fields(document, partial=True)
    if fields.get("status") == Subscription.Status.ACTIVE or "notification" in (document or {}):
        # Re-arming (or pointing elsewhere) starts the failure count afresh.
        fields["fails_counter"] = 0
    for name, value in fields.items():
        setattr(subscription, name, value)
    subscription.save()
    return subscription


def subscription_delete(*, subscription: Subscription) -> None:
    subscription.delete()


# --- notifications sent to subscribers --------------------------------------------------------------------


UPDATED = frozenset({"entityUpdate", "entityChange"})
CREATED = frozenset({"entityCreate"})


def _subject_matches(
    subscription: Subscription, entity: StationEntity, expression: EntityFilter | None, *, alterations=UPDATED
) -> bool:
    for pattern in subscription.entities:
        if "id" in pattern and pattern["id"] != entity.id:
            continue
        if "idPattern" in pattern and not compile_pattern(pattern["idPattern"], "idPattern").search(entity.id):
            continue
        if "type" in pattern and pattern["type"] != entity.type:
            continue
        if "typePattern" in pattern and not compile_pattern(pattern["typePattern"], "typePattern").search(entity.type):
            continue
        break
    else:
        return False
    if subscription.condition_attrs and not set(subscription.condition_attrs) & set(entity.changed_by_a_reading):
        return False
    if subscription.alteration_types and not alterations & set(subscription.alteration_types):
        return False
    return expression is None or expression.matches(entity)


def _expression_filter(subscription: Subscription) -> EntityFilter | None:
    expression = subscription.condition_expression or {}
    if not expression:
        return None
    return EntityFilter(
        q=parse_q(expression["q"]) if expression.get("q") else [],
        geo=parse_geo(expression.get("georel"), expression.get("geometry"), expression.get("coords")),
    )


def notification_entity(subscription: Subscription, entity: StationEntity) -> dict:
    """The entity as this subscription asked for it: attrs / exceptAttrs, onlyChangedAttrs, covered, format."""
    if subscription.notify_attrs:
        names = list(subscription.notify_attrs)
    else:
        names = [name for name in entity.attrs if name not in set(subscription.except_attrs)]
    if subscription.only_changed_attrs:
        names = [name for name in names if name in entity.changed_by_a_reading]
    rendered: dict[str, Any] = {"id": entity.id, "type": entity.type}
    for name in names:
        attribute = entity.attrs.get(name)
        if attribute is None:
            if not subscription.covered:
                continue
            attribute = Attribute("None", None)
        rendered[name] = attribute.value if subscription.attrs_format == KEY_VALUES else render_attribute(attribute)
    return rendered


def _throttle_allows(subscription: Subscription, now: datetime) -> bool:
    """Claim this notification slot; False while the throttling period since the last one runs."""
    queryset = Subscription.objects.filter(pk=subscription.pk, status=Subscription.Status.ACTIVE)
    if subscription.throttling:
        cutoff = now - timedelta(seconds=subscription.throttling)
        queryset = queryset.filter(Q(last_notification__isnull=True) | Q(last_notification__lte=cutoff))
    return queryset.update(last_notification=now) == 1


def _notify_matching(subscriptions: list[Subscription], audience_of, alterations_of=None) -> None:
    """At most one notification per subscription for a drain batch, holding every changed entity its
    owner may see that matches its subject, conditions and alteration types, unless its throttling
    period runs. `audience_of(subscription, viewer)` gives the key of what the owner may see and a
    function that reads those entities: read once per key, shared by every subscription of the same
    audience. `alterations_of(entity)` says how the entity changed (default: updated)."""
    from .tasks import notify_subscription

    now = timezone.now()
    seen_by: dict[tuple, list] = {}
    for subscription in subscriptions:
        viewer = subscription_owner_viewer(subscription)
        if viewer is None:
            continue
        audience, entities = audience_of(subscription, viewer)
        if audience not in seen_by:
            seen_by[audience] = entities()
        try:
            expression = _expression_filter(subscription)
            matching = [
                entity for entity in seen_by[audience]
                if _subject_matches(
                    subscription, entity, expression, alterations=alterations_of(entity) if alterations_of else UPDATED
                )
            ]
        except BadRequest as exc:
            # Validated when written; a rule tightened since then must not stop other subscriptions.
            logger.warning("subscription %s has an unusable subject: %s", subscription.public_id, exc.description)
            continue
        if not matching or not _throttle_allows(subscription, now):
            continue
        body = json.dumps(
            {"subscriptionId": subscription.public_id, "data": [notification_entity(subscription, e) for e in matching]},
            ensure_ascii=False,
            separators=(",", ":"),
        )
        notify_subscription.delay(subscription.pk, body)


def station_changes_notify(events: list[tuple[str, dict]]) -> None:
    """Change-log handler (NgsiConfig.ready): at most one notification per subscription for a drain
    batch, holding every matching changed entity the subscription's owner may see."""
    station_ids = changed_station_ids(events, kinds=(STATION_CHANGED, READINGS_STORED))
    if not station_ids:
        return
    subscriptions = subscriptions_to_notify()
    if not subscriptions:
        return

    def audience_of(subscription: Subscription, viewer: Viewer):
        tenant = subscription_tenant(subscription)
        key = (viewer.municipality_ids, viewer.is_platform_admin, tenant.municipality.pk if tenant.municipality else None)
        return key, lambda: [
            station_entity(station) for station in visible_stations(viewer=viewer, tenant=tenant).filter(pk__in=station_ids)
        ]

    _notify_matching(subscriptions, audience_of)


def order_changes_notify(events: list[tuple[str, dict]]) -> None:
    """Change-log handler `ngsi.notify_orders` (NgsiConfig.ready): subscribers to `Alert` entities hear
    of each step of an evacuation order (issued: `entityCreate`; raised, changed, lifted:
    `entityUpdate` / `entityChange`), as their owner may see the order, at most one notification per
    subscription and drain batch."""
    step_ids = {payload["event"] for _, payload in events if isinstance(payload.get("event"), int)}
    steps = list(OrderEvent.objects.filter(pk__in=step_ids).values_list("order_id", "kind"))
    if not steps:
        return
    subscriptions = subscriptions_to_notify()
    if not subscriptions:
        return
    alterations: dict[int, frozenset] = defaultdict(frozenset)
    for order_id, kind in steps:
        alterations[order_id] |= CREATED if kind == OrderEvent.Kind.ISSUED else UPDATED
    order_ids = set(alterations)

    def audience_of(subscription: Subscription, viewer: Viewer):
        key = (viewer.municipality_ids, viewer.is_platform_admin, viewer.acting_municipality_id, viewer.token_id)
        return key, lambda: order_entities_changed(viewer=viewer, ids=order_ids)

    _notify_matching(subscriptions, audience_of, lambda entity: alterations[order_number(entity.id)])


@dataclass(frozen=True)
class DeliveryOutcome:
    delivered: bool
    retry: bool
    reason: str = ""


def notification_headers(subscription: Subscription) -> dict[str, str]:
    tenant = subscription.service or subscription.municipality
    headers = {str(key): str(value) for key, value in (subscription.custom_headers or {}).items()}
    headers.update(
        {
            "Content-Type": "application/json; charset=utf-8",
            "Fiware-Service": tenant_name(tenant),
            "Fiware-ServicePath": "/",
            "Ngsiv2-AttrsFormat": subscription.attrs_format,
            "User-Agent": "mizumori-ngsi",
        }
    )
    return headers


def _record_success(subscription: Subscription, code: int, now: datetime) -> None:
    Subscription.objects.filter(pk=subscription.pk).update(
        times_sent=F("times_sent") + 1, last_success=now, last_success_code=code, fails_counter=0
    )


def _record_failure(subscription: Subscription, reason: str, now: datetime, *, attempted: bool) -> bool:
    """Count a failed delivery; True when that made the subscription 'failed' (no more tries)."""
    Subscription.objects.filter(pk=subscription.pk).update(
        times_sent=F("times_sent") + (1 if attempted else 0),
        last_failure=now,
        last_failure_reason=reason[:500],
        fails_counter=F("fails_counter") + 1,
    )
    limit = subscription.max_fails_limit or ngsi_setting("NGSI_NOTIFY_MAX_FAILS")
    return (
        Subscription.objects.filter(
            pk=subscription.pk, status=Subscription.Status.ACTIVE, fails_counter__gte=limit
        ).update(status=Subscription.Status.FAILED)
        == 1
    )


def notification_deliver(*, subscription_pk: int, body: str) -> DeliveryOutcome:
    """One HTTP attempt of one notification, recorded on the subscription (Orion's counters)."""
    subscription = Subscription.objects.select_related("municipality", "service").filter(pk=subscription_pk).first()
    now = timezone.now()
    if subscription is None or subscription.status != Subscription.Status.ACTIVE or subscription.is_expired(now):
        return DeliveryOutcome(False, False, "the subscription is gone, inactive, failed or expired")
    timeout = ngsi_setting("NGSI_NOTIFY_TIMEOUT_SECONDS")
    url = subscription.url
    if subscription.custom_qs:
        url += ("&" if urlsplit(url).query else "?") + urlencode(subscription.custom_qs)
    try:
        # outbound.http checks the destination policy after resolving the name, connects only to the
        # checked address, and never follows a redirect (a receiver cannot bounce us inside).
        code = outbound_http.post(url, body.encode("utf-8"), notification_headers(subscription), timeout=timeout)
    except RefusedDestination as exc:
        _record_failure(subscription, f"refused: {exc}", now, attempted=False)
        return DeliveryOutcome(False, False, str(exc))
    except (OSError, http.client.HTTPException, ValueError) as exc:  # ValueError: a header http.client refuses
        reason = f"{type(exc).__name__}: {str(exc)[:300]}"
        failed = _record_failure(subscription, reason, timezone.now(), attempted=True)
        return DeliveryOutcome(False, not failed, reason)
    if 200 <= code < 300:
        _record_success(subscription, code, timezone.now())
        return DeliveryOutcome(True, False)
    reason = f"HTTP {code}"
    failed = _record_failure(subscription, reason, timezone.now(), attempted=True)
    # 4xx other than timeouts and rate limits will not get better by asking again.
    return DeliveryOutcome(False, not failed and (code >= 500 or code in (408, 429)), reason)


def notification_backoff_seconds(retries_done: int) -> int:
    return ngsi_setting("NGSI_NOTIFY_BACKOFF_SECONDS") * 2**retries_done


# --- notifications received from other brokers (POST /ngsi/notify) -------------------------------------------

NOTIFY_FORMATS = ("normalized", "keyValues")


def _incoming_number(raw: Any) -> float | None:
    # IoT Agents often carry numbers as text ("23.5"); words, NaN and overflow are refused.
    if isinstance(raw, str):
        raw = number_from_text(raw)
    return finite_number(raw)


def _incoming_attribute(entity: Mapping, name: str, attrs_format: str | None) -> tuple[bool, Any, dict]:
    """(present, value, metadata) of an attribute in a normalized or keyValues notification."""
    if name not in entity:
        return False, None, {}
    raw = entity[name]
    normalized = attrs_format == "normalized" or (attrs_format is None and isinstance(raw, dict) and "value" in raw)
    if normalized:
        if not isinstance(raw, dict) or "value" not in raw:
            return True, None, {}
        metadata = raw.get("metadata")
        return True, raw["value"], metadata if isinstance(metadata, dict) else {}
    return True, raw, {}


def _incoming_time(entity: Mapping, mapping: NotifyMapping, metadata: dict, attrs_format: str | None, now: datetime):
    if mapping.time_attribute:
        present, value, _ = _incoming_attribute(entity, mapping.time_attribute, attrs_format)
        if not present:
            raise ValueError(f"time attribute '{mapping.time_attribute}' is missing")
        return value
    instant = metadata.get("TimeInstant")
    if isinstance(instant, dict) and "value" in instant:
        return instant["value"]
    for name in TIME_ATTRIBUTES:
        present, value, _ = _incoming_attribute(entity, name, attrs_format)
        if present and value is not None:
            return value
    return now


def notification_ingest(*, token: IngestToken, document: Any, attrs_format: str | None) -> dict:
    """Readings from an Orion notification `{"subscriptionId", "data": [entities]}`, through the
    admin-managed NotifyMappings of the token's own town; unmapped entities are reported, not stored."""
    if attrs_format is not None and attrs_format not in NOTIFY_FORMATS:
        raise BadRequest(f"Ngsiv2-AttrsFormat {attrs_format[:40]!r} is not supported: use normalized or keyValues")
    if not isinstance(document, dict):
        raise BadRequest('The notification must be a JSON object {"subscriptionId": ..., "data": [...]}')
    subscription_id = document.get("subscriptionId")
    if subscription_id is not None and not isinstance(subscription_id, str):
        raise BadRequest("subscriptionId must be a string")
    data = document.get("data")
    if not isinstance(data, list):
        raise BadRequest("The notification has no 'data' array")
    limit = ngsi_setting("NGSI_MAX_LIMIT")
    if len(data) > limit:
        raise BadRequest(f"The notification has more than {limit} entities")
    for index, entity in enumerate(data):
        if not isinstance(entity, dict):
            raise BadRequest(f"data[{index}] must be an entity object")
        if not isinstance(entity.get("id"), str) or not entity["id"]:
            raise BadRequest(f"data[{index}] has no string 'id'")
        if "type" in entity and not isinstance(entity["type"], str):
            raise BadRequest(f"data[{index}] has a 'type' that is not a string")

    mappings = notify_mappings_for(token.municipality)
    patterns = {}
    for mapping in mappings:
        if mapping.entity_id_pattern:
            try:
                patterns[mapping.pk] = compile_pattern(mapping.entity_id_pattern, "the mapping's id pattern")
            except BadRequest as exc:
                logger.warning("NotifyMapping %s skipped: %s", mapping.pk, exc.description)
    now = timezone.now()
    items: list[dict] = []
    origins: list[tuple[str, str]] = []
    rejected: list[dict] = []
    unmapped: list[dict] = []
    for entity in data:
        entity_id, entity_type = entity["id"], entity.get("type", "")
        matched = [m for m in mappings if m.matches(entity_id, entity_type, patterns.get(m.pk))]
        if not matched:
            unmapped.append({"id": entity_id[:256], "type": entity_type[:256]})
            continue
        for mapping in matched:
            where = {"entity": entity_id[:256], "attribute": mapping.attribute}
            present, raw, metadata = _incoming_attribute(entity, mapping.attribute, attrs_format)
            if not present:
                rejected.append({**where, "error": "attribute missing from the notification"})
                continue
            number = _incoming_number(raw)
            if number is None:
                rejected.append({**where, "error": "value is not a number"})
                continue
            try:
                observed_at = _incoming_time(entity, mapping, metadata, attrs_format, now)
            except ValueError as exc:
                rejected.append({**where, "error": str(exc)})
                continue
            items.append(
                {"station": mapping.station.code, "observed_at": observed_at, "value": number * mapping.scale + mapping.offset}
            )
            origins.append((entity_id[:256], mapping.attribute))
    report = observation_ingest(municipality=token.municipality, items=items, source=Observation.Source.NGSI)
    for rejection in report.rejected:
        entity_id, attribute = origins[rejection["index"]]
        rejected.append({"entity": entity_id, "attribute": attribute, "error": rejection["error"]})
    return {
        "subscriptionId": subscription_id,
        "accepted": report.accepted,
        "duplicates": report.duplicates,
        "rejected": rejected,
        "unmapped": unmapped,
    }
