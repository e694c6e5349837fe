"""The town admin's trigger table (/hq/admin/triggers/): which gauge at which threshold (or forecast
within minutes), or which JMA warning in force for the town, recommends which order level for which
of the town's districts. Gauges offered are those the town may see, its own and neighbours' shared
with it."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _


from orders.models import JMA_TRIGGER_WARNINGS
from orders.selectors import district_list, order_policy_of, trigger_rule_list
from orders.services import OrderError, OrderForbidden, order_policy_set, trigger_rule_add, trigger_rule_remove
from sensors.models import StationKind
from sensors.selectors import station_list
from tenancy.permissions import Action

from .town_admin import town_admin_required


@town_admin_required(Action.MANAGE_TRIGGER_RULES)
def triggers_page(request, viewer, town):
    if request.method == "POST":
        try:
            if request.POST.get("action") == "remove":
                try:
                    rule = next(r for r in trigger_rule_list(viewer=viewer) if r.pk == int(request.POST.get("rule", "")))
                except (ValueError, StopIteration):
                    raise Http404("No such rule.") from None
                trigger_rule_remove(viewer=viewer, actor=request.user, rule=rule, request=request)
                messages.success(request, _("Rule removed"))
            elif request.POST.get("action") == "policy":
                order_policy_set(
                    viewer=viewer, actor=request.user, town=town,
                    second_person=request.POST.get("second_person") == "on", request=request,
                )
                messages.success(request, _("Saved"))
            elif request.POST.get("action") == "add_jma":
                trigger_rule_add(
                    viewer=viewer, actor=request.user, town=town, jma_warning=request.POST.get("jma_warning") or None,
                    level=_int(request.POST.get("level")), districts=request.POST.getlist("districts"), request=request,
                )
                messages.success(request, _("Rule added"))
            else:
                trigger_rule_add(
                    viewer=viewer, actor=request.user, town=town, station=request.POST.get("station"),
                    threshold=request.POST.get("threshold"), level=_int(request.POST.get("level")),
                    districts=request.POST.getlist("districts"), forecast_minutes=request.POST.get("forecast_minutes"),
                    request=request,
                )
                messages.success(request, _("Rule added"))
        except OrderError as exc:
            messages.error(request, f"{exc.field}: {exc.message}")
        except OrderForbidden as exc:
            messages.error(request, str(exc))
        return redirect("town-admin-triggers")
    gauges = list(station_list(viewer=viewer, kind=StationKind.RIVER))
    thresholds = sorted(
        {(t.level, t.name, t.label_ja, t.label_en) for g in gauges for t in g.thresholds.all() if t.level}
    )
    rules = [rule for rule in trigger_rule_list(viewer=viewer) if rule.municipality_id == town.pk]
    response = render(
        request,
        "dashboard/town_admin/triggers.html",
        {
            "town": town,
            "rules": rules,
            "gauges": gauges,
            "thresholds": [{"name": name, "label_ja": ja, "label_en": en} for _, name, ja, en in thresholds],
            "districts": district_list(municipality=town.slug),
            "levels": (3, 4, 5),
            "second_person": bool(getattr(order_policy_of(town.pk), "second_person", False)),
            "jma_warnings": JMA_TRIGGER_WARNINGS,
        },
    )
    response["Cache-Control"] = "no-store"
    return response


def _int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return value


