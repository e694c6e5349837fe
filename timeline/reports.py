"""The situation report: for a window and towns, what happened and how it stood, as a printable page
and a PDF (WeasyPrint renders the same HTML, with the vendored IPAex Gothic embedded).

Everything is read through the viewer's selectors: the timeline (timeline.selectors), the map as of
each chosen moment (sensors.selectors.station_feature_collection_at, drawn here with matplotlib from
the same geometry, no tiles), peak readings judged by the one level rule with the thresholds in
force at each reading, alerts with who acknowledged them and when, and shelters.
"""

from __future__ import annotations

import base64
import io
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from alerts.models import Alert
from alerts.selectors import acknowledgements_of, alert_list
from dashboard.maps import level_style, levels
from geo.maps import load_geography
from geo.outlines import town_outlines
from geo.selectors import shelter_list_at
from orders.models import District
from orders.selectors import order_words, orders_in_force_during
from sensors.selectors import (
    ReadingJudge,
    station_feature_collection_at,
    stations_with_threshold_history,
)
from tenancy.selectors import Viewer

from .selectors import timeline_events, window_readings

FONT_PATH = Path(settings.BASE_DIR) / "static" / "fonts" / "ipaexg.ttf"
MAX_MOMENTS = 6
# Above this many gauges a map shows shapes and colours without the level text in each marker
# (the caption counts them per level); the text would not be legible at that density anyway.
BADGE_LIMIT = 300
KIND_MARKERS = {"river": "o", "rain": "^", "reservoir": "D", "tide": "h"}
# A report is read by people: past these, the rest is counted and left to /hq/timeline/ (and a
# 2,000-gauge town's PDF stays tens of pages, not hundreds).
REPORT_MAX_EVENTS = 200
PEAKS_LISTED_ALL = 200
PEAKS_MIN_LEVEL = 2
# However many gauges rose, the table lists the most severe this many; the rest are counted per level.
PEAKS_LISTED_MAX = 100


@dataclass
class GaugePeak:
    code: str
    name_ja: str
    name_en: str
    municipality: str
    unit: str
    peak_value: float | None
    peak_at: datetime | None
    peak_level: int | None
    thresholds: list[tuple[str, str, int | None, float]] = field(default_factory=list)  # label ja, en, level, value
    level_name: str = ""  # the peak level's words, "ja / en"


@dataclass
class MapMoment:
    at: datetime
    png_base64: str
    counts: dict[str, int]


def report_towns(viewer: Viewer, requested: list[str]) -> list:
    """The towns the report covers: those asked for among the towns whose stations the viewer may
    see; by default the viewer's own towns (or, for a platform operator, all)."""
    from tenancy.selectors import municipality_list

    towns = municipality_list()
    if requested:
        return [town for town in towns if town.slug in requested]
    if viewer.is_platform_admin or not viewer.municipality_ids:
        return towns
    return [town for town in towns if town.pk in viewer.municipality_ids]


def situation_report(
    *, viewer: Viewer, since: datetime, until: datetime, towns: list, moments: list[datetime]
) -> dict:
    slugs = {town.slug for town in towns}
    only = _only(slugs)
    # The window's readings are read once, for the level changes and the peaks alike.
    stations = [s for s in stations_with_threshold_history(viewer=viewer, municipality=only) if s.municipality.slug in slugs]
    loaded = (stations, window_readings(stations, since, until))
    events = [
        event for event in timeline_events(viewer=viewer, since=since, until=until, municipality=only, loaded=loaded)
        if event.municipality in slugs
    ]
    return {
        "since": since,
        "until": until,
        "towns": towns,
        "events": _listed_events(events),
        "events_count": len(events),
        **_listed_peaks(gauge_peaks(viewer=viewer, since=since, until=until, slugs=slugs, loaded=loaded)),
        "alerts": _alerts(viewer, since, until, slugs),
        "orders": _orders(viewer, since, until, slugs),
        "shelters": [s for s in shelter_list_at(until) if s.municipality.slug in slugs],
        "maps": [map_moment(viewer=viewer, at=moment, slugs=slugs) for moment in moments[:MAX_MOMENTS]],
    }


def _only(slugs: set[str]) -> str | None:
    """One town: its stations only are read and judged (not every visible town's, then filtered)."""
    return next(iter(slugs)) if len(slugs) == 1 else None


def gauge_peaks(
    *, viewer: Viewer, since: datetime, until: datetime, slugs: set[str], loaded: tuple[list, dict] | None = None
) -> list[GaugePeak]:
    """Per visible station of these towns, its highest reading in the window and the highest level
    a reading reached (judged with the thresholds in force at that reading). One query for readings
    (none when `loaded` brings the stations and their `window_readings`)."""
    if loaded is None:
        stations = [s for s in stations_with_threshold_history(viewer=viewer) if s.municipality.slug in slugs]
        loaded = (stations, window_readings(stations, since, until))
    stations, readings = loaded
    peaks = []
    styles = levels()  # the active scheme's words, read once (it is a query)
    for station in stations:
        series = readings.get(station.pk, [])
        judge = ReadingJudge(station)
        peak_value = peak_at = peak_level = None
        for index, (observed_at, value, quality) in enumerate(series):
            if observed_at <= since or quality != "ok":
                continue
            if peak_value is None or value > peak_value:
                peak_value, peak_at = value, observed_at
            level = judge.level(series, index, at=observed_at)
            if level is not None and (peak_level is None or level > peak_level):
                peak_level = level
        peaks.append(GaugePeak(
            code=station.code, name_ja=station.name_ja, name_en=station.name_en,
            municipality=station.municipality.slug, unit=station.unit,
            peak_value=peak_value, peak_at=peak_at, peak_level=peak_level,
            thresholds=[(t.label_ja, t.label_en, t.level, t.value_at(until)) for t in judge.thresholds],
            level_name=f"{level_style(peak_level, styles).name_ja} / {level_style(peak_level, styles).name_en}",
        ))
    return sorted(peaks, key=lambda peak: (-(peak.peak_level or -1), peak.municipality, peak.code))


def _listed_events(events: list) -> list:
    """All events when they fit; else those that matter at HQ first (everything but level changes
    that stay below PEAKS_MIN_LEVEL), oldest first, up to REPORT_MAX_EVENTS."""
    if len(events) <= REPORT_MAX_EVENTS:
        return events
    weighty = [
        event for event in events
        if not event.kind.startswith("level.") or max(event.level or 0, event.previous_level or 0) >= PEAKS_MIN_LEVEL
    ]
    return weighty[:REPORT_MAX_EVENTS]


def _listed_peaks(peaks: list[GaugePeak]) -> dict:
    """Every gauge for a town of up to PEAKS_LISTED_ALL; beyond, those that reached PEAKS_MIN_LEVEL,
    and how many stayed below; and never more than PEAKS_LISTED_MAX rows (the most severe, `peaks`
    comes sorted so), the gauges left out counted per level (`peaks_unlisted`: [(level, count)],
    highest first)."""
    if len(peaks) <= PEAKS_LISTED_ALL:
        return {"peaks": peaks, "peaks_below": 0, "peaks_unlisted": []}
    risen = [peak for peak in peaks if (peak.peak_level or 0) >= PEAKS_MIN_LEVEL]
    unlisted: dict[int, int] = defaultdict(int)
    for peak in risen[PEAKS_LISTED_MAX:]:
        unlisted[peak.peak_level] += 1
    return {
        "peaks": risen[:PEAKS_LISTED_MAX],
        "peaks_below": len(peaks) - len(risen),
        "peaks_unlisted": sorted(unlisted.items(), reverse=True),
    }


def _alerts(viewer: Viewer, since: datetime, until: datetime, slugs: set[str]) -> list[Alert]:
    """Alerts open at any time in the window, with their acknowledgements (who, when)."""
    alerts = list(
        alert_list(viewer=viewer)
        .filter(opened_at__lte=until, station__municipality__slug__in=slugs)
        .filter(Q(resolved_at__isnull=True) | Q(resolved_at__gte=since))
        .order_by("opened_at", "pk")
    )
    acknowledgements = acknowledgements_of(alerts)
    for alert in alerts:
        alert.acknowledgements = acknowledgements.get(alert.pk, [])
    return alerts


def _orders(viewer: Viewer, since: datetime, until: datetime, slugs: set[str]) -> list:
    """Evacuation orders in force at any time in the window, each with its title at its highest level
    in the window (`peak_words`) and every district it covered in the window (`district_names`)."""
    orders = orders_in_force_during(viewer=viewer, since=since, until=until, slugs=slugs)
    windows = {}
    for order in orders:
        # The step in force at `since`, and those taken in the window.
        windows[order.pk] = [step for step in order.events.all() if step.at < since][-1:] + [
            step for step in order.events.all() if since <= step.at <= until
        ]
    codes = {code for steps in windows.values() for step in steps for code in step.districts}
    names = dict(District.objects.filter(code__in=codes).values_list("code", "name_ja"))
    for order in orders:
        steps = windows[order.pk]
        order.peak_level = max([step.level for step in steps] or [order.level])
        order.peak_words = order_words(order.peak_level, order.level_scheme)
        covered = sorted({code for step in steps for code in step.districts})
        order.district_names = [names.get(code, code) for code in covered]
    return orders


def map_moment(*, viewer: Viewer, at: datetime, slugs: set[str]) -> MapMoment:
    """The map of these towns as it stood at `at`, as a PNG: boundaries, rivers, hazard zones,
    stations coloured and labelled by level (shape and text too: colour is never the only cue),
    shelters as squares."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import font_manager
    from matplotlib import pyplot as plt
    from shapely.geometry import shape

    font_manager.fontManager.addfont(str(FONT_PATH))
    family = font_manager.FontProperties(fname=str(FONT_PATH)).get_name()
    features = [
        f for f in station_feature_collection_at(viewer=viewer, at=at, municipality=_only(slugs))["features"]
        if f["properties"]["municipality"] in slugs
    ]
    geography = load_geography()
    figure, axes = plt.subplots(figsize=(7.0, 5.0), dpi=110)
    figure.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=0.92)
    try:
        axes.set_aspect("equal")
        axes.set_axis_off()
        # A town without a boundary: the hull of its stations in this (viewer's) report.
        points_by_town: dict[int, list[tuple[float, float]]] = defaultdict(list)
        town_ids = {town.slug: town.pk for town in geography.municipalities}
        for feature in features:
            town_id = town_ids.get(feature["properties"]["municipality"])
            if town_id is not None:
                points_by_town[town_id].append(tuple(feature["geometry"]["coordinates"]))
        outlines = town_outlines(geography.municipalities, points_by_town)
        for town in geography.municipalities:
            area = town.boundary or outlines.get(town.pk)
            if area:
                _draw(axes, shape(area), facecolor="#f4f1ea" if town.slug in slugs else "#fbfbfb",
                      edgecolor="#555555", linewidth=0.8)
        for zone in geography.hazard_zones:
            _draw(axes, shape(zone.geometry), facecolor="#cfe3f7", edgecolor="none", linewidth=0)
        for river in geography.rivers:
            _draw(axes, shape(river.geometry), facecolor="none", edgecolor="#2b7bd0", linewidth=1.2)
        counts: dict[str, int] = {}
        # One scatter per shape, level and staleness: thousands of single-point calls are what made
        # a 2,000-gauge map slow.
        groups: dict[tuple[str, int | None, bool], list[tuple[float, float]]] = defaultdict(list)
        for feature in features:
            props = feature["properties"]
            key = "none" if props["level"] is None else str(props["level"])
            counts[key] = counts.get(key, 0) + 1
            marker = KIND_MARKERS.get(props["kind"], "o")
            groups[(marker, props["level"], bool(props["stale"]))].append(tuple(feature["geometry"]["coordinates"]))
        styles = levels()
        for (marker, level, stale), points in groups.items():
            style = level_style(level, styles)
            xs, ys = zip(*points)
            axes.scatter(xs, ys, s=150 if len(features) <= BADGE_LIMIT else 30, marker=marker, c=style.fill,
                         edgecolors=style.stroke, linewidths=1.2, zorder=3, alpha=0.45 if stale else 1.0)
            if len(features) <= BADGE_LIMIT:
                # The level as text in the marker: colour is never the only cue.
                for lon, lat in points:
                    axes.annotate(style.badge, (lon, lat), ha="center", va="center", fontsize=6, color=style.text,
                                  zorder=4, family=family, annotation_clip=False)
        for shelter in shelter_list_at(at):
            if shelter.municipality.slug in slugs:
                axes.scatter([shelter.lon], [shelter.lat], s=40, marker="s", zorder=3,
                             c={"open": "#1a9850", "full": "#d73027"}.get(shelter.status, "#bbbbbb"),
                             edgecolors="#222222", linewidths=0.6)
        axes.set_title(f"{timezone.localtime(at):%Y-%m-%d %H:%M} の状況 / situation", fontsize=10, family=family)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
    finally:
        plt.close(figure)
    return MapMoment(at=at, png_base64=base64.b64encode(buffer.getvalue()).decode("ascii"), counts=counts)


def _draw(axes, geometry, *, facecolor: str, edgecolor: str, linewidth: float) -> None:
    parts = getattr(geometry, "geoms", [geometry])
    for part in parts:
        if part.geom_type == "Polygon":
            x, y = part.exterior.xy
            axes.fill(x, y, facecolor=facecolor, edgecolor=edgecolor, linewidth=linewidth, zorder=1)
        elif part.geom_type == "LineString":
            x, y = part.xy
            axes.plot(x, y, color=edgecolor, linewidth=linewidth, zorder=2)


def report_pdf(html: str, *, base_url: str) -> bytes:
    """The printable page as a PDF (fonts embedded by WeasyPrint)."""
    from weasyprint import HTML

    return HTML(string=html, base_url=base_url).write_pdf()
