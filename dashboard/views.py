"""Public and HQ map pages. Thin: pick the viewer, ask the selectors and map builders, render."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.utils import timezone

from geo.maps import embed_parts, load_geography
from tenancy.selectors import ANONYMOUS, Viewer, viewer_for_user

from .maps import station_map, station_notices
from .selectors import map_stations, stations_needing_notice


def public_map(request):
    # Always the public view, even for a logged-in HQ user: what staff see here is exactly what
    # residents see, and nothing shared only between towns can leak onto the public page.
    context = map_page_context(viewer=ANONYMOUS, show_sharing=False)
    return render(request, "dashboard/public.html", context)


@login_required
def hq_map(request):
    viewer = viewer_for_user(request.user)
    context = map_page_context(viewer=viewer, show_sharing=True)
    towns = context["geography"].municipalities
    context["active_towns"] = [town for town in towns if town.pk in viewer.municipality_ids]
    context["is_platform_admin"] = viewer.is_platform_admin
    return render(request, "dashboard/hq.html", context)


def map_page_context(*, viewer: Viewer, show_sharing: bool) -> dict:
    geography = load_geography()
    stations = map_stations(viewer=viewer)
    folium_map = station_map(
        geography, stations, own_municipality_ids=viewer.municipality_ids, show_sharing=show_sharing
    )
    return {
        "geography": geography,
        "map": embed_parts(folium_map),
        "station_count": len(stations),
        "notices": station_notices(stations_needing_notice(stations)),
        "generated_at": timezone.localtime(),
        "demo_banner": getattr(settings, "MIZUMORI_DEMO_BANNER", False),
    }
