"""The public page: a static shell (`/`), its base map script and the public snapshot document.

Nothing here depends on who asks: no session, no CSRF token, no nonce, no per-user fragment. Each
response is built at most once per period for the whole deployment (public.tick_cache) and answers
conditional GETs with 304, so a caching proxy in front (docs/deployment.md) serves nearly every reader.
"""

from __future__ import annotations

import json

from django.conf import settings
from django.http import HttpResponse
from django.template.loader import render_to_string
from django.templatetags.static import static
from django.utils import translation
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.views import APIView

from config.build import front_end_build
from config.static_headers import service_worker_url
from dashboard.maps import map_vocabulary, station_map
from geo.maps import VENDORED_CSS, VENDORED_JS, embed_parts, load_geography
from jma.selectors import jma_warnings_by_town
from releases.selectors import release_document, releases_in_force
from sensors.selectors import station_list
from tenancy.selectors import ANONYMOUS, municipality_list

from . import load as load_module
from .http import cached_response
from .serializers import PublicSnapshotSerializer
from .snapshot import public_snapshot, tick_seconds
from .tick_cache import HTML, JAVASCRIPT, Encoded, TickCache

MAP_SLOT_ID = "mz-map-slot"


def shell_period() -> int:
    return tick_seconds()


def basemap_period() -> int:
    return max(tick_seconds(), int(settings.PUBLIC_BASEMAP_SECONDS))


def encoded_shell(language: str) -> Encoded:
    with translation.override(language):
        html = render_to_string(
            "public/shell.html",
            {
                "LANGUAGE_CODE": language,
                # The mode the snapshot of this moment would name: the shell then has the browser
                # fetch the map library and base map beside the snapshot (public.js, data-map-hint).
                "map_hint": load_module.page_mode(load_module.current_load()),
                "map_vocabulary": map_vocabulary(towns=municipality_list(), show_sharing=False),
                "map_assets": {
                    "css": [static(path) for _, path in VENDORED_CSS],
                    "js": [static(path) for _, path in VENDORED_JS],
                },
                # The base map's URL and the service worker's carry it (config.build): fixed URLs.
                "build": front_end_build(),
                "service_worker_url": service_worker_url(front_end_build()),
                "demo_banner": getattr(settings, "MIZUMORI_DEMO_BANNER", False),
                "tick": tick_seconds(),
                # Public notices in force, rendered with the shell (same bytes for every reader);
                # releases.js keeps the list current from the live `releases` messages.
                "releases": [release_document(release) for release in releases_in_force()],
                "jma_warnings": jma_warnings_by_town(),
            },
        )
    return Encoded(html.encode(), HTML)


def encoded_basemap(language: str) -> Encoded:
    """Folium's map script (boundaries, rivers, hazard zones, the empty station, shelter and alert
    layers, the legend in `language`), preceded by the map's own markup, which it needs and which
    carries the element names folium picked for this build: one file, so the two always match."""
    # Only the positions and towns (to fit the view and outline towns without a boundary): the
    # stations themselves come with the snapshot.
    positions = (
        station_list(viewer=ANONYMOUS)
        .select_related(None)
        .prefetch_related(None)
        .only("code", "lat", "lon", "municipality_id")
    )
    geography = load_geography()
    town_slugs = {town.pk: town.slug for town in geography.municipalities}
    points_by_town: dict[str, list[tuple[float, float]]] = {}
    for station in positions:
        points_by_town.setdefault(town_slugs.get(station.municipality_id, ""), []).append((station.lat, station.lon))
    with translation.override(language):
        folium_map = station_map(geography, points_by_town, shelter_features=[], alert_features=[])
        parts = embed_parts(folium_map)
    markup = (
        "(function () {\n  var slot = document.getElementById(" + json.dumps(MAP_SLOT_ID) + ");\n"
        "  if (slot) { slot.innerHTML = " + json.dumps(parts.html) + "; }\n})();\n"
    )
    return Encoded((markup + parts.script).encode(), JAVASCRIPT)


SHELL = TickCache("shell", encoded_shell, period=shell_period)
BASEMAP = TickCache("basemap", encoded_basemap, period=basemap_period)


def public_shell(request) -> HttpResponse:
    # `?lang=` is the shell's language switch (links, no form: a form would need a CSRF token);
    # without it, the language cookie (set by the staff pages' switch), else the site's language. Not
    # Accept-Language: its endless spellings would split every cache in front into countless copies.
    language = request.GET.get("lang")
    if not known_language(language):
        language = request.COOKIES.get(settings.LANGUAGE_COOKIE_NAME)
    if not known_language(language):
        language = settings.LANGUAGE_CODE
    response = cached_response(request, SHELL.get(language))
    response["Content-Language"] = language
    return response


def public_basemap(request) -> HttpResponse:
    # The shell asks for its own language's (its legend's words); anything else: the site's language.
    language = request.GET.get("lang")
    return cached_response(request, BASEMAP.get(language if known_language(language) else settings.LANGUAGE_CODE))


def known_language(code) -> bool:
    return code in dict(settings.LANGUAGES)


class PublicSnapshotView(APIView):
    """Served the same to everyone, so no authentication is even looked at (no session, no cookie)."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []

    @extend_schema(
        operation_id="public_snapshot",
        summary="Everything the public page shows (public data only), at most one new version per tick",
        parameters=[
            OpenApiParameter("If-None-Match", OpenApiTypes.STR, OpenApiParameter.HEADER, required=False),
            OpenApiParameter("If-Modified-Since", OpenApiTypes.STR, OpenApiParameter.HEADER, required=False),
        ],
        responses={
            200: PublicSnapshotSerializer,
            304: OpenApiResponse(description="Not modified: the ETag or date given is current."),
        },
        tags=["public"],
    )
    def get(self, request):
        return cached_response(request, public_snapshot())
