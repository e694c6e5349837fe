"""The platform operator's onboarding page: a new town with its first admin in one form, and the towns
on the platform with what each still lacks (a boundary, an admin, stations). A town without a
boundary is drawn on the maps as the outline of its stations (geo.outlines); the page says so. Thin: tenancy services."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db.models import Count, Q
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _

from config.i18n import localized
from tenancy.models import Membership, Municipality
from tenancy.permissions import Action, permits
from tenancy.selectors import viewer_for_request
from tenancy.services import town_onboard

FORM_FIELDS = ("code", "slug", "name_ja", "name_en", "admin_username")


@login_required
def towns_page(request):
    viewer = viewer_for_request(request)
    if not permits(viewer, Action.ONBOARD_TOWN, None):
        return render(request, "dashboard/town_admin/forbidden.html", status=403)
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        try:
            town, _admin = town_onboard(
                **{field: request.POST.get(field, "") for field in FORM_FIELDS},
                admin_password=request.POST.get("admin_password", ""),
                actor=request.user,
            )
        except ValidationError as exc:
            errors = exc.message_dict
        else:
            messages.success(request, _("Created: %(town)s (%(slug)s)") % {"town": localized(town, "name"), "slug": town.slug})
            return redirect(reverse("platform-towns"))
    towns = Municipality.objects.annotate(
        station_count=Count("stations", filter=Q(stations__is_active=True), distinct=True),
        admin_count=Count("memberships", filter=Q(memberships__role=Membership.Role.ADMIN), distinct=True),
    ).order_by("code")
    return render(
        request,
        "dashboard/platform_towns.html",
        {
            "towns": towns,
            "errors": errors,
            # What was typed comes back after an error; the password never does.
            "values": {field: request.POST.get(field, "") for field in FORM_FIELDS} if errors else {},
        },
        status=400 if errors else 200,
    )
