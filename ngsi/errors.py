"""NGSI-v2 errors: Orion's error names and body, `{"error": "<Name>", "description": "..."}`.

Clients of a context broker (filip, QuantumLeap, IoT agents, city-OS dashboards) branch on the
`error` name, so these follow Orion's names rather than our REST API's `{"detail": ...}`.
"""

from __future__ import annotations

ENTITY_NOT_FOUND = "The requested entity has not been found. Check type and id"
ATTRIBUTE_NOT_FOUND = "The entity does not have such an attribute"
SUBSCRIPTION_NOT_FOUND = "The requested subscription has not been found. Check id"
REGISTRATION_NOT_FOUND = "The requested registration has not been found. Check id"
REGISTRATIONS_UNSUPPORTED = "Registrations are not supported: this broker does not forward to context sources"


class NgsiError(Exception):
    status = 400
    error = "BadRequest"

    def __init__(self, description: str):
        super().__init__(description)
        self.description = description

    def as_body(self) -> dict:
        return {"error": self.error, "description": self.description}


class BadRequest(NgsiError):
    status = 400
    error = "BadRequest"


class Unauthorized(NgsiError):
    status = 401
    error = "Unauthorized"


class Forbidden(NgsiError):
    status = 403
    error = "Forbidden"


class NotFound(NgsiError):
    status = 404
    error = "NotFound"


class MethodNotAllowed(NgsiError):
    status = 405
    error = "MethodNotAllowed"


class RequestEntityTooLarge(NgsiError):
    status = 413
    error = "RequestEntityTooLarge"


class UnsupportedMediaType(NgsiError):
    status = 415
    error = "UnsupportedMediaType"


class Unprocessable(NgsiError):
    status = 422
    error = "Unprocessable"


class PartialUpdate(NgsiError):
    """Some readings of a batch update were stored and others refused (Orion's name for it)."""

    status = 422
    error = "PartialUpdate"


def entity_not_found() -> NotFound:
    # The same words for "no such station" and "not yours to see or write": existence is private.
    return NotFound(ENTITY_NOT_FOUND)


class ServiceUnavailable(NgsiError):
    """The database or Redis does not answer (a restart, an outage): retry after `Retry-After`."""

    status = 503
    error = "ServiceUnavailable"


class InternalServerError(NgsiError):
    status = 500
    error = "InternalServerError"
