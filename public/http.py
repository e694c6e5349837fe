"""Responses a shared cache may keep: conditional GET, precompressed bodies, public Cache-Control."""

from __future__ import annotations

import math
import time

from django.http import HttpResponse
from django.utils.cache import get_conditional_response, patch_vary_headers
from django.utils.http import http_date

from config.compression import accepted_encodings

from .tick_cache import Built

# After max-age a cache may keep answering with the old build for this many periods while it asks
# the application for the new one, and for STALE_IF_ERROR_SECONDS when the application fails. Long:
# past it, nginx lets readers through to the application while a slow build is still running (each
# waiting for it, on a typhoon night thousands), where the old document would have served them.
STALE_WHILE_REVALIDATE_PERIODS = 60
STALE_IF_ERROR_SECONDS = 600


def seconds_left(built: Built, now: float | None = None) -> int:
    """Until the build's period ends (at least 1): builds are aligned to the clock (a period is
    `now // period`), so a cache told a whole period would keep an old copy up to a period past the
    next build, and readers would see data up to a period older than they need to."""
    now = time.time() if now is None else now
    return max(1, min(built.period, math.ceil((built.tick + 1) * built.period - now)))


def public_cache_control(period: int, max_age: int | None = None) -> str:
    max_age = period if max_age is None else max_age
    return (
        f"public, max-age={max_age}, stale-while-revalidate={period * STALE_WHILE_REVALIDATE_PERIODS}, "
        f"stale-if-error={STALE_IF_ERROR_SECONDS}"
    )


def cached_response(request, built: Built) -> HttpResponse:
    """200 with the build (Brotli, gzip or plain, as the client accepts) or 304 when the client
    already holds it; the same headers either way."""
    last_modified = int(built.last_modified)
    response = get_conditional_response(request, etag=built.etag, last_modified=last_modified)
    if response is None:
        accepted = accepted_encodings(request.META.get("HTTP_ACCEPT_ENCODING", ""))
        br, gz = accepted.get("br", 0.0), accepted.get("gzip", 0.0)
        if br > 0 and br >= gz:
            body, encoding = built.brotli, "br"
        elif gz > 0:
            body, encoding = built.gzip, "gzip"
        else:
            body, encoding = built.body, None
        response = HttpResponse(body, content_type=built.content_type)
        if encoding:
            response["Content-Encoding"] = encoding
    response["ETag"] = built.etag
    response["Last-Modified"] = http_date(last_modified)
    response["Cache-Control"] = public_cache_control(built.period, seconds_left(built))
    patch_vary_headers(response, ("Accept-Encoding",))
    return response
