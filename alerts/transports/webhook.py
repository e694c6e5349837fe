"""Alert events as signed JSON POSTs.

Body: the notification document (``{"event": {...}, "alert": {...}}``), UTF-8 JSON. Headers:
``X-Mizumori-Signature: sha256=<hex HMAC-SHA256 of the exact body with the channel's secret>`` and
``X-Mizumori-Event: <event id>`` — retries after a timeout may repeat an event, so receivers
de-duplicate by it. 2xx is success; 4xx other than 408 and 429 is permanent (fix the receiver or
the channel); anything else is retried with exponential backoff by the dispatcher. Redirects are
not followed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import urllib.error
import urllib.request

from django.conf import settings

from . import TransportError

SIGNATURE_HEADER = "X-Mizumori-Signature"
RETRYABLE_CLIENT_ERRORS = {408, 429}


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def body_for(notification: dict) -> bytes:
    return json.dumps(notification, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8")


def signature_for(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def send(channel, notification: dict, *, timeout: float | None = None) -> None:
    body = body_for(notification)
    request = urllib.request.Request(
        channel.target,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "Mizumori-alerts/1",
            SIGNATURE_HEADER: signature_for(channel.secret, body),
            "X-Mizumori-Event": str(notification["event"]["id"]),
        },
    )
    timeout = settings.ALERT_WEBHOOK_TIMEOUT_SECONDS if timeout is None else timeout
    try:
        with _opener.open(request, timeout=timeout) as response:
            response.read(64 * 1024)
    except urllib.error.HTTPError as exc:
        permanent = 300 <= exc.code < 500 and exc.code not in RETRYABLE_CLIENT_ERRORS
        raise TransportError(f"HTTP {exc.code} from {channel.target}", permanent=permanent) from exc
    except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TransportError(f"{type(exc).__name__}: {reason}") from exc
    except ValueError as exc:  # a target urllib cannot even parse
        raise TransportError(f"bad webhook URL: {exc}", permanent=True) from exc
