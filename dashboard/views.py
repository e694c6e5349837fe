"""Public and HQ map pages, the shelter status endpoint and the station page. Thin: pick the viewer, ask
the selectors and map builders (or a service, for a write), render."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponseBadRequest, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_POST
from rest_framework.exceptions import ValidationError as DRFValidationError

from geo.maps import embed_parts, load_geography
from geo.models import Shelter
from geo.selectors import shelter_get, shelter_list, shelter_status_settable
from geo.services import shelter_status_set
from sensors.models import Station, StationKind
from sensors.api import parse_as_of
from sensors.selectors import local_iso, tide_harmonics_of
from sensors.tide import Harmonics, predict as tide_predict
from tenancy.models import Membership, Municipality
from tenancy.permissions import Action, permits
from tenancy.selectors import Viewer, memberships_of, viewer_for_request
from tenancy.services import town_switch

from .health import pipeline_status
from .features import audience_features, encode
from .live import STATION_LAYERS, live_store
from .live_geo import shelter_feature, shelter_features
from alerts.selectors import alert_board, alert_document
from forecasts.charts import station_page_forecast

from .alert_views import public_alerts
from jma.selectors import jma_warnings_by_town
from releases.selectors import release_document, releases_in_force
from .maps import (
    alert_map_feature,
    SHELTER_STATUSES,
    LevelStyle,
    ShelterStatusStyle,
    kind_style,
    level_style,
    rain_threshold_style,
    headline_text,
    shelter_status_style,
    levels,
    map_vocabulary,
    state_style,
    observed_text,
    reached_threshold,
    station_map,
    station_notices,
    value_text,
    window_text,
)
from .selectors import (
    RAIN_BIN,
    RAIN_RUNNING_TOTAL,
    StationHistory,
    station_history,
    thin_series,
)


@login_required
def hq_map(request):
    viewer = viewer_for_request(request)
    context = map_page_context(viewer=viewer, show_sharing=True)
    towns = context["geography"].municipalities
    context["active_towns"] = [town for town in towns if town.pk in viewer.municipality_ids]
    context["memberships"] = memberships_of(request.user)
    context["acting_municipality_id"] = viewer.acting_municipality_id
    context["is_platform_admin"] = viewer.is_platform_admin
    context["shelter_rows"] = shelter_panel_rows(viewer, context["shelters"])
    context["shelter_choices"] = SHELTER_CHOICES
    context["live_view"] = "hq"
    acting = next((t for t in towns if t.pk == viewer.acting_municipality_id), None)
    context["releases_own_town"] = acting.slug if acting else ""
    context["pipeline"] = pipeline_status()
    context["is_town_admin"] = viewer.acting_municipality_id is not None and permits(
        viewer, Action.MANAGE_SHARING, Municipality(pk=viewer.acting_municipality_id)
    )
    context["may_onboard_towns"] = permits(viewer, Action.ONBOARD_TOWN, None)
    return render(request, "dashboard/hq.html", context)


def map_page_context(*, viewer: Viewer, show_sharing: bool) -> dict:
    geography = load_geography()
    store = live_store()
    # The number is read before the stations: anything published meanwhile is newer, and reaches
    # the page when its socket resumes from it (no second snapshot).
    seq, stream = store.current_seq(), store.stream_id()
    stations = audience_features(viewer, show_sharing=show_sharing).current(seq=seq, stream=stream)
    shelters = shelter_list()
    features = shelter_features(shelters)
    alerts = public_alerts() if viewer.is_anonymous else alert_board(viewer)
    folium_map = station_map(
        geography,
        stations.points_by_town(),
        shelter_features=features,
        alert_features=[alert_map_feature(alert_document(alert)) for alert in alerts],
        own_municipality_ids=viewer.municipality_ids,
    )
    return {
        "geography": geography,
        # Drawn by static/mizumori/stations.js; both go into the page as JSON. The snapshot's
        # features are kept encoded per audience (dashboard.features), escaped as json_script does.
        "live_snapshot_json": mark_safe(
            encode({"seq": seq, "stream": stream, "layers": list(STATION_LAYERS)})[:-1]
            + ',"features":' + stations.json_array() + "}"
        ),
        "map_vocabulary": map_vocabulary(towns=geography.municipalities, show_sharing=show_sharing),
        "shelters": list(zip(shelters, features)),
        # Staff pages count these again in the overview (timeline's hq_overview tag): read once.
        "alert_board": None if viewer.is_anonymous else alerts,
        "map": embed_parts(folium_map),
        "station_count": len(stations),
        "notices": station_notices(stations.needing_notice(), geography.municipalities),
        # Dam release notices are public: the same on both pages (static/mizumori/releases.js).
        "releases": [release_document(release) for release in releases_in_force()],
        # The weather agency's warnings in force per town, in its words (jma/).
        "jma_warnings": jma_warnings_by_town(),
        "generated_at": timezone.localtime(),
        "demo_banner": getattr(settings, "MIZUMORI_DEMO_BANNER", False),
    }


# --- one station: /stations/<code>/ -------------------------------------------------------------


@dataclass(frozen=True)
class ChartSpan:
    key: str  # the ?range= value
    length: timedelta
    label_ja: str
    label_en: str


# Only these spans, whatever the query string says, so the page's readings query stays bounded.
CHART_SPANS = {
    # The map's time slider offers 6 h, 24 h and 72 h too.
    "6h": ChartSpan("6h", timedelta(hours=6), "6時間", "6 hours"),
    "24h": ChartSpan("24h", timedelta(hours=24), "24時間", "24 hours"),
    "72h": ChartSpan("72h", timedelta(hours=72), "72時間", "72 hours"),
    "7d": ChartSpan("7d", timedelta(days=7), "7日間", "7 days"),
}
DEFAULT_CHART_SPAN = CHART_SPANS["24h"]
# Newest readings listed in the table; the CSV link has the whole span.
READINGS_TABLE_ROWS = 500
# Points per line on the chart: more than a wide screen has pixels across.
CHART_MAX_POINTS = 2000


def station_detail(request, code: str):
    span = CHART_SPANS.get(request.GET.get("range", ""), DEFAULT_CHART_SPAN)
    # Whole seconds, so the CSV link names the very range shown, in readable times.
    now = timezone.now().replace(microsecond=0)
    try:
        at = page_as_of(request.GET.get("at"), now=now)
    except DRFValidationError as exc:
        # Plain text: the message quotes what was sent.
        return HttpResponseBadRequest(f"at: {exc.detail['at']}", content_type="text/plain; charset=utf-8")
    until = at or now
    try:
        history = station_history(
            viewer=viewer_for_request(request), code=code, since=until - span.length, until=until,
            as_of=at is not None,
        )
    except Station.DoesNotExist:
        # The same 404 for "no such station" and "not yours to see": existence is private.
        raise Http404("No such station.") from None
    context = station_page_context(history, span=span, at=at)
    # A forecast is made from now: none beside the past.
    context["forecast"] = None if at else station_page_forecast(history.station, context["chart"], viewer_for_request(request))
    context["back_url"] = reverse("dashboard-hq" if request.user.is_authenticated else "dashboard-public")
    return render(request, "dashboard/station_detail.html", context)


def page_as_of(raw: str | None, *, now) -> datetime | None:
    """A page's ?at=: the past moment to show (None: now). ISO 8601 with an offset as the API takes
    it (`sensors.api.parse_as_of`), or without one, as a datetime-local field sends it, in the site's
    time zone; a moment not before now (a step forward past it) means now."""
    if not raw:
        return None
    if len(raw) <= 64:
        try:
            naive = datetime.fromisoformat(raw)
        except ValueError:
            naive = None
        if naive is not None and naive.tzinfo is None and naive.year > 1900:
            raw = timezone.make_aware(naive).isoformat()
    at = parse_as_of("at", raw, now=now).replace(microsecond=0)
    return None if at >= now else at


@dataclass(frozen=True)
class TrendStyle:
    arrow: str
    ja: str
    en: str


TRENDS = {
    "rising": TrendStyle("↑", "上昇", "rising"),
    "steady": TrendStyle("→", "横ばい", "steady"),
    "falling": TrendStyle("↓", "下降", "falling"),
}
RAIN_TRENDS = {
    "rising": TrendStyle("↑", "強まっている", "getting heavier"),
    "steady": TrendStyle("→", "横ばい", "steady"),
    "falling": TrendStyle("↓", "弱まっている", "easing"),
}
NO_TREND = TrendStyle("–", "データ不足", "not enough data")
NO_RAIN = TrendStyle("–", "降雨なし", "no rain")

QUALITY_WORDS = {
    "ok": ("正常", "ok"),
    "suspect": ("要確認（急な変化）", "suspect (sudden jump)"),
    "range": ("要確認（範囲外）", "out of range"),
    "flatline": ("要確認（値が変わらない）", "flatline (value stuck)"),
}

# Threshold lines differ by dash pattern (and by the level written in their label) as well as by
# colour, for colour-blind readers and black-and-white printouts. Canvas pixels; L5 is solid.
THRESHOLD_DASH: dict[int | None, list[int]] = {
    None: [2, 4],
    0: [2, 4],
    1: [2, 4],
    2: [12, 4],
    3: [12, 4, 2, 4],
    4: [5, 4],
    5: [],
}

CHART_TITLES = {
    "hydrograph": ("水位の推移", "Water level (hydrograph)"),
    "hyetograph": ("雨量の推移", "Rainfall (hyetograph)"),
    "storage": ("貯水率の推移", "Storage rate"),
    "tide": ("潮位の推移", "Tide level"),
}
CHART_COLOURS = {"river": "#0b4f8a", "reservoir": "#0b6e4f", "tide": "#5a3d8a", "tide_predicted": "#6b6b6b", "rain_bars": "#5b9bd5", "rain_total": "#00838f"}


# Styles whose fill shows as a line on a white chart (alert levels 2-5, JMA's rain colours from 強い雨).
STRONG_FILLS = {"2", "3", "4", "5", "rain-heavy", "rain-very_heavy", "rain-extremely_heavy", "rain-torrential"}


@dataclass(frozen=True)
class ThresholdLine:
    """One threshold as the chart draws it and the list under the chart names it."""

    label_ja: str
    label_en: str
    level: LevelStyle
    value: float
    value_text: str
    window: str  # "1時間 / 1 h" for rain totals, "" otherwise
    scale: str | None  # the chart scale it is drawn on; None: its window matches no plotted series

    @property
    def colour(self) -> str:
        # Calm levels have a white or pale fill, invisible as a line: use their outline colour.
        return self.level.fill if self.level.css in STRONG_FILLS else self.level.stroke

    @property
    def dash(self) -> list[int]:
        return THRESHOLD_DASH.get(int(self.level.css) if self.level.css.isdigit() else None, [])

    @property
    def svg_dash(self) -> str:
        return " ".join(str(step) for step in self.dash) or "none"

    def as_chart_json(self) -> dict:
        return {
            "label_ja": self.label_ja,
            "label_en": self.label_en,
            "badge": self.level.badge,
            "level_css": self.level.css,
            "value": self.value,
            "value_text": self.value_text + (f" ({self.window})" if self.window else ""),
            "scale": self.scale,
            "colour": self.colour,
            "outline": self.level.stroke,
            "dash": self.dash,
            "width": 3 if self.level.css == "5" else 2,
        }


def threshold_scale(kind: str, window_minutes: int | None) -> str | None:
    if kind != StationKind.RAIN:
        return "value"
    # A rain threshold with no window is compared with each reading, i.e. with a 10-minute amount.
    if window_minutes is None or window_minutes == RAIN_BIN.total_seconds() // 60:
        return "amount"
    if window_minutes == RAIN_RUNNING_TOTAL.total_seconds() // 60:
        return "total"
    return None


def threshold_lines(props: dict, styles: dict) -> list[ThresholdLine]:
    return [
        ThresholdLine(
            label_ja=threshold["label_ja"],
            label_en=threshold["label_en"],
            level=(
                rain_threshold_style(threshold["window_minutes"], threshold["value"])
                if props["kind"] == StationKind.RAIN
                else level_style(threshold["level"], styles)
            ),
            value=threshold["value"],
            value_text=value_text(threshold["value"], props["unit"]),
            window=window_text(str(threshold["window_minutes"] * 60)) if threshold["window_minutes"] else "",
            scale=threshold_scale(props["kind"], threshold["window_minutes"]),
        )
        for threshold in props["thresholds"]
    ]


def chart_scale(key: str, side: str, label_ja: str, label_en: str, *, from_zero: bool) -> dict:
    return {"key": key, "side": side, "from_zero": from_zero, "label_ja": label_ja, "label_en": label_en}


def chart_series(key, kind, scale, colour, label_ja, label_en, values) -> dict:
    """`kind` is how the series is drawn: "line" or "bars"."""
    return {
        "key": key, "type": kind, "scale": scale, "colour": colour,
        "label_ja": label_ja, "label_en": label_en, "values": values,
    }


def station_chart(history: StationHistory, thresholds: list[ThresholdLine], tide: Harmonics | None = None) -> dict:
    """What static/mizumori/station.js draws, embedded with json_script: data and labels, no code."""
    station = history.station
    unit = station.unit
    chart = {
        "unit": unit,
        # As value_text: river stages to the centimetre, rain and storage to one decimal.
        "digits": 2 if unit == "m" else 1,
        "time_zone": settings.TIME_ZONE,
        "x_range": [history.since.timestamp(), history.until.timestamp()],
        "thresholds": [line.as_chart_json() for line in thresholds if line.scale],
    }
    if station.kind == StationKind.RAIN:
        intervals = history.rain_intervals()
        if intervals:
            chart["x_range"][1] = max(chart["x_range"][1], intervals[-1].end.timestamp())
        chart |= {
            "chart": "hyetograph",
            "x": [interval.end.timestamp() for interval in intervals],
            "scales": [
                chart_scale("amount", "left", f"10分雨量 ({unit})", f"10-min rain ({unit})", from_zero=True),
                chart_scale("total", "right", f"1時間雨量 ({unit})", f"1-hour rain ({unit})", from_zero=True),
            ],
            "series": [
                chart_series(
                    "amount_10min", "bars", "amount", CHART_COLOURS["rain_bars"], "10分雨量", "10-min rain",
                    [interval.amount for interval in intervals],
                ),
                chart_series(
                    "total_1h", "line", "total", CHART_COLOURS["rain_total"], "1時間雨量", "1-hour rain",
                    [interval.running_total for interval in intervals],
                ),
            ],
        }
        return chart
    points = thin_series([(r.observed_at.timestamp(), r.value) for r in history.readings], limit=CHART_MAX_POINTS)
    if station.kind == StationKind.RESERVOIR:
        names = ("storage", "貯水率", "Storage rate")
    elif station.kind == StationKind.TIDE:
        names = ("tide", "潮位", "Tide level")
    else:
        names = ("hydrograph", "水位", "Water level")
    chart_name, label_ja, label_en = names
    chart |= {
        "chart": chart_name,
        "x": [time for time, _ in points],
        "scales": [
            chart_scale(
                "value", "left", f"{label_ja} ({unit})", f"{label_en} ({unit})",
                from_zero=station.kind == StationKind.RESERVOIR,
            )
        ],
        "series": [
            chart_series(
                "value", "line", "value", CHART_COLOURS[station.kind], label_ja, label_en,
                [value for _, value in points],
            )
        ],
    }
    if tide is not None and points:
        # The astronomical tide beside the observed level: the gap between them is the surge.
        predicted = tide_predict(tide, [datetime.fromtimestamp(time, UTC) for time, _ in points])
        chart["series"].append(chart_series(
            "predicted", "line", "value", CHART_COLOURS["tide_predicted"], "天文潮位(予測)", "Astronomical tide",
            [round(value, 3) for value in predicted],
        ) | {"dash": [6, 4], "width": 1.5})
    return chart


def tide_now(history: StationHistory, tide: Harmonics | None) -> dict | None:
    """The newest reading's astronomical tide and anomaly (潮位偏差), for the page's headline."""
    if tide is None or not history.readings:
        return None
    newest = history.readings[-1]
    predicted = tide_predict(tide, [newest.observed_at])[0]
    return {
        "predicted": value_text(predicted, history.station.unit),
        "anomaly": f"{newest.value - predicted:+.2f} {history.station.unit}",
        "observed_at": newest.observed_at,
    }


def station_trend(history: StationHistory) -> TrendStyle:
    trend = history.trend
    if history.station.kind == StationKind.RAIN:
        return RAIN_TRENDS[trend] if trend else (NO_RAIN if history.readings else NO_TREND)
    return TRENDS[trend] if trend else NO_TREND


def station_page_context(history: StationHistory, *, span: ChartSpan, at: datetime | None = None) -> dict:
    station = history.station
    props = history.feature["properties"]
    styles = levels()  # the active scheme's words, read once for the page
    thresholds = threshold_lines(props, styles)
    newest_rows = history.readings[-READINGS_TABLE_ROWS:][::-1]
    detail_url = reverse("station-detail", args=[station.code])
    tide = tide_harmonics_of(station) if station.kind == StationKind.TIDE else None
    chart = station_chart(history, thresholds, tide)
    csv_query = urlencode({"since": local_iso(history.since), "until": local_iso(history.until), "format": "csv"})
    return {
        "station": station,
        "town": station.municipality,
        "props": props,
        "kind": kind_style(station.kind),
        "level": state_style(props, styles),
        "reading": headline_text(props),
        "observed": observed_text(props["observed_at"]),
        "reached": reached_threshold(props),
        "rain_totals": [
            (window_text(seconds), value_text(amount, props["unit"]))
            for seconds, amount in sorted(props["accumulations"].items(), key=lambda pair: int(pair[0]))
        ],
        "trend": station_trend(history),
        "tide_now": tide_now(history, tide),
        "span": span,
        "spans": [
            {"span": choice, "url": station_page_url(detail_url, choice, at), "current": choice.key == span.key}
            for choice in CHART_SPANS.values()
        ],
        "replay": station_page_replay(detail_url, span, at, until=history.until),
        "since": history.since,
        "until": history.until,
        "chart": chart,
        "chart_title": CHART_TITLES[chart["chart"]],
        "thresholds": thresholds,
        "rows": [
            {
                "observed_at": reading.observed_at,
                "value": value_text(reading.value, station.unit),
                "quality": QUALITY_WORDS.get(reading.quality, (reading.quality, reading.quality)),
                "suspect": reading.quality != "ok",
            }
            for reading in newest_rows
        ],
        "reading_count": len(history.readings),
        "rows_capped": len(history.readings) > len(newest_rows),
        "readings_truncated": history.truncated,
        "csv_url": f"{reverse('api-station-observations', args=[station.code])}?{csv_query}",
        "demo_banner": getattr(settings, "MIZUMORI_DEMO_BANNER", False),
    }


def station_page_url(detail_url: str, span: ChartSpan, at: datetime | None) -> str:
    query = {"range": span.key}
    if at is not None:
        query["at"] = local_iso(at)
    return f"{detail_url}?{urlencode(query)}"


def station_page_replay(detail_url: str, span: ChartSpan, at: datetime | None, *, until: datetime) -> dict:
    """The window control: the moment shown (None: now), one window earlier and later, back to live."""
    return {
        "at": at,
        "field_value": timezone.localtime(until).strftime("%Y-%m-%dT%H:%M"),
        "earlier_url": station_page_url(detail_url, span, until - span.length),
        # A step past now lands on the live page.
        "later_url": None if at is None else station_page_url(
            detail_url, span, None if at + span.length >= timezone.now() else at + span.length
        ),
        "live_url": station_page_url(detail_url, span, None),
    }


# --- shelter status: POST /hq/shelters/<code>/status ------------------------------------------------


@dataclass(frozen=True)
class ShelterChoice:
    """One button of the HQ panel: what it does, in words."""

    value: str
    css: str
    action_ja: str
    action_en: str


# In the order a shelter usually goes through.
SHELTER_CHOICES = [
    ShelterChoice(Shelter.Status.OPEN, SHELTER_STATUSES[Shelter.Status.OPEN].css, "開設", "Open"),
    ShelterChoice(Shelter.Status.FULL, SHELTER_STATUSES[Shelter.Status.FULL].css, "満員", "Mark full"),
    ShelterChoice(Shelter.Status.CLOSED, SHELTER_STATUSES[Shelter.Status.CLOSED].css, "閉鎖", "Close"),
]


@dataclass(frozen=True)
class ShelterRow:
    shelter: Shelter
    feature: dict
    settable: bool

    @property
    def status(self) -> ShelterStatusStyle:
        return shelter_status_style(self.shelter.status)


def shelter_panel_rows(viewer: Viewer, shelters: list[tuple[Shelter, dict]]) -> list[ShelterRow]:
    """The HQ panel: the shelters of the town the user acts for (every town for a platform admin)."""
    return [
        ShelterRow(shelter, feature, shelter_status_settable(viewer=viewer, shelter=shelter))
        for shelter, feature in shelters
        if viewer.is_platform_admin or shelter.municipality_id in viewer.municipality_ids
    ]


@login_required
@require_POST
def shelter_status(request, code: str):
    """Open, fill or close a shelter. The HQ panel's script asks for JSON; a plain form post (no
    script) is redirected back to the panel. Every viewer's map hears of it from the live layer."""
    viewer = viewer_for_request(request)
    try:
        shelter = shelter_get(code=code)
    except Shelter.DoesNotExist:
        raise Http404("No such shelter.") from None
    if not shelter_status_settable(viewer=viewer, shelter=shelter):
        raise PermissionDenied("Only an operator of the town that runs this shelter may change its status.")
    try:
        shelter_status_set(shelter=shelter, status=request.POST.get("status", ""), actor=request.user, request=request)
    except ValidationError as exc:
        if wants_json(request):
            return JsonResponse({"error": exc.messages[0]}, status=400)
        # Plain text: the message quotes what was posted.
        return HttpResponseBadRequest(exc.messages[0], content_type="text/plain; charset=utf-8")
    if wants_json(request):
        return JsonResponse({"shelter": shelter_feature(shelter)})
    return redirect(reverse("dashboard-hq") + "#shelters")


def wants_json(request) -> bool:
    return "application/json" in request.headers.get("Accept", "")


@login_required
@require_POST
def switch_town(request):
    """Act for another of the user's towns; the choice lives in the session and is audited."""
    try:
        town_switch(request=request, municipality_id=int(request.POST.get("municipality", "")))
    except (ValueError, Membership.DoesNotExist):
        return HttpResponseBadRequest(_("You are not a member of that municipality."))
    return redirect(safe_next_url(request, request.POST.get("next")))


def safe_next_url(request, target: str | None) -> str:
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return target
    return reverse("dashboard-hq")
