"""Orion's subscription JSON, both ways: a client's document -> model field values (or an NGSI
error naming the field), and a Subscription -> the document `GET /v2/subscriptions` shows."""

from __future__ import annotations

from datetime import datetime
from datetime import timezone as dt_timezone
from typing import Any

from outbound.destinations import destination_problem

from .entities import KEY_VALUES, NORMALIZED, name_is_valid
from .errors import BadRequest, Unprocessable
from .filters import compile_pattern, expect_type, parse_geo, parse_q, parse_time, reject_unknown_fields
from .models import Subscription

MAX_SUBJECT_ENTITIES = 100
MAX_ATTR_NAMES = 100
MAX_CUSTOM_HEADERS = 20
MAX_THROTTLING_SECONDS = 366 * 86400
ALTERATION_TYPES = ("entityCreate", "entityDelete", "entityUpdate", "entityChange")
# Headers a subscription may not set: they belong to the HTTP exchange or to us.
RESERVED_HEADERS = {
    "host", "content-length", "transfer-encoding", "connection", "content-type",
    "fiware-service", "fiware-servicepath", "ngsiv2-attrsformat",
}
# Shown by GET and echoed back by clients that PATCH what they read; ignored on input.
READ_ONLY_NOTIFICATION_FIELDS = {
    "timesSent", "lastNotification", "lastSuccess", "lastSuccessCode", "lastFailure", "lastFailureReason",
    "failsCounter",
}
OTHER_TRANSPORTS = ("mqtt", "mqttCustom", "kafka", "kafkaCustom")


_expect = expect_type
_unknown_fields = reject_unknown_fields


def _names(value: Any, where: str) -> list[str]:
    _expect(value, list, where)
    if len(value) > MAX_ATTR_NAMES:
        raise BadRequest(f"{where} lists more than {MAX_ATTR_NAMES} attributes")
    for name in value:
        if not name_is_valid(name):
            raise BadRequest(f"Invalid attribute name in {where}: {str(name)[:60]!r}")
    return list(dict.fromkeys(value))


def _subject(subject: Any) -> dict:
    _expect(subject, dict, "subject")
    _unknown_fields(subject, {"entities", "condition"}, "subject")
    entities = _expect(subject.get("entities"), list, "subject.entities")
    if not entities:
        raise BadRequest("subject.entities must name at least one entity or idPattern")
    if len(entities) > MAX_SUBJECT_ENTITIES:
        raise BadRequest(f"subject.entities has more than {MAX_SUBJECT_ENTITIES} items")
    patterns = []
    for index, item in enumerate(entities):
        where = f"subject.entities[{index}]"
        _expect(item, dict, where)
        _unknown_fields(item, {"id", "idPattern", "type", "typePattern"}, where)
        if ("id" in item) == ("idPattern" in item):
            raise BadRequest(f"{where} needs exactly one of id and idPattern")
        if "type" in item and "typePattern" in item:
            raise BadRequest(f"{where} cannot have both type and typePattern")
        pattern = {}
        if "id" in item:
            if not name_is_valid(item["id"]):
                raise BadRequest(f"Invalid entity id in {where}")
            pattern["id"] = item["id"]
        else:
            compile_pattern(_expect(item["idPattern"], str, f"{where}.idPattern"), f"{where}.idPattern")
            pattern["idPattern"] = item["idPattern"]
        if "type" in item:
            if not name_is_valid(item["type"]):
                raise BadRequest(f"Invalid entity type in {where}")
            pattern["type"] = item["type"]
        elif "typePattern" in item:
            compile_pattern(_expect(item["typePattern"], str, f"{where}.typePattern"), f"{where}.typePattern")
            pattern["typePattern"] = item["typePattern"]
        patterns.append(pattern)

    fields = {"entities": patterns, "condition_attrs": [], "condition_expression": {}, "alteration_types": []}
    condition = subject.get("condition")
    if condition is None:
        return fields
    _expect(condition, dict, "subject.condition")
    _unknown_fields(condition, {"attrs", "expression", "alterationTypes", "notifyOnMetadataChange"}, "subject.condition")
    if "attrs" in condition:
        fields["condition_attrs"] = _names(condition["attrs"], "subject.condition.attrs")
    if "expression" in condition:
        fields["condition_expression"] = _expression(condition["expression"])
    if "alterationTypes" in condition:
        types = _expect(condition["alterationTypes"], list, "subject.condition.alterationTypes")
        for alteration in types:
            if alteration not in ALTERATION_TYPES:
                raise BadRequest(f"Invalid alterationType {str(alteration)[:40]!r}")
        fields["alteration_types"] = list(dict.fromkeys(types))
    if "notifyOnMetadataChange" in condition:
        # Only readings change our entities, never metadata alone, so either value means the same.
        _expect(condition["notifyOnMetadataChange"], bool, "subject.condition.notifyOnMetadataChange")
    return fields


def _expression(expression: Any) -> dict:
    _expect(expression, dict, "subject.condition.expression")
    _unknown_fields(expression, {"q", "mq", "georel", "geometry", "coords"}, "subject.condition.expression")
    if expression.get("mq"):
        raise BadRequest("mq (queries on metadata) is not supported by this NGSI-v2 subset")
    kept = {}
    for key in ("q", "georel", "geometry", "coords"):
        if key in expression:
            kept[key] = _expect(expression[key], str, f"subject.condition.expression.{key}")
    if kept.get("q"):
        parse_q(kept["q"])
    parse_geo(kept.get("georel"), kept.get("geometry"), kept.get("coords"))
    return kept


def _headers(value: Any, where: str) -> dict:
    _expect(value, dict, where)
    if len(value) > MAX_CUSTOM_HEADERS:
        raise BadRequest(f"{where} has more than {MAX_CUSTOM_HEADERS} entries")
    for key, item in value.items():
        if not isinstance(item, str) or any(ch in f"{key}{item}" for ch in "\r\n\x00"):
            raise BadRequest(f"{where} must map names to single-line strings")
        if not key or not all(ch.isalnum() or ch in "-_." for ch in key):
            raise BadRequest(f"Invalid name in {where}: {key[:40]!r}")
        if where.endswith("headers") and key.lower() in RESERVED_HEADERS:
            raise Unprocessable(f"{where} may not set {key}")
    return dict(value)


def _notification(notification: Any) -> dict:
    _expect(notification, dict, "notification")
    known = {
        "http", "httpCustom", "attrs", "exceptAttrs", "attrsFormat", "onlyChangedAttrs", "covered",
        "maxFailsLimit", "metadata", *OTHER_TRANSPORTS, *READ_ONLY_NOTIFICATION_FIELDS,
    }
    _unknown_fields(notification, known, "notification")
    transports = [name for name in ("http", "httpCustom", *OTHER_TRANSPORTS) if notification.get(name) is not None]
    if len(transports) != 1:
        raise BadRequest("notification needs exactly one of http and httpCustom")
    if transports[0] in OTHER_TRANSPORTS:
        raise Unprocessable(f"notification.{transports[0]} is not supported: use http or httpCustom")
    fields: dict[str, Any] = {"http_custom": transports[0] == "httpCustom", "custom_headers": {}, "custom_qs": {}}
    endpoint = _expect(notification[transports[0]], dict, f"notification.{transports[0]}")
    if fields["http_custom"]:
        _unknown_fields(endpoint, {"url", "headers", "qs", "method", "timeout", "payload", "json", "ngsi"}, "notification.httpCustom")
        for template in ("payload", "json", "ngsi"):
            if template in endpoint:
                raise Unprocessable(f"notification.httpCustom.{template} (payload templates) is not supported")
        if endpoint.get("method", "POST") != "POST":
            raise Unprocessable("notification.httpCustom.method: only POST is supported")
        if "headers" in endpoint:
            fields["custom_headers"] = _headers(endpoint["headers"], "notification.httpCustom.headers")
        if "qs" in endpoint:
            fields["custom_qs"] = _headers(endpoint["qs"], "notification.httpCustom.qs")
    else:
        _unknown_fields(endpoint, {"url", "timeout"}, "notification.http")
    if "timeout" in endpoint:
        # Accepted for compatibility; NGSI_NOTIFY_TIMEOUT_SECONDS bounds every delivery.
        _expect(endpoint["timeout"], int, f"notification.{transports[0]}.timeout")
    url = _expect(endpoint.get("url"), str, f"notification.{transports[0]}.url")
    problem = destination_problem(url, resolve_names=True)
    if problem:
        raise Unprocessable(f"notification URL refused: {problem}")
    fields["url"] = url

    if "attrs" in notification and "exceptAttrs" in notification:
        raise BadRequest("notification.attrs and notification.exceptAttrs cannot be used together")
    fields["notify_attrs"] = _names(notification.get("attrs", []), "notification.attrs")
    fields["except_attrs"] = _names(notification.get("exceptAttrs", []), "notification.exceptAttrs")
    attrs_format = notification.get("attrsFormat", NORMALIZED)
    if attrs_format not in (NORMALIZED, KEY_VALUES):
        raise Unprocessable(f"notification.attrsFormat {str(attrs_format)[:40]!r} is not supported: use normalized or keyValues")
    fields["attrs_format"] = attrs_format
    fields["only_changed_attrs"] = _expect(notification.get("onlyChangedAttrs", False), bool, "notification.onlyChangedAttrs")
    fields["covered"] = _expect(notification.get("covered", False), bool, "notification.covered")
    if fields["covered"] and not fields["notify_attrs"]:
        raise BadRequest("notification.covered needs an explicit notification.attrs list")
    if notification.get("metadata"):
        raise Unprocessable("notification.metadata is not supported")
    if "maxFailsLimit" in notification:
        limit = _expect(notification["maxFailsLimit"], int, "notification.maxFailsLimit")
        if limit < 1:
            raise BadRequest("notification.maxFailsLimit must be at least 1")
        fields["max_fails_limit"] = limit
    else:
        fields["max_fails_limit"] = None
    return fields


def subscription_fields(document: Any, *, partial: bool) -> dict:
    """Model field values from a POST (whole) or PATCH (`partial`: top-level fields present) body."""
    _expect(document, dict, "The subscription")
    _unknown_fields(document, {"id", "description", "subject", "notification", "expires", "status", "throttling"}, "subscription")
    if not partial:
        for required in ("subject", "notification"):
            if required not in document:
                raise BadRequest(f"Subscription has no {required}")
    elif not document:
        raise BadRequest("Empty payload")
    fields: dict[str, Any] = {}
    if "description" in document:
        description = _expect(document["description"], str, "description")
        if len(description) > 1024:
            raise BadRequest("description is longer than 1024 characters")
        fields["description"] = description
    if "subject" in document:
        fields.update(_subject(document["subject"]))
    if "notification" in document:
        fields.update(_notification(document["notification"]))
    if "expires" in document:
        if document["expires"] is None:
            fields["expires"] = None
        else:
            expires = parse_time(_expect(document["expires"], str, "expires"))
            if expires is None:
                raise BadRequest("expires is not an ISO 8601 time")
            fields["expires"] = expires
    if "status" in document:
        if document["status"] not in (Subscription.Status.ACTIVE, Subscription.Status.INACTIVE):
            raise BadRequest("status must be active or inactive")
        fields["status"] = document["status"]
    if "throttling" in document:
        throttling = _expect(document["throttling"], int, "throttling")
        if not 0 <= throttling <= MAX_THROTTLING_SECONDS:
            raise BadRequest(f"throttling must be between 0 and {MAX_THROTTLING_SECONDS} seconds")
        fields["throttling"] = throttling
    return fields


def orion_time(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(dt_timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def render_subscription(subscription: Subscription) -> dict:
    condition: dict[str, Any] = {"attrs": list(subscription.condition_attrs)}
    if subscription.condition_expression:
        condition["expression"] = dict(subscription.condition_expression)
    if subscription.alteration_types:
        condition["alterationTypes"] = list(subscription.alteration_types)

    if subscription.http_custom:
        endpoint_name, endpoint = "httpCustom", {"url": subscription.url, "method": "POST"}
        if subscription.custom_headers:
            endpoint["headers"] = dict(subscription.custom_headers)
        if subscription.custom_qs:
            endpoint["qs"] = dict(subscription.custom_qs)
    else:
        endpoint_name, endpoint = "http", {"url": subscription.url}
    notification: dict[str, Any] = {endpoint_name: endpoint}
    if subscription.except_attrs:
        notification["exceptAttrs"] = list(subscription.except_attrs)
    else:
        notification["attrs"] = list(subscription.notify_attrs)
    notification.update(
        {
            "attrsFormat": subscription.attrs_format,
            "onlyChangedAttrs": subscription.only_changed_attrs,
            "covered": subscription.covered,
        }
    )
    if subscription.times_sent:
        notification["timesSent"] = subscription.times_sent
    for key, value in (
        ("lastNotification", orion_time(subscription.last_notification)),
        ("lastSuccess", orion_time(subscription.last_success)),
        ("lastSuccessCode", subscription.last_success_code),
        ("lastFailure", orion_time(subscription.last_failure)),
        ("lastFailureReason", subscription.last_failure_reason or None),
    ):
        if value is not None:
            notification[key] = value
    if subscription.fails_counter:
        notification["failsCounter"] = subscription.fails_counter
    if subscription.max_fails_limit:
        notification["maxFailsLimit"] = subscription.max_fails_limit

    document: dict[str, Any] = {"id": subscription.public_id}
    if subscription.description:
        document["description"] = subscription.description
    document["subject"] = {"entities": list(subscription.entities), "condition": condition}
    document["notification"] = notification
    if subscription.expires:
        document["expires"] = orion_time(subscription.expires)
    document["status"] = subscription.shown_status()
    document["throttling"] = subscription.throttling
    return document
