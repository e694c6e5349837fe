"""The HQ alert board and history, and the public's current alerts. Thin: selectors and services
of the alerts app, with the viewer of the request."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponseBadRequest, HttpResponseForbidden, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from alerts.models import Alert, AlertRule
from alerts.selectors import acknowledgements_of, alert_board, alert_get, alert_history, alert_list
from alerts.services import AlertNoteError, AlertStateError, alert_acknowledge, alert_note_add, alert_resolve
from tenancy.models import Municipality
from tenancy.permissions import Action, permits
from tenancy.selectors import ANONYMOUS, viewer_for_request
from forecasts.selectors import forecast_prealerts
from releases.models import ADVICE_EN, ADVICE_JA
from releases.selectors import releases_affecting

PUBLIC_ALERTS_SHOWN = 20
BOARD_ACTIONS = {"acknowledge": Action.ACKNOWLEDGE, "resolve": Action.RESOLVE, "note": Action.ADD_NOTE}


def _filters(request) -> dict:
    town = request.GET.get("town") or None
    kind = request.GET.get("kind") or None
    return {
        "municipality": town if town and Municipality.objects.filter(slug=town).exists() else None,
        "kind": kind if kind in AlertRule.Kind.values else None,
    }


@login_required
def board(request):
    viewer = viewer_for_request(request)
    filters = _filters(request)
    alerts = alert_board(viewer, **filters)
    acknowledgements = acknowledgements_of(alerts)
    for alert in alerts:
        alert.acknowledgements = acknowledgements.get(alert.pk, [])
        alert.may_operate = permits(viewer, Action.ACKNOWLEDGE, alert)
        alert.may_note = permits(viewer, Action.ADD_NOTE, alert)
    context = {
        "alerts": alerts,
        "filters": filters,
        "towns": Municipality.objects.order_by("code"),
        "kinds": AlertRule.Kind.choices,
        "query": _board_query(request.GET),
        "prealerts": forecast_prealerts(viewer=viewer),
        # Dam release notices in force upstream of (or at) the acting town: public facts, but the HQ
        # acts on them, so they sit on the board with the alerts and refresh with them.
        "releases": releases_affecting(viewer=viewer),
        "release_advice": {"ja": ADVICE_JA, "en": ADVICE_EN},
    }
    template = "dashboard/alerts/_board.html" if request.GET.get("fragment") else "dashboard/alerts/board.html"
    return render(request, template, context)


@login_required
def history(request):
    viewer = viewer_for_request(request)
    filters = _filters(request)
    return render(
        request,
        "dashboard/alerts/history.html",
        {
            "alerts": alert_history(viewer, **filters),
            "filters": filters,
            "towns": Municipality.objects.order_by("code"),
            "kinds": AlertRule.Kind.choices,
        },
    )


@login_required
@require_POST
def act(request, alert_id: int):
    """Acknowledge, resolve or add a note from the board; the same rules as the REST endpoints."""
    viewer = viewer_for_request(request)
    try:
        alert = alert_get(viewer=viewer, alert_id=alert_id)
    except Alert.DoesNotExist:
        raise Http404("No alert with this id.") from None
    action = BOARD_ACTIONS.get(request.POST.get("action", "acknowledge"))
    if action is None:
        return HttpResponseBadRequest("action: acknowledge, resolve or note.")
    if not permits(viewer, action, alert):
        return HttpResponseForbidden(
            "Notes take the operator role in the town you act for."
            if action == Action.ADD_NOTE
            else "Operators and admins of the town that owns this station, acting for it, may do this."
        )
    try:
        if action == Action.RESOLVE:
            alert_resolve(alert, request.user)
        elif action == Action.ADD_NOTE:
            alert_note_add(alert, request.user, request.POST.get("note", ""))
        else:
            alert_acknowledge(alert, request.user)
    except (AlertStateError, AlertNoteError) as exc:
        messages.error(request, str(exc))
    query = _board_query(QueryDict(request.POST.get("query", "")))
    return redirect(reverse("alert-board") + (f"?{query}" if query else ""))


def _board_query(params: QueryDict) -> str:
    """The board's filters to come back to after acting. `fragment` is how the live refresh asks for
    the bare list; carried into the redirect it landed operators on an unstyled page."""
    kept = params.copy()
    kept.pop("fragment", None)
    return kept.urlencode()


def public_current(request):
    """The public's current alerts (level 3 and up on public stations), as a fragment for `/`."""
    return render(request, "dashboard/alerts/_public.html", {"public_alerts": public_alerts()})


def public_alerts() -> list[Alert]:
    return list(alert_list(viewer=ANONYMOUS).exclude(state=Alert.State.RESOLVED).order_by("-level", "opened_at")[
        :PUBLIC_ALERTS_SHOWN
    ])
