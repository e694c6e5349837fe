"""Error responses for the whole site: a database or Redis outage is a 503 with `Retry-After`, not a
500, and anything under /api/ or /ngsi/ answers in JSON, never Django's HTML.

Two doors lead here. `ServiceOutageMiddleware.process_exception` turns an outage raised by a view
into a 503. An outage raised by a middleware (loading the session, counting API usage) never reaches
process_exception: Django turns it into a 500 through `handler500`, so `server_error` looks at the
exception being handled and answers 503 as well.
"""

from __future__ import annotations

import json
import logging
import sys

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.views import defaults

from events.loops import first_line, is_service_outage
from ngsi.errors import BadRequest, InternalServerError, NgsiError, ServiceUnavailable
from ngsi.errors import NotFound as NgsiNotFound

logger = logging.getLogger(__name__)

API_PREFIX = "/api/"
NGSI_PREFIX = "/ngsi/"


def _json(body: dict, status: int) -> HttpResponse:
    return HttpResponse(json.dumps(body, ensure_ascii=False), status=status, content_type="application/json")


def _ngsi(error: NgsiError) -> HttpResponse:
    return _json(error.as_body(), error.status)


def service_unavailable(request: HttpRequest, error: BaseException) -> HttpResponse:
    retry_after = settings.OUTAGE_RETRY_AFTER_SECONDS
    message = f"Temporarily unavailable (database or Redis); retry after {retry_after} s."
    if request.path.startswith(NGSI_PREFIX):
        response = _ngsi(ServiceUnavailable(message))
    elif request.path.startswith(API_PREFIX):
        response = _json({"error": "service_unavailable", "detail": message}, 503)
    else:
        # Rendered without the request: context processors would reach for the database again.
        html = render_to_string("503.html", {"retry_after": retry_after})
        response = HttpResponse(html, status=503, content_type="text/html; charset=utf-8")
    response["Retry-After"] = str(retry_after)
    response["Cache-Control"] = "no-store"
    # One line per request naming the cause, instead of Django's traceback.
    logger.warning("Service Unavailable: %s (%s)", request.path, first_line(error))
    response._has_been_logged = True
    return response


class ServiceOutageMiddleware:
    """A view that hits a database or Redis outage answers 503 (see the module docstring)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if is_service_outage(exception):
            return service_unavailable(request, exception)
        return None


def _api_error(request: HttpRequest, status: int, detail: str, ngsi_error: NgsiError) -> HttpResponse | None:
    """The JSON form of an error under /api/ or /ngsi/; None for pages."""
    if request.path.startswith(NGSI_PREFIX):
        return _ngsi(ngsi_error)
    if request.path.startswith(API_PREFIX):
        return _json({"detail": detail}, status)
    return None


def server_error(request: HttpRequest, *args, **kwargs) -> HttpResponse:
    """handler500: called by Django while it handles the exception, so sys.exc_info() names it."""
    error = sys.exc_info()[1]
    if is_service_outage(error):
        return service_unavailable(request, error)
    return _api_error(
        request, 500, "Internal server error.", InternalServerError("Internal server error")
    ) or defaults.server_error(request)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler404: JSON under /api/ and /ngsi/, the usual page elsewhere."""
    return _api_error(
        request, 404, "No API endpoint at this path.", NgsiNotFound("service not found")
    ) or defaults.page_not_found(request, exception)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler400 (e.g. a body over DATA_UPLOAD_MAX_MEMORY_SIZE, a forbidden Host). A session that
    could not be saved because the database went away also arrives here, as SessionInterrupted."""
    if is_service_outage(exception):
        return service_unavailable(request, exception)
    return _api_error(request, 400, "Bad request.", BadRequest("Bad request")) or defaults.bad_request(
        request, exception
    )


def declare_service_unavailable(result: dict, generator, request, public) -> dict:
    """drf-spectacular post-processing hook: every operation may answer the outage 503 above."""
    retry_after = {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait before retrying."}}
    for path, operations in result.get("paths", {}).items():
        keys = ["error", "description"] if path.startswith(NGSI_PREFIX) else ["error", "detail"]
        body = {"type": "object", "required": keys, "properties": {key: {"type": "string"} for key in keys}}
        for operation in operations.values():
            operation.setdefault("responses", {}).setdefault("503", {
                "description": "The database or Redis does not answer; retry after Retry-After seconds.",
                "headers": retry_after,
                "content": {"application/json": {"schema": body}},
            })
    return result
