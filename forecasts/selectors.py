"""Reads of forecasts. What a viewer sees goes through `sensors.selectors.station_get` (the station
selector that takes the viewer); what a model may read goes through `Station.objects.visible_to`
with the gauge's OWNER town as the viewer, so a neighbour's private gauge is an input only when
it is shared with that town."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

import numpy as np
from django.db.models import OuterRef, QuerySet, Subquery

from shapely.geometry import Point, shape

from geo.models import Basin, River
from sensors.models import Station, StationKind
from sensors.selectors import readings_in_ranges_micros, station_get
from tenancy.models import Membership
from tenancy.selectors import Viewer

from .learn import FORECAST_RAIN_MAX_AGE, RainForecasts, Series
from .models import ForecastModel, RainForecast, StationForecast

FORECAST_KINDS = (StationKind.RIVER, StationKind.RESERVOIR)
MAX_UPSTREAM = 3
# A river gauge this close to a tide gauge is near enough to the mouth for the sea to back it up.
TIDE_INPUT_KM = 5.0
MAX_TIDE = 1


def town_viewer(municipality_id: int) -> Viewer:
    """The owner town itself as a viewer: what its own staff may see, no more."""
    return Viewer(
        municipality_ids=frozenset({municipality_id}),
        role=Membership.Role.VIEWER,
        acting_municipality_id=municipality_id,
    )


@dataclass(frozen=True)
class InputStations:
    upstream: list[Station]
    rain: list[Station]
    tide: list[Station] = field(default_factory=list)

    def as_json(self) -> dict:
        codes = {"upstream": [s.code for s in self.upstream], "rain": [s.code for s in self.rain]}
        return codes | ({"tide": [s.code for s in self.tide]} if self.tide else {})


def _km(a: Station, b: Station) -> float:
    """Great-circle distance (km): an equirectangular approximation, good to metres at these ranges."""
    mean_lat = math.radians((a.lat + b.lat) / 2)
    return 6371.0 * math.hypot(math.radians(b.lon - a.lon) * math.cos(mean_lat), math.radians(b.lat - a.lat))


def tide_inputs(station: Station) -> list[Station]:
    """The tide gauges (visible to the gauge's owner town) within TIDE_INPUT_KM of a river gauge,
    nearest first: the sea level its model reads near the mouth."""
    if station.kind != StationKind.RIVER:
        return []
    gauges = Station.objects.visible_to(town_viewer(station.municipality_id)).filter(is_active=True, kind=StationKind.TIDE)
    near = sorted((_km(station, gauge), gauge.code, gauge) for gauge in gauges)
    return [gauge for km, _, gauge in near if km <= TIDE_INPUT_KM][:MAX_TIDE]


def _river_of(station: Station, rivers: list[River]) -> River | None:
    name = station.river_name.strip()
    if not name:
        return None
    return next((river for river in rivers if name in (river.name_ja, river.name_en)), None)


def _line(river: River):
    return shape(river.geometry)


def _along(station: Station, river: River) -> float:
    return _line(river).project(Point(station.lon, station.lat))


def _junction_on(tributary: River, trunk: River) -> float | None:
    """Where a tributary's last point meets the trunk, as a distance along the trunk; None if it doesn't."""
    line = _line(tributary)
    if line.geom_type != "LineString":
        return None
    mouth = Point(line.coords[-1])
    trunk_line = _line(trunk)
    return trunk_line.project(mouth) if trunk_line.distance(mouth) < 1e-3 else None


def forecast_inputs(station: Station) -> InputStations:
    """The gauges a station's model may read: up to MAX_UPSTREAM river gauges upstream of it
    (on its river, or on a tributary joining above it; nearest first along the water) and the rain
    gauges of its basin, all of them visible to its owner town."""
    eligible = list(
        Station.objects.visible_to(town_viewer(station.municipality_id))
        .filter(is_active=True, kind__in=(StationKind.RIVER, StationKind.RAIN))
        .exclude(pk=station.pk)
    )
    here = Point(station.lon, station.lat)
    basin = next((b for b in Basin.objects.all() if shape(b.geometry).buffer(1e-6).contains(here)), None)
    if basin is None:
        return InputStations([], [])
    area = shape(basin.geometry).buffer(1e-6)
    rain = [s for s in eligible if s.kind == StationKind.RAIN and area.contains(Point(s.lon, s.lat))]
    rivers = list(River.objects.filter(basin=basin))
    own_river = _river_of(station, rivers)
    upstream = []
    if own_river is not None:
        own_here = _along(station, own_river)
        for other in eligible:
            river = _river_of(other, rivers) if other.kind == StationKind.RIVER else None
            if river is None:
                continue
            if river.pk == own_river.pk:
                distance = own_here - _along(other, river)
            else:
                junction = _junction_on(river, own_river)
                if junction is None or junction >= own_here:
                    continue
                distance = own_here - junction + _line(river).length - _along(other, river)
            if distance > 0:
                upstream.append((distance, other))
    upstream.sort(key=lambda item: (item[0], item[1].code))
    return InputStations([s for _, s in upstream[:MAX_UPSTREAM]], rain, tide_inputs(station))


# `readings_of` without a bound: before and after every stored reading.
_NO_START = datetime.min.replace(tzinfo=dt_timezone.utc)
_NO_END = datetime.max.replace(tzinfo=dt_timezone.utc)


def readings_of(station_ids, *, since: datetime | None = None, until: datetime | None = None) -> dict[int, Series]:
    """Each station's usable readings (suspect ones left out) in [since, until] as epoch-second series.
    For services that already hold the stations they work on; never answers a viewer. Read as arrays
    (`readings_in_ranges_micros`: no row and no parsed timestamp per reading in Python — the drain's
    forecast refresh reads every trained gauge's look-back each batch)."""
    start = _NO_START if since is None else since - timedelta(microseconds=1)  # the ranges are (start, end]
    end = _NO_END if until is None else until
    arrays = readings_in_ranges_micros({pk: (start, end) for pk in station_ids})
    series = {}
    for station_id in station_ids:
        micros, values, suspect = arrays.get(station_id, ([], [], []))
        usable = ~np.asarray(suspect, dtype=bool)
        # Integer microseconds / 1e6: the same double as `datetime.timestamp()` gives.
        series[station_id] = Series(
            np.asarray(micros, dtype=np.int64)[usable] / 1e6, np.asarray(values, dtype=float)[usable]
        )
    return series


def rain_forecasts_of(station_ids, *, since: datetime | None = None, until: datetime | None = None) -> dict[int, RainForecasts]:
    """Each rain gauge's forecast issues made in [since - FORECAST_RAIN_MAX_AGE, until] (what a model
    forecasting from times in [since, until] may read). For services, like `readings_of`."""
    queryset = RainForecast.objects.filter(station_id__in=list(station_ids))
    if since is not None:
        queryset = queryset.filter(issued_at__gte=since - timedelta(seconds=FORECAST_RAIN_MAX_AGE))
    if until is not None:
        queryset = queryset.filter(issued_at__lte=until)
    rows = defaultdict(list)
    for station_id, issued_at, valid_at, value in queryset.values_list("station_id", "issued_at", "valid_at", "value").iterator(
        chunk_size=20000
    ):
        rows[station_id].append((issued_at.timestamp(), valid_at.timestamp(), value))
    return {station_id: RainForecasts.of(rows.get(station_id, [])) for station_id in station_ids}


def newest_models() -> QuerySet[ForecastModel]:
    """The newest version of each station's model (the one that serves)."""
    newest = ForecastModel.objects.filter(station_id=OuterRef("station_id")).order_by("-version").values("version")[:1]
    return ForecastModel.objects.filter(version=Subquery(newest))


def active_models(station_ids) -> dict[int, ForecastModel]:
    return {model.station_id: model for model in newest_models().filter(station_id__in=list(station_ids))}


def forecast_for_viewer(*, viewer: Viewer, code: str) -> tuple[Station, StationForecast | None]:
    """A station the viewer may see and its current forecast; raises Station.DoesNotExist alike for
    missing and not-visible stations."""
    station = station_get(viewer=viewer, code=code)
    forecast = StationForecast.objects.filter(station=station).select_related("model").first()
    return station, forecast


def forecasts_for_stations(station_ids) -> dict[int, StationForecast]:
    """Current forecasts of stations a caller has already selected through the viewer's selector."""
    return {f.station_id: f for f in StationForecast.objects.filter(station_id__in=list(station_ids))}


def forecast_reach(forecast: StationForecast, value: float, *, within_seconds: float):
    """When the gauge of this stored forecast is forecast to reach `value`, with what band and how
    likely within `within_seconds` (forecasts.predict.Reach); the method (learned model or the
    labelled trend fallback) is the one the gauge's model chose."""
    from .predict import reach

    return reach(
        method=forecast.method, based_on=forecast.based_on.timestamp(), level_now=forecast.level_now,
        points=forecast.points, exceedance=forecast.exceedance, value=value, within_seconds=within_seconds,
    )


def forecast_warning(forecast: StationForecast, value: float, *, within_seconds: float, min_probability: float):
    """The gauge's reach of `value` (forecast_reach) when the warning rule (forecasts.predict.warning)
    warns of it within `within_seconds` at `min_probability`; None otherwise. What the board's
    pre-alerts and the evacuation trigger rules both act on, and what the backtest scores."""
    reached = forecast_reach(forecast, value, within_seconds=within_seconds)
    return reached if reached is not None and reached.warns(min_probability) else None


def reach_crossing(threshold: dict, reach) -> dict:
    """A reach of a threshold in the shape `predict.crossing_text` and the API's crossing take."""
    return {key: threshold[key] for key in ("name", "label_ja", "label_en", "level", "value")} | {
        "at": reach.at, "earliest": reach.earliest, "latest": reach.latest,
    }


def _default_prealert() -> dict:
    from .predict import WARNING_MINUTES, WARNING_PROBABILITY

    return {"min_probability": WARNING_PROBABILITY, "lead_minutes": WARNING_MINUTES, "min_level": 3}


def prealert_setting(municipality_id: int | None) -> dict:
    """A town's choice of how sure and how early a forecast warning must be (PrealertSetting), or
    the calibrated defaults of the warning rule."""
    from .models import PrealertSetting

    setting = PrealertSetting.objects.filter(municipality_id=municipality_id).first() if municipality_id else None
    if setting is None:
        return _default_prealert()
    return {"min_probability": setting.min_probability, "lead_minutes": setting.lead_minutes, "min_level": setting.min_level}


def forecast_prealerts(*, viewer: Viewer) -> list[dict]:
    """Gauges the viewer may see that the warning rule warns of crossing a threshold of the acting
    town's minimum level within its lead time at its probability; the highest level first."""
    from sensors.selectors import station_list

    from django.utils import timezone

    from .predict import crossing_text

    zone = timezone.get_current_timezone()
    setting = prealert_setting(viewer.acting_municipality_id)
    stations = {s.pk: s for s in station_list(viewer=viewer).filter(kind__in=FORECAST_KINDS)}
    within = setting["lead_minutes"] * 60
    found = []
    for forecast in StationForecast.objects.filter(station_id__in=list(stations)):
        for threshold in forecast.exceedance:
            if not threshold["level"] or threshold["level"] < setting["min_level"]:
                continue
            reached = forecast_warning(forecast, threshold["value"], within_seconds=within,
                                       min_probability=setting["min_probability"])
            if reached is None:
                continue
            crossing = reach_crossing(threshold, reached)
            found.append({"station": stations[forecast.station_id], "threshold": threshold, "probability": reached.probability,
                          "method": forecast.method,
                          "crossing_text_ja": crossing_text(crossing, english=False, zone=zone),
                          "crossing_text_en": crossing_text(crossing, english=True, zone=zone)})
    # One line per gauge: its highest threshold that qualifies.
    best = {}
    for item in found:
        current = best.get(item["station"].pk)
        if current is None or item["threshold"]["level"] > current["threshold"]["level"]:
            best[item["station"].pk] = item
    return sorted(best.values(), key=lambda item: (-item["threshold"]["level"], -item["probability"], item["station"].code))
