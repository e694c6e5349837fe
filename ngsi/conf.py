"""NGSI settings with their defaults, so a deployment that sets none of them still works.

settings.py defines NGSI_MAX_LIMIT (where notifications may go is OUTBOUND_ALLOWED_HOSTS, see outbound/); the others may be added there
(from the environment) to override these defaults.
"""

from django.conf import settings

DEFAULTS = {
    # Orion's default inReqPayloadMaxSize.
    "NGSI_MAX_BODY_BYTES": 1024 * 1024,
    "NGSI_MAX_LIMIT": 1000,
    # Per HTTP attempt of a notification (connect and read each).
    "NGSI_NOTIFY_TIMEOUT_SECONDS": 5,
    # Attempts per notification, the first included; retries wait BACKOFF * 2**n seconds.
    "NGSI_NOTIFY_MAX_ATTEMPTS": 4,
    "NGSI_NOTIFY_BACKOFF_SECONDS": 2,
    # Consecutive failed attempts after which a subscription becomes 'failed' (Orion's maxFailsLimit).
    "NGSI_NOTIFY_MAX_FAILS": 10,
}


def ngsi_setting(name: str):
    return getattr(settings, name, DEFAULTS[name])
