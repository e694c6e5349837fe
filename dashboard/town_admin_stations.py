"""The town admin's stations (/hq/admin/stations/): add, edit, move (a map picker beside the
numeric fields), retire and reinstate the town's own stations. Thin: sensors.services writes,
sensors.selectors reads. Another town's station is a 404, the same as one that does not exist."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.db import transaction
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _

from alerts.models import Alert
from alerts.selectors import alert_list
from alerts.services import alert_resolve
from geo.outlines import JAPAN_BOUNDS, station_hull
from sensors.models import Station, StationKind, Visibility
from sensors.selectors import managed_stations
from sensors.services import (
    NEAR_OWN_STATIONS_KM,
    NEAR_TOWN_KM,
    StationFormError,
    StationForbidden,
    station_retire,
    station_save,
    threshold_field,
)
from sensors.threshold_sets import KIND_UNITS, STANDARD_LADDERS
from tenancy.permissions import Action

from .town_admin import town_admin_required

# Echoed back after an error: what was typed, bounded (a hostile paste is not sent back whole).
ECHO_MAX = 200
RETIRED_NOTE = "観測所を廃止 / station retired"
FORM_FIELDS = ("code", "name_ja", "name_en", "kind", "unit", "lon", "lat", "river_name", "datum", "visibility",
               "interval_minutes")


def _managed(viewer, town, code: str) -> Station:
    try:
        return managed_stations(viewer=viewer, town=town).get(code=code)
    except Station.DoesNotExist:
        raise Http404("No station with this code.") from None


@town_admin_required(Action.MANAGE_STATIONS)
def stations_page(request, viewer, town):
    stations = list(managed_stations(viewer=viewer, town=town))
    response = render(
        request, "dashboard/town_admin/stations.html",
        {"town": town, "active": [s for s in stations if s.is_active], "retired": [s for s in stations if not s.is_active]},
    )
    response["Cache-Control"] = "no-store"
    return response


@town_admin_required(Action.MANAGE_STATIONS)
def station_new(request, viewer, town):
    return _station_form(request, viewer, town, None)


@town_admin_required(Action.MANAGE_STATIONS)
def station_edit(request, viewer, town, code):
    station = _managed(viewer, town, code)
    if request.method == "POST" and request.POST.get("action") in ("retire", "reinstate"):
        retired = request.POST["action"] == "retire"
        try:
            with transaction.atomic():
                if retired:
                    # Its open alerts close with it: the board must not keep a row nobody can act on.
                    for alert in alert_list(viewer=viewer, station=station.code).exclude(state=Alert.State.RESOLVED):
                        alert_resolve(alert, request.user, note=RETIRED_NOTE)
                station_retire(viewer=viewer, station=station, retired=retired, actor=request.user, request=request)
        except StationForbidden:
            raise Http404("No station with this code.") from None
        messages.success(
            request,
            f"{station.code}: " + (_("retired (its readings are kept)") if retired else _("reinstated")),
        )
        return redirect(reverse("town-admin-stations"))
    return _station_form(request, viewer, town, station)


def _station_form(request, viewer, town, station: Station | None):
    errors: dict[str, str] = {}
    if request.method == "POST":
        try:
            saved = station_save(
                viewer=viewer, town=town, station=station, data=request.POST, actor=request.user, request=request
            )
        except StationFormError as exc:
            errors = exc.errors
        except StationForbidden:
            raise Http404("No station with this code.") from None
        else:
            messages.success(request, f"{saved.code}: " + _("Saved"))
            return redirect(reverse("town-admin-station-edit", args=[saved.code]))
    values = _typed_values(request.POST) if errors else _initial_values(station)
    response = render(
        request,
        "dashboard/town_admin/station_form.html",
        {
            "town": town,
            "station": station,
            # {field: {"value", "error"}} for the template; threshold rows carry their own in `ladders`.
            "f": {name: {"value": values.get(name, ""), "error": errors.get(name, "")}
                  for name in (*FORM_FIELDS, "location", "thresholds")},
            "errors": errors,
            "kinds": [(kind, label, KIND_UNITS[kind]) for kind, label in StationKind.choices],
            "visibilities": Visibility.choices,
            "ladders": _ladders(values, errors, station),
            "picker": _picker_context(viewer, town, station),
        },
        status=400 if errors else 200,
    )
    response["Cache-Control"] = "no-store"
    return response


def _typed_values(post) -> dict[str, str]:
    names = [*FORM_FIELDS, *(threshold_field(spec.name) for ladder in STANDARD_LADDERS.values() for spec in ladder)]
    return {name: str(post.get(name, ""))[:ECHO_MAX] for name in names}


def _initial_values(station: Station | None) -> dict[str, str]:
    if station is None:
        values = {"kind": StationKind.RIVER, "visibility": Visibility.PRIVATE, "interval_minutes": "10"}
        for ladder in STANDARD_LADDERS.values():
            values.update({threshold_field(spec.name): f"{spec.value:g}" for spec in ladder if spec.value is not None})
        return values
    interval = station.expected_interval
    values = {
        "code": station.code, "name_ja": station.name_ja, "name_en": station.name_en, "kind": station.kind,
        "unit": station.unit, "lon": f"{station.lon:.6f}", "lat": f"{station.lat:.6f}", "river_name": station.river_name,
        "datum": station.datum, "visibility": station.visibility,
        "interval_minutes": str(int(interval.total_seconds() // 60)) if interval else "",
    }
    values.update({threshold_field(t.name): f"{t.value:g}" for t in station.thresholds.all()})
    return values


def _ladders(values: dict[str, str], errors: dict[str, str], station: Station | None) -> list[dict]:
    """The standard threshold fieldsets: every kind's for a new station (the page shows the chosen
    kind's), only its own kind's for an existing one."""
    kinds = [station.kind] if station else list(STANDARD_LADDERS)
    return [
        {
            "kind": kind, "unit": KIND_UNITS[kind], "label": StationKind(kind).label,
            "rows": [
                {
                    "spec": spec, "field": threshold_field(spec.name),
                    "value": values.get(threshold_field(spec.name), ""), "error": errors.get(threshold_field(spec.name), ""),
                }
                for spec in STANDARD_LADDERS[kind]
            ],
        }
        for kind in kinds
    ]


def _picker_context(viewer, town, station: Station | None) -> dict:
    """What the map picker draws around the marker: the town's boundary (or the outline of its
    stations), its other active stations, and where to start. Only the town's own stations, which
    this admin manages."""
    others = [
        {"code": s.code, "lon": s.lon, "lat": s.lat}
        for s in managed_stations(viewer=viewer, town=town).filter(is_active=True)
        if station is None or s.pk != station.pk
    ]
    area = town.boundary or station_hull((s["lon"], s["lat"]) for s in others)
    return {
        "area": area,
        "approximate": not town.boundary,
        "stations": others,
        "tiles_url": settings.MAP_TILES_URL,
        "tiles_attribution": settings.MAP_TILES_ATTRIBUTION,
        "bounds": JAPAN_BOUNDS,
        "near_km": NEAR_TOWN_KM if town.boundary else NEAR_OWN_STATIONS_KM,
    }
