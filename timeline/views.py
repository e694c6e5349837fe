"""HQ pages of the timeline: the event timeline and the overview fragment the HQ map page refreshes."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.templatetags.static import static
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import pgettext_lazy
from rest_framework.exceptions import ValidationError

from sensors.api import observation_window, parse_as_of
from tenancy.models import Municipality
from tenancy.selectors import viewer_for_request

from .api import parse_kinds
from .reports import FONT_PATH, MAX_MOMENTS, report_towns, situation_report
from .reports import report_pdf as render_pdf
from .selectors import KIND_GROUPS, KINDS, hq_overview, map_url, timeline_events

TIMELINE_PAGE_MAX = 1000


@login_required
def overview_fragment(request):
    """The HQ overview alone, for static/mizumori/overview.js to swap in after live messages."""
    context = hq_overview(viewer=viewer_for_request(request), now=timezone.now())
    response = render(request, "timeline/_hq_overview.html", {"overview": context})
    response["Cache-Control"] = "private, no-store"
    return response


# The kind filter names each group and kind in the reader's language; the values stay the API's codes.
KIND_GROUP_WORDS = {
    "alert": pgettext_lazy("timeline kind", "Alerts"),
    "gauge": pgettext_lazy("timeline kind", "Gauges"),
    "level": pgettext_lazy("timeline kind", "Levels"),
    "order": pgettext_lazy("timeline kind", "Evacuation orders"),
    "shelter": pgettext_lazy("timeline kind", "Shelters"),
    "sharing": pgettext_lazy("timeline kind", "Sharing"),
    "threshold": pgettext_lazy("timeline kind", "Thresholds"),
}
KIND_WORDS = {
    "level.up": pgettext_lazy("timeline kind", "Level rose"),
    "level.down": pgettext_lazy("timeline kind", "Level fell"),
    "alert.opened": pgettext_lazy("timeline kind", "Alert raised"),
    "alert.escalated": pgettext_lazy("timeline kind", "Alert escalated"),
    "alert.deescalated": pgettext_lazy("timeline kind", "Alert de-escalated"),
    "alert.acknowledged": pgettext_lazy("timeline kind", "Alert acknowledged"),
    "alert.resolved": pgettext_lazy("timeline kind", "Alert ended"),
    "alert.note": pgettext_lazy("timeline kind", "Note on an alert"),
    "order.issued": pgettext_lazy("timeline kind", "Order issued"),
    "order.raised": pgettext_lazy("timeline kind", "Order raised"),
    "order.lowered": pgettext_lazy("timeline kind", "Order lowered"),
    "order.extended": pgettext_lazy("timeline kind", "Order districts changed"),
    "order.lifted": pgettext_lazy("timeline kind", "Order lifted"),
    "gauge.stale": pgettext_lazy("timeline kind", "Gauge silent"),
    "gauge.recovered": pgettext_lazy("timeline kind", "Gauge reporting again"),
    "shelter.status": pgettext_lazy("timeline kind", "Shelter status"),
    "sharing.granted": pgettext_lazy("timeline kind", "Sharing granted"),
    "sharing.withdrawn": pgettext_lazy("timeline kind", "Sharing withdrawn"),
    "threshold.changed": pgettext_lazy("timeline kind", "Threshold changed"),
}
# Each group (all its kinds), then each kind on its own: ((value, words), [(value, words), …]).
KIND_CHOICES = [
    ((group, KIND_GROUP_WORDS[group]), [(kind, KIND_WORDS[kind]) for kind in KINDS if kind.startswith(group + ".")])
    for group in KIND_GROUPS
]


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
        "kind_choices": KIND_CHOICES,
    }
    status = 400 if errors else 200
    return render(request, "timeline/events.html", context, status=status)


# --- the situation report: /hq/reports/situation/ and situation.pdf ---------------------------------


def _report_context(request) -> dict:
    viewer = viewer_for_request(request)
    since, until = observation_window(request.GET)
    towns = report_towns(viewer, request.GET.getlist("municipality"))
    moments = [parse_as_of("at", raw) for raw in request.GET.getlist("at")[:MAX_MOMENTS]]
    if not moments:
        # By default three moments: a third in, two thirds in, and the end of the window.
        moments = [since + (until - since) * part / 3 for part in (1, 2, 3)]
    report = situation_report(viewer=viewer, since=since, until=until, towns=towns, moments=moments)
    return {
        "report": report,
        "generated_at": timezone.now(),
        "generated_by": request.user.get_username(),
        "pdf_url": reverse("hq-report-pdf") + ("?" + request.GET.urlencode() if request.GET else ""),
    }


def _report_refused(request, error: ValidationError):
    detail = {key: " ".join(str(item) for item in value) if isinstance(value, list) else str(value)
              for key, value in error.detail.items()}
    return render(request, "timeline/events.html", {"errors": detail, "rows": [], "count": 0, "filters": {},
                                                     "towns": [], "kind_choices": KIND_CHOICES}, status=400)


@login_required
def report_page(request):
    """The printable situation report (print stylesheet; the browser prints it)."""
    try:
        context = _report_context(request)
    except ValidationError as error:
        return _report_refused(request, error)
    context |= {"font_url": static("fonts/ipaexg.ttf"), "show_tools": True}
    response = render(request, "timeline/report.html", context)
    response["Cache-Control"] = "private, no-store"
    return response


@login_required
def report_pdf(request):
    """The same report as a PDF, with the vendored Japanese font embedded."""
    try:
        context = _report_context(request)
    except ValidationError as error:
        return _report_refused(request, error)
    context |= {"font_url": FONT_PATH.as_uri(), "show_tools": False}
    html = render_to_string("timeline/report.html", context, request=request)
    pdf = render_pdf(html, base_url=str(FONT_PATH.parent))
    response = HttpResponse(pdf, content_type="application/pdf")
    stamp = timezone.localtime(context["report"]["until"]).strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = f'attachment; filename="situation-{stamp}.pdf"'
    response["Cache-Control"] = "private, no-store"
    return response
