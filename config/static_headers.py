"""Headers WhiteNoise adds to particular static files (WHITENOISE_ADD_HEADERS_FUNCTION)."""

from __future__ import annotations

# The public page's service worker lives under /static/ with the other files but controls the
# whole site's public page (scope "/"): the browser allows that only when the script says so.
SERVICE_WORKER_URL_SUFFIX = "/mizumori/service-worker.js"


def static_headers(headers, path: str, url: str) -> None:
    if url.endswith(SERVICE_WORKER_URL_SUFFIX):
        headers["Service-Worker-Allowed"] = "/"
        # Browsers check the worker on every visit past their own HTTP cache anyway; a minute lets the
        # proxy (docs/deployment.md) answer those checks on a storm night, and a new version still
        # reaches every reader within a minute.
        headers["Cache-Control"] = "public, max-age=60"
