"""HQ pages of the timeline: the event timeline and the overview fragment the HQ map page refreshes."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.utils import timezone
from rest_framework.exceptions import ValidationError

from sensors.api import observation_window
from tenancy.models import Municipality
from tenancy.selectors import viewer_for_request

from .api import parse_kinds
from .selectors import KIND_GROUPS, hq_overview, map_url, timeline_events

TIMELINE_PAGE_MAX = 1000


@login_required
def overview_fragment(request):
    """The HQ overview alone, for static/mizumori/overview.js to swap in after live messages."""
    context = hq_overview(viewer=viewer_for_request(request), now=timezone.now())
    response = render(request, "timeline/_hq_overview.html", {"overview": context})
    response["Cache-Control"] = "private, no-store"
    return response


@login_required
def timeline_page(request):
    viewer = viewer_for_request(request)
    query = request.GET.copy()
    if not query.get("since") and not query.get("until"):
        query["since"] = (timezone.now() - timedelta(hours=24)).isoformat()
    errors = {}
    events = []
    try:
        since, until = observation_window(query)
        kinds = parse_kinds(query.get("kind"))
    except ValidationError as error:
        errors = {key: " ".join(str(item) for item in value) if isinstance(value, list) else str(value)
                  for key, value in error.detail.items()}
    else:
        events = timeline_events(
            viewer=viewer, since=since, until=until, municipality=query.get("municipality") or None, kinds=kinds
        )
    newest_first = list(reversed(events))[:TIMELINE_PAGE_MAX]
    rows = [(event, map_url(event.at, viewer=viewer)) for event in newest_first]
    context = {
        "rows": rows,
        "count": len(events),
        "shown_max": TIMELINE_PAGE_MAX,
        "errors": errors,
        "filters": {key: request.GET.get(key, "") for key in ("since", "until", "municipality", "kind")},
        "towns": Municipality.objects.order_by("code"),
        "kind_groups": KIND_GROUPS,
    }
    status = 400 if errors else 200
    return render(request, "timeline/events.html", context, status=status)
