"""Headers WhiteNoise adds to particular static files (WHITENOISE_ADD_HEADERS_FUNCTION)."""

from __future__ import annotations

from django.conf import settings

# The public page's service worker lives under /static/ with the other files but controls the
# whole site's public page (scope "/"): the browser allows that only when the script says so. It
# keeps this name (not a content-hashed one): a registration is updated at its script's URL, and a
# worker registered under one deploy's hashed name would go on answering after the next deploy.
SERVICE_WORKER_PATH = "mizumori/service-worker.js"
SERVICE_WORKER_URL_SUFFIX = "/" + SERVICE_WORKER_PATH


def service_worker_url(build: str) -> str:
    """The worker's stable URL with the front-end build (config.build) as `?build=`: the worker names
    its cache after it, and a page of a new deploy registering it installs a new worker (a script URL
    the registration has not seen), which drops the old deploy's cache when it takes over."""
    return f"{settings.STATIC_URL}{SERVICE_WORKER_PATH}?build={build}"


def static_headers(headers, path: str, url: str) -> None:
    if url.endswith(SERVICE_WORKER_URL_SUFFIX):
        headers["Service-Worker-Allowed"] = "/"
        # Browsers check the worker on every visit past their own HTTP cache anyway; a minute lets the
        # proxy (docs/deployment.md) answer those checks on a storm night, and a new version still
        # reaches every reader within a minute.
        headers["Cache-Control"] = "public, max-age=60"
