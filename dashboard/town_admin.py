"""Pages for a town's admin: who may see our stations, the audit log, and our usage.

Every page acts for the admin's acting town only; a station, grant or group of another town is a
404, the same as one that does not exist.
"""

from __future__ import annotations

from datetime import timedelta
from functools import wraps

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _
from config.i18n import localized

from alerts.models import NotificationChannel
from geo.models import Shelter
from geo.selectors import shelter_dataset_csv
from geo.services import shelter_dataset_import
from geo.shelter_dataset import HAZARD_COLUMNS as SHELTER_HAZARD_LABELS
from geo.shelter_dataset import MAX_BYTES as SHELTER_DATASET_MAX_BYTES
from geo.shelter_dataset import DatasetError
from alerts.services import notification_channel_save
from sensors.models import SharingGrant, Station, StationGroup, Threshold, Visibility
from sensors.selectors import sharing_grants_of, station_list, visible_stations
from sensors.services import (
    ItemError,
    SharingError,
    threshold_set,
    sharing_grant,
    sharing_withdraw,
    station_group_create,
    station_visibility_set,
)
from tenancy.models import AuditEvent, IngestToken, Membership, Municipality
from tenancy.permissions import Action, permits, restrict
from tenancy.services import ingest_token_create, ingest_token_revoke, membership_remove, membership_set
from tenancy.selectors import viewer_for_request
from tenancy.usage import parse_month, usage_csv, usage_report

AUDIT_PAGE_SIZE = 200


def town_admin_required(action: Action):
    """The page acts for the viewer's acting town, if tenancy.permissions lets the viewer do `action` there."""

    def decorator(view):
        @login_required
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            viewer = viewer_for_request(request)
            town = (
                Municipality.objects.filter(pk=viewer.acting_municipality_id).first()
                if viewer.acting_municipality_id is not None
                else None
            )
            if town is None or not permits(viewer, action, town):
                return render(request, "dashboard/town_admin/forbidden.html", status=403)
            return view(request, viewer, town, *args, **kwargs)

        return wrapper

    return decorator


def _own_station(viewer, town, code) -> Station:
    try:
        return station_list(viewer=viewer).filter(municipality=town).get(code=code)
    except Station.DoesNotExist:
        raise Http404("No station with this code.") from None


def _other_town(town, pk) -> Municipality:
    try:
        return Municipality.objects.exclude(pk=town.pk).get(pk=int(pk))
    except (ValueError, TypeError, Municipality.DoesNotExist):
        raise Http404("No such municipality.") from None


@town_admin_required(Action.MANAGE_SHARING)
def sharing_page(request, viewer, town):
    if request.method == "POST":
        try:
            _apply_sharing_change(request, viewer, town)
        except SharingError as exc:
            messages.error(request, str(exc))
        return redirect(reverse("town-admin-sharing"))
    own = list(station_list(viewer=viewer).filter(municipality=town).prefetch_related("groups"))
    return render(
        request,
        "dashboard/town_admin/sharing.html",
        {
            "town": town,
            "stations": own,
            "visibilities": Visibility.choices,
            "grants": list(sharing_grants_of(municipality_id=town.pk)),
            "groups": list(StationGroup.objects.filter(municipality=town).prefetch_related("stations")),
            "neighbours": list(Municipality.objects.exclude(pk=town.pk).order_by("code")),
        },
    )


def _apply_sharing_change(request, viewer, town) -> None:
    action = request.POST.get("action")
    user = request.user
    if action == "visibility":
        station = _own_station(viewer, town, request.POST.get("station"))
        station_visibility_set(station=station, visibility=request.POST.get("visibility", ""), actor=user)
        messages.success(request, f"{station.code}: {_(station.get_visibility_display())}")
    elif action == "grant":
        grantee = _other_town(town, request.POST.get("grantee"))
        if request.POST.get("group"):
            group = _own_group(town, request.POST["group"])
            sharing_grant(group=group, grantee=grantee, actor=user)
            messages.success(request, f"{group.name} → {localized(grantee, 'name')}")
        else:
            station = _own_station(viewer, town, request.POST.get("station"))
            sharing_grant(station=station, grantee=grantee, actor=user)
            messages.success(request, f"{station.code} → {localized(grantee, 'name')}")
    elif action == "withdraw":
        try:
            grant = SharingGrant.objects.get(pk=int(request.POST.get("grant", "")), grantor=town)
        except (ValueError, SharingGrant.DoesNotExist):
            raise Http404("No such grant.") from None
        sharing_withdraw(grant=grant, actor=user)
        messages.success(request, _("Sharing withdrawn"))
    elif action == "group":
        codes = request.POST.getlist("stations")
        stations = list(station_list(viewer=viewer).filter(municipality=town, code__in=codes))
        name = request.POST.get("name", "").strip()
        if not name or len(stations) != len(set(codes)) or not stations:
            raise SharingError("A group needs a name and at least one of your stations.")
        station_group_create(municipality=town, name=name, stations=stations)
        messages.success(request, name)
    else:
        raise SharingError("Unknown action.")


def _own_group(town, pk) -> StationGroup:
    try:
        return StationGroup.objects.get(pk=int(pk), municipality=town)
    except (ValueError, StationGroup.DoesNotExist):
        raise Http404("No such group.") from None


@town_admin_required(Action.VIEW_AUDIT)
def audit_page(request, viewer, town):
    action = request.GET.get("action") or None
    events = AuditEvent.objects.filter(municipality=town).select_related("actor").order_by("-at")
    if action in AuditEvent.Action.values:
        events = events.filter(action=action)
    return render(
        request,
        "dashboard/town_admin/audit.html",
        {"town": town, "events": events[:AUDIT_PAGE_SIZE], "actions": AuditEvent.Action.choices, "action": action},
    )


@town_admin_required(Action.VIEW_AUDIT)
def usage_page(request, viewer, town):
    try:
        month = parse_month(request.GET.get("month"))
    except ValueError as exc:
        return HttpResponse(str(exc), status=400, content_type="text/plain; charset=utf-8")
    rows = usage_report(month, municipality_ids=None if viewer.is_platform_admin else [town.pk])
    names = list(rows[0].counts) if rows else []
    if request.GET.get("format") == "csv":
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="usage-{month:%Y-%m}.csv"'
        usage_csv(rows, response)
        return response
    return render(
        request, "dashboard/town_admin/usage.html", {"town": town, "rows": rows, "names": names, "month": month}
    )


@town_admin_required(Action.EDIT_THRESHOLDS)
def thresholds_page(request, viewer, town):
    if request.method == "POST":
        try:
            threshold = restrict(Threshold.objects.select_related("station"), viewer, Action.EDIT_THRESHOLDS).get(
                pk=int(request.POST.get("threshold", "")), station__municipality=town
            )
        except (ValueError, Threshold.DoesNotExist):
            raise Http404("No such threshold.") from None
        try:
            threshold = threshold_set(threshold=threshold, value=request.POST.get("value", ""), actor=request.user)
            messages.success(request, f"{threshold.station.code} {localized(threshold, 'label')}: {threshold.value:g}")
        except ItemError as exc:
            messages.error(request, f"{threshold.station.code} {localized(threshold, 'label')}: {exc}")
        return redirect(reverse("town-admin-thresholds"))
    stations = list(
        station_list(viewer=viewer).filter(municipality=town)
    )
    return render(request, "dashboard/town_admin/thresholds.html", {"town": town, "stations": stations})


@town_admin_required(Action.MANAGE_TOKENS)
def tokens_page(request, viewer, town):
    created_secret = None
    if request.method == "POST":
        if request.POST.get("action") == "revoke":
            try:
                token = IngestToken.objects.get(pk=int(request.POST.get("token", "")), municipality=town)
            except (ValueError, IngestToken.DoesNotExist):
                raise Http404("No such token.") from None
            ingest_token_revoke(token=token, actor=request.user)
            messages.success(request, _("Revoked %(token)s…") % {"token": token.prefix})
        else:
            # Shown on this response only; never stored, never shown again.
            _token, created_secret = ingest_token_create(
                municipality=town, label=request.POST.get("label", "").strip(), created_by=request.user
            )
    tokens = list(IngestToken.objects.filter(municipality=town))
    response = render(
        request,
        "dashboard/town_admin/tokens.html",
        {
            "town": town, "tokens": tokens, "created_secret": created_secret,
            "has_active_token": any(token.is_active for token in tokens),
            **_first_readings(viewer, town),
        },
    )
    response["Cache-Control"] = "no-store"
    return response


def _first_readings(viewer, town) -> dict:
    """Onboarding's check after a gateway is set up: which of the town's own stations have sent a
    reading yet (their latest state), newest first, and which are still silent."""
    own = list(visible_stations(viewer=viewer, municipality=town.slug).filter(municipality=town).select_related("state"))
    reporting = sorted(
        (station for station in own if getattr(station, "state", None) and station.state.observed_at),
        key=lambda station: station.state.observed_at, reverse=True,
    )
    return {"reporting": reporting, "silent": [station for station in own if station not in reporting], "own_count": len(own)}


@town_admin_required(Action.MANAGE_MEMBERS)
def members_page(request, viewer, town):
    if request.method == "POST":
        username = request.POST.get("username", "").strip()
        user = get_user_model().objects.filter(username=username, is_active=True).first()
        if user is None:
            messages.error(request, _("No active user with that name; the platform operator creates accounts."))
        elif request.POST.get("action") == "remove":
            membership = Membership.objects.filter(user=user, municipality=town).first()
            if membership is None:
                raise Http404("No such member.")
            if user == request.user:
                messages.error(request, _("You cannot remove yourself."))
            else:
                membership_remove(membership=membership, actor=request.user)
        elif request.POST.get("role") in Membership.Role.values:
            membership_set(user=user, municipality=town, role=request.POST["role"], actor=request.user)
        else:
            messages.error(request, _("Choose viewer, operator or admin."))
        return redirect(reverse("town-admin-members"))
    return render(
        request,
        "dashboard/town_admin/members.html",
        {
            "town": town,
            "memberships": Membership.objects.filter(municipality=town).select_related("user").order_by("user__username"),
            "roles": Membership.Role.choices,
        },
    )


@town_admin_required(Action.MANAGE_ALERT_CHANNELS)
def channels_page(request, viewer, town):
    """Where the town's alerts go, which channels are failing, and what each one subscribes to."""
    neighbours_stations = list(station_list(viewer=viewer).exclude(municipality=town))
    if request.method == "POST":
        channel = None
        if request.POST.get("channel"):
            try:
                channel = NotificationChannel.objects.get(pk=int(request.POST["channel"]), municipality=town)
            except (ValueError, NotificationChannel.DoesNotExist):
                raise Http404("No such channel.") from None
        wanted = set(request.POST.getlist("stations"))
        try:
            digest_window = _digest_minutes(request.POST.get("digest_minutes", ""))
            notification_channel_save(
                municipality=town, channel=channel,
                kind=request.POST.get("kind", channel.kind if channel else ""),
                target=request.POST.get("target", channel.target if channel else ""),
                secret=request.POST.get("secret", ""),
                scope=request.POST.get("scope", NotificationChannel.Scope.VISIBLE),
                stations=[station for station in neighbours_stations if station.code in wanted],
                enabled=request.POST.get("enabled") == "on",
                digest_window=digest_window,
            )
            messages.success(request, _("Saved"))
        except ValidationError as exc:
            messages.error(request, "; ".join(f"{field}: {' '.join(errors)}" for field, errors in exc.message_dict.items()))
        return redirect(reverse("town-admin-channels"))
    channels = list(NotificationChannel.objects.filter(municipality=town).prefetch_related("stations"))
    return render(
        request,
        "dashboard/town_admin/channels.html",
        {
            "town": town, "channels": channels, "kinds": NotificationChannel.Kind.choices,
            "scopes": NotificationChannel.Scope.choices, "neighbours_stations": neighbours_stations,
            "default_digest_minutes": settings.ALERT_DIGEST_WINDOW_SECONDS // 60,
        },
    )


def _digest_minutes(raw: str) -> timedelta | None:
    """The channel form's rate limit in whole minutes; empty: the platform default."""
    raw = raw.strip()
    if not raw:
        return None
    if not raw.isdigit():
        raise ValidationError({"digest_window": ["whole minutes, 0–1440 / 0〜1440の分数で"]})
    return timedelta(minutes=int(raw))


SHELTER_UPLOAD_FIELD = "dataset"


@town_admin_required(Action.MANAGE_SHELTERS)
def shelters_page(request, viewer, town):
    """The town's 指定緊急避難場所 as the national standard CSV: download it, or upload one (only this
    town's rows are imported) and see the per-row report."""
    if request.GET.get("format") == "csv":
        response = HttpResponse(shelter_dataset_csv(municipality=town), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="shelters-{town.code}.csv"'
        return response
    report, error = None, None
    if request.method == "POST":
        upload = request.FILES.get(SHELTER_UPLOAD_FIELD)
        if upload is None:
            error = "Choose a CSV file / CSVファイルを選んでください"
        elif upload.size > SHELTER_DATASET_MAX_BYTES:
            error = f"The file is larger than {SHELTER_DATASET_MAX_BYTES // (1024 * 1024)} MiB"
        else:
            try:
                report = shelter_dataset_import(
                    data=upload.read(), municipality=town, dry_run=bool(request.POST.get("dry_run"))
                )
            except DatasetError as exc:
                error = str(exc)
    marks = {True: "○", False: "—", None: "?"}
    rows = [
        (shelter, [marks[shelter.suitable_for(hazard)] for hazard in SHELTER_HAZARD_LABELS])
        for shelter in Shelter.objects.filter(municipality=town).order_by("code")
    ]
    return render(
        request, "dashboard/town_admin/shelters.html",
        {"town": town, "rows": rows, "report": report, "error": error, "hazards": SHELTER_HAZARD_LABELS.values()},
        status=400 if error else 200,
    )
