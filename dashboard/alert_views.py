"""The HQ alert board and history, and the public's current alerts. Thin: selectors and services
of the alerts app, with the viewer of the request."""

from __future__ import annotations

import csv
from datetime import date, datetime, time, timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse, HttpResponseBadRequest, HttpResponseForbidden, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from alerts.models import Alert, AlertEvent, AlertRule
from alerts.rules import fired_words, rule_unit
from alerts.selectors import (
    acknowledgements_of,
    alert_board,
    alert_gauge_words,
    alert_get,
    alert_history,
    alert_list,
    board_rows,
)
from alerts.services import AlertNoteError, AlertStateError, alert_acknowledge, alert_note_add, alert_resolve
from alerts.vocabulary import ALERT_STATE_WORDS, EVENT_KIND_WORDS, RULE_KIND_WORDS
from config.i18n import pick
from forecasts.selectors import forecast_prealerts
from sensors.api import csv_cell
from sensors.models import StationKind
from sensors.selectors import local_iso
from tenancy.models import Municipality
from tenancy.permissions import Action, permits
from tenancy.selectors import ANONYMOUS, viewer_for_request
from releases.models import ADVICE_EN, ADVICE_JA
from releases.selectors import releases_affecting

PUBLIC_ALERTS_SHOWN = 20
BOARD_ACTIONS = {"acknowledge": Action.ACKNOWLEDGE, "resolve": Action.RESOLVE, "note": Action.ADD_NOTE}
# A board row may carry the other alerts of its station and concern; more than this is not a row.
ROW_ALERTS_MAX = 10
# History shown on the page; the CSV export has every alert of the range.
HISTORY_SHOWN = 200
HISTORY_MAX_DAYS = 366


def _filters(request) -> dict:
    town = request.GET.get("town") or None
    kind = request.GET.get("kind") or None
    return {
        "municipality": town if town and Municipality.objects.filter(slug=town).exists() else None,
        "kind": kind if kind in AlertRule.Kind.values else None,
    }


def _kinds() -> list[tuple[str, str]]:
    return [(value, pick(RULE_KIND_WORDS[value])) for value in AlertRule.Kind.values]


@login_required
def board(request):
    viewer = viewer_for_request(request)
    filters = _filters(request)
    alerts = alert_board(viewer, **filters)
    acknowledgements = acknowledgements_of(alerts)
    rows = board_rows(alerts)
    for row in rows:
        for alert in row.alerts:
            alert.acknowledgements = acknowledgements.get(alert.pk, [])
        # One station per row: the same town owns every alert in it, so one answer holds for all.
        row.may_operate = permits(viewer, Action.ACKNOWLEDGE, row.primary)
        row.may_note = permits(viewer, Action.ADD_NOTE, row.primary)
        row.others_ids = ",".join(str(alert.pk) for alert in row.others)
        # A gauge's level speaks gauge words (「警戒レベル4相当」); point rain is no evacuation level and
        # speaks by its measure alone (the fired rule's words carry JMA's intensity).
        if row.station.kind != StationKind.RAIN and row.concern == "level":
            words = alert_gauge_words(row.primary)
            row.level_ja, row.level_en = words.name_ja, words.name_en
        else:
            row.level_ja, row.level_en = RULE_KIND_WORDS[row.primary.rule.kind]
    context = {
        "rows": rows,
        "open_count": sum(1 for row in rows if row.is_open),
        "filters": filters,
        "towns": Municipality.objects.order_by("code"),
        "kinds": _kinds(),
        "query": _board_query(request.GET),
        "prealerts": forecast_prealerts(viewer=viewer),
        # Dam release notices in force upstream of (or at) the acting town: public facts, but the HQ
        # acts on them, so they sit on the board with the alerts and refresh with them.
        "releases": releases_affecting(viewer=viewer),
        "release_advice": {"ja": ADVICE_JA, "en": ADVICE_EN},
    }
    template = "dashboard/alerts/_board.html" if request.GET.get("fragment") else "dashboard/alerts/board.html"
    return render(request, template, context)


def _row_alerts(viewer, alert: Alert, also: str) -> list[Alert]:
    """The alert acted on and the other alerts of its board row (`also`: their ids), each visible to
    the viewer and of the same station; anything else in `also` is ignored, never acted on."""
    alerts = [alert]
    ids = [int(part) for part in also.split(",")[:ROW_ALERTS_MAX] if part.strip().isdigit()]
    if ids:
        alerts += [
            other for other in alert_list(viewer=viewer, station=alert.station.code).filter(pk__in=ids)
            if other.pk != alert.pk and other.state != Alert.State.RESOLVED
        ]
    return alerts


@login_required
@require_POST
def act(request, alert_id: int):
    """Acknowledge (with an optional note), resolve (after confirming) or add a note from the board;
    the same rules as the REST endpoints. A board row's other alerts (`also`) share the action."""
    viewer = viewer_for_request(request)
    try:
        alert = alert_get(viewer=viewer, alert_id=alert_id)
    except Alert.DoesNotExist:
        raise Http404(_("No alert with this id.")) from None
    action = BOARD_ACTIONS.get(request.POST.get("action", "acknowledge"))
    if action is None:
        return HttpResponseBadRequest(_("action: acknowledge, resolve or note."))
    if not permits(viewer, action, alert):
        return HttpResponseForbidden(
            _("Notes take the operator role in the town you act for.")
            if action == Action.ADD_NOTE
            else _("Operators and admins of the town that owns this station, acting for it, may do this.")
        )
    query = _board_query(QueryDict(request.POST.get("query", "")))
    alerts = _row_alerts(viewer, alert, request.POST.get("also", ""))
    if action == Action.RESOLVE and request.POST.get("confirm") != "yes":
        # Without the page script's dialog, the confirmation is a page of its own.
        for each in alerts:
            each.fired_ja, each.fired_en = fired_words(each.rule, each.station, each.last_value)
        return render(
            request,
            "dashboard/alerts/confirm_resolve.html",
            {"alert": alert, "alerts": alerts, "also": request.POST.get("also", ""), "query": query},
        )
    try:
        for each in alerts:
            if action == Action.RESOLVE:
                alert_resolve(each, request.user)
            elif action == Action.ADD_NOTE:
                alert_note_add(each, request.user, request.POST.get("note", ""))
            else:
                alert_acknowledge(each, request.user, note=request.POST.get("note", ""))
    except (AlertStateError, AlertNoteError) as exc:
        messages.error(request, str(exc))
    return redirect(reverse("alert-board") + (f"?{query}" if query else ""))


def _board_query(params: QueryDict) -> str:
    """The board's filters to come back to after acting. `fragment` is how the live refresh asks for
    the bare list; carried into the redirect it landed operators on an unstyled page."""
    kept = params.copy()
    kept.pop("fragment", None)
    return kept.urlencode()


class HistoryFilterError(ValueError):
    pass


def _local_day(value: str, name: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise HistoryFilterError(_("%(name)s: a date as YYYY-MM-DD") % {"name": name}) from None


def _history_filters(request) -> dict:
    """The history page's filters from the query; raises HistoryFilterError saying which is wrong."""
    params = request.GET
    filters = _filters(request)
    level = params.get("level") or ""
    if level and level not in {"1", "2", "3", "4", "5"}:
        raise HistoryFilterError(_("level: 1–5"))
    state = params.get("state") or ""
    if state and state not in Alert.State.values:
        raise HistoryFilterError(_("state: open, acknowledged or resolved"))
    since_day, until_day = _local_day(params.get("since", ""), "since"), _local_day(params.get("until", ""), "until")
    zone = timezone.get_current_timezone()
    until = datetime.combine(until_day + timedelta(days=1), time(), zone) if until_day else timezone.now()
    since = datetime.combine(since_day, time(), zone) if since_day else until - timedelta(days=7)
    if since >= until:
        raise HistoryFilterError(_("since: must be before until"))
    if until - since > timedelta(days=HISTORY_MAX_DAYS):
        raise HistoryFilterError(_("since–until: at most %(days)s days") % {"days": HISTORY_MAX_DAYS})
    return dict(filters, peak_level=int(level) if level else None, state=state or None, since=since, until=until)


@login_required
def history(request):
    viewer = viewer_for_request(request)
    error = None
    try:
        filters = _history_filters(request)
    except HistoryFilterError as exc:
        error, filters = str(exc), None
    if request.GET.get("format") == "csv":
        if error:
            return HttpResponseBadRequest(error, content_type="text/plain; charset=utf-8")
        return _history_csv(alert_history(viewer, limit=None, **filters))
    alerts = alert_history(viewer, limit=HISTORY_SHOWN, **filters) if filters else []
    csv_query = request.GET.copy()
    csv_query["format"] = "csv"
    return render(
        request,
        "dashboard/alerts/history.html",
        {
            "alerts": [_history_row(alert) for alert in alerts],
            "shown_max": HISTORY_SHOWN,
            "error": error,
            "params": request.GET,
            "filters": filters or {},
            "towns": Municipality.objects.order_by("code"),
            "kinds": _kinds(),
            "states": [(value, pick(ALERT_STATE_WORDS[value])) for value in Alert.State.values],
            "levels": [1, 2, 3, 4, 5],
            "csv_query": csv_query.urlencode(),
        },
        status=400 if error else 200,
    )


def _history_row(alert: Alert) -> Alert:
    alert.fired_ja, alert.fired_en = fired_words(alert.rule, alert.station, alert.last_value)
    alert.kind_ja, alert.kind_en = RULE_KIND_WORDS[alert.rule.kind]
    alert.state_ja, alert.state_en = ALERT_STATE_WORDS[alert.state]
    for event in alert.events.all():
        event.kind_ja, event.kind_en = EVENT_KIND_WORDS.get(event.kind, (event.kind, event.kind))
    return alert


CSV_HEADER = [
    "id", "station", "station_name_ja", "station_name_en", "municipality", "kind", "rule_ja", "rule_en",
    "level", "peak_level", "state", "opened_at", "acknowledged_at", "resolved_at", "value", "unit", "notes",
]


def _history_csv(alerts: list[Alert]) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="mizumori-alert-history.csv"'
    # A byte-order mark so spreadsheet programs in Japan read the UTF-8 names right.
    response.write("\ufeff")
    writer = csv.writer(response)
    writer.writerow(CSV_HEADER)
    for alert in alerts:
        rule_ja, rule_en = fired_words(alert.rule, alert.station, alert.last_value)
        notes = " | ".join(
            f"{event.actor.get_username() if event.actor else '-'}: {event.note}"
            for event in alert.events.all()
            if event.note and event.kind in (AlertEvent.Kind.NOTE, AlertEvent.Kind.ACKNOWLEDGED)
        )
        writer.writerow([csv_cell(value) for value in (
            alert.pk, alert.station.code, alert.station.name_ja, alert.station.name_en,
            alert.station.municipality.slug, alert.rule.kind, rule_ja, rule_en, alert.level, alert.peak_level,
            alert.state, local_iso(alert.opened_at), local_iso(alert.acknowledged_at), local_iso(alert.resolved_at),
            alert.last_value, rule_unit(alert.rule, alert.station), notes,
        )])
    return response


def public_current(request):
    """The public's current alerts (level 3 and up on public stations), as a fragment for `/`."""
    return render(request, "dashboard/alerts/_public.html", {"public_alerts": public_alerts()})


def public_alerts() -> list[Alert]:
    return list(alert_list(viewer=ANONYMOUS).exclude(state=Alert.State.RESOLVED).order_by("-level", "opened_at")[
        :PUBLIC_ALERTS_SHOWN
    ])
