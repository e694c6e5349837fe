"""Alert events as signed JSON POSTs.

Body: the notification document (``{"event": {...}, "alert": {...}}``, or for a dam release notice
``{"release_event": {...}, "release": {...}}``, for a step of a town's evacuation order
``{"order_event": {...}, "order": {...}}``, or a digest of one station's updates batched by the
channel's rate limit, ``{"digest": {"count", "first_at", "last_at"}, "notifications": [...], "alert": {...}}``),
UTF-8 JSON. Headers:
``X-Mizumori-Signature: sha256=<hex HMAC-SHA256 of the exact body with the channel's secret>`` and
``X-Mizumori-Event: <event id>`` (``release-<id>`` for a release notice, ``order-<id>`` for an order step) — retries after a timeout may repeat an event, so receivers
de-duplicate by it. 2xx is success; 4xx other than 408 and 429 is permanent (fix the receiver or
the channel); anything else is retried with exponential backoff by the dispatcher. Redirects are
not followed.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json

from django.conf import settings

from outbound import http as outbound_http
from outbound.destinations import RefusedDestination

from . import TransportError, notification_id

SIGNATURE_HEADER = "X-Mizumori-Signature"
RETRYABLE_CLIENT_ERRORS = {408, 429}


def body_for(notification: dict) -> bytes:
    return json.dumps(notification, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8")


def signature_for(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def send(channel, notification: dict, *, timeout: float | None = None) -> None:
    """POST to the channel's target if the destination policy (outbound.destinations) allows it now.

    A refused target is a permanent failure recorded as "refused: <why>": nothing was sent, so the
    delivery row never shows anything an internal address answered.
    """
    body = body_for(notification)
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "Mizumori-alerts/1",
        SIGNATURE_HEADER: signature_for(channel.secret, body),
        "X-Mizumori-Event": notification_id(notification),
    }
    timeout = settings.ALERT_WEBHOOK_TIMEOUT_SECONDS if timeout is None else timeout
    try:
        status = outbound_http.post(channel.target, body, headers, timeout=timeout)
    except RefusedDestination as exc:
        raise TransportError(f"refused: {exc}", permanent=True) from exc
    except (OSError, http.client.HTTPException) as exc:
        raise TransportError(f"{type(exc).__name__}: {exc}") from exc
    if 200 <= status < 300:
        return
    permanent = 300 <= status < 500 and status not in RETRYABLE_CLIENT_ERRORS
    raise TransportError(f"HTTP {status} from {channel.target}", permanent=permanent)
