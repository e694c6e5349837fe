"""The folium base map: Leaflet from our own static files, optional tiles, and the public geography.

A disaster dashboard must work when the internet is degraded, so nothing here loads from a CDN:
`MizumoriMap` replaces folium's default asset list (Leaflet, jQuery, Bootstrap, Font Awesome,
awesome-markers from five hosts) with the vendored Leaflet and our own map script. Only the
features that work without jQuery/Bootstrap are used (GeoJson, FeatureGroup, LayerControl,
FitBounds, MacroElements); folium's `Popup` and `Icon` need those libraries and are avoided.

Hazard zones (浸水想定区域 ...) are public geography and drawn here, shaded in the national hazard-map
depth colours and labelled with their depth in words. Stations and shelters, whose markers change
live, are drawn by `dashboard.maps` on top of this map.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import folium
import shapely.geometry
from django.conf import settings
from django.templatetags.static import static
from django.utils.html import format_html, format_html_join
from folium.template import Template
from folium.utilities import JsCode
from shapely.errors import GEOSException

from tenancy.models import Municipality
from tenancy.selectors import municipality_list

from .models import Basin, HazardZone, River
from .selectors import hazard_zone_list

logger = logging.getLogger(__name__)

# Static paths, resolved with static() when a map is built so a hashed storage would be honoured.
VENDORED_JS = [
    ("leaflet", "vendor/leaflet/leaflet.js"),
    ("mizumori_map", "mizumori/map.js"),
]
VENDORED_CSS = [
    ("leaflet_css", "vendor/leaflet/leaflet.css"),
    ("mizumori_map_css", "mizumori/map.css"),
]

# Honshu, roughly: what to show when there is nothing to fit the view to.
FALLBACK_CENTER = (36.2, 138.25)
FALLBACK_ZOOM = 5
# Do not zoom in further than street level when everything shown is one point.
FIT_MAX_ZOOM = 14

AREA_TYPES = {"Polygon", "MultiPolygon"}
LINE_TYPES = {"LineString", "MultiLineString"}

# Permanent area labels go in their own pane between areas (400) and markers (600): in Leaflet's
# tooltip pane (650) a town's name would cover the stations inside it.
AREA_LABEL_PANE = "mz-area-labels"
AREA_LABEL_PANE_Z = 450

# Functions in static/mizumori/map.js, referenced by name from folium's generated script.
BIND_DETAILS_JS = JsCode("Mizumori.bindDetails")

MUNICIPALITY_STYLE = {"color": "#4a4a4a", "weight": 1.5, "fillColor": "#9e9e9e", "fillOpacity": 0.04}
OWN_MUNICIPALITY_STYLE = {"color": "#1b3a57", "weight": 3, "fillColor": "#1b3a57", "fillOpacity": 0.06}
# A town without a boundary, drawn as its stations' hull (geo.outlines): dashed, so it reads as approximate.
OUTLINE_DASH = "4 6"
BASIN_STYLE = {"color": "#3f7fa6", "weight": 1, "dashArray": "6 4", "fillColor": "#7fb8d9", "fillOpacity": 0.12}
RIVER_STYLE = {"color": "#1f6fb2", "weight": 3, "opacity": 0.9}


class MizumoriMap(folium.Map):
    """A folium Map that loads only vendored assets and leaves the host page's layout alone.

    folium's own header also sets a non-zoomable viewport and full-page `html, body, #map` styles
    meant for a stand-alone file; embedded in our pages those would break the layout and stop
    residents zooming the page, so this template keeps only the map itself.
    """

    _template = Template(
        """
        {% macro html(this, kwargs) %}
            <div class="folium-map mz-map-canvas" id={{ this.get_name()|tojson }}></div>
        {% endmacro %}

        {% macro script(this, kwargs) %}
            var {{ this.get_name() }} = L.map(
                {{ this.get_name()|tojson }},
                {
                    center: {{ this.location|tojson }},
                    crs: L.CRS.{{ this.crs }},
                    ...{{ this.options|tojavascript }}
                }
            );
            {%- if this.control_scale %}
            L.control.scale().addTo({{ this.get_name() }});
            {%- endif %}
            {%- if this.zoom_control_position %}
            L.control.zoom({ position: {{ this.zoom_control|tojson }} }).addTo({{ this.get_name() }});
            {%- endif %}
            {%- if this.objects_to_stay_in_front %}
            function {{ this.get_name() }}_objects_in_front() {
                {%- for obj in this.objects_to_stay_in_front %}
                {{ obj.get_name() }}.bringToFront();
                {%- endfor %}
            }
            {{ this.get_name() }}.on("overlayadd", {{ this.get_name() }}_objects_in_front);
            {%- endif %}
        {% endmacro %}
        """
    )

    def __init__(self, *, tiles=None, **kwargs: Any):
        super().__init__(tiles=tiles, **kwargs)
        # Instance attributes, so add_js_link() on one map never leaks into another.
        self.default_js = [(name, static(path)) for name, path in VENDORED_JS]
        self.default_css = [(name, static(path)) for name, path in VENDORED_CSS]

    def render(self, **kwargs):
        super().render(**kwargs)
        # The figure's content-type meta would land in our <head> next to <meta charset>.
        self.get_root().header._children.pop("meta_http", None)


@dataclass(frozen=True)
class Geography:
    """The public geography a map shows: boundaries, basins, rivers and hazard zones."""

    municipalities: Sequence[Municipality]
    basins: Sequence[Basin]
    rivers: Sequence[River]
    hazard_zones: Sequence[HazardZone] = ()


@dataclass(frozen=True)
class MapParts:
    """A rendered map split for a host template: <head> links, the map's markup, its script."""

    header: str
    html: str
    script: str


def load_geography() -> Geography:
    """Boundaries, basins, rivers and hazard zones: public geography, not tenant data (four queries)."""
    return Geography(
        municipalities=municipality_list(),
        basins=list(Basin.objects.all()),
        rivers=list(River.objects.all()),
        hazard_zones=hazard_zone_list(),
    )


def base_map(
    geography: Geography,
    *,
    own_municipality_ids: Iterable[int] = (),
    tiles_url: str | None = None,
    tiles_attribution: str | None = None,
    outlines: Mapping[int, dict] | None = None,
) -> MizumoriMap:
    """A map with the geography layers; call `finish_map` after adding further layers.

    `tiles_url` defaults to settings.MAP_TILES_URL; empty means no tile layer at all, so the map
    works with no tile server reachable and shows the layers on a plain background. `outlines`:
    what to draw for towns without a boundary (geo.outlines.town_outlines of the reader's stations).
    """
    if tiles_url is None:
        tiles_url = settings.MAP_TILES_URL
    if tiles_attribution is None:
        tiles_attribution = settings.MAP_TILES_ATTRIBUTION
    folium_map = MizumoriMap(location=FALLBACK_CENTER, zoom_start=FALLBACK_ZOOM, control_scale=True)
    if tiles_url:
        add_tile_layer(folium_map, tiles_url, tiles_attribution)

    folium.map.CustomPane(AREA_LABEL_PANE, z_index=AREA_LABEL_PANE_Z, pointer_events=False).add_to(folium_map)
    own = frozenset(own_municipality_ids)
    area_layers = (
        municipality_layer(geography.municipalities, own_ids=own, outlines=outlines),
        basin_layer(geography.basins),
        hazard_zone_layer(geography.hazard_zones),
    )
    for layer in area_layers:
        if layer is not None:
            layer.add_to(folium_map)
    rivers = river_layer(geography.rivers)
    if rivers is not None:
        rivers.add_to(folium_map)
        # Rivers stay above boundaries, basins and hazard zones when those are toggled back on.
        folium_map.keep_in_front(rivers)
    return folium_map


def add_tile_layer(folium_map: folium.Map, url: str, attribution: str) -> None:
    folium.TileLayer(
        tiles=url,
        attr=attribution or " ",  # folium refuses a custom URL without attribution
        name="背景地図 Base map",
        control=False,
        max_zoom=18,
    ).add_to(folium_map)


def finish_map(
    folium_map: folium.Map,
    *,
    fit_geometries: Iterable[dict] = (),
    fit_points: Iterable[tuple[float, float]] = (),
) -> None:
    """Add what must come after every layer: the layer switcher and the initial view.

    The view fits the given area geometries and (lat, lon) points; with nothing to fit, the
    fallback centre set at construction stays.
    """
    folium.LayerControl(collapsed=True, position="topright").add_to(folium_map)
    bounds = bounds_of(fit_geometries, fit_points)
    if bounds is not None:
        fit = folium.map.FitBounds(bounds, padding=(12, 12), max_zoom=FIT_MAX_ZOOM)
        # Straight to the fitted view: from the fallback view Leaflet would animate the zoom, and
        # markers drawn during those 250 ms (the public page's snapshot usually is) are all moved
        # again when it ends: a second layout of every marker on the way to the first picture.
        fit.options["animate"] = False
        fit.add_to(folium_map)


def embed_parts(folium_map: folium.Map) -> MapParts:
    """Render the map's figure and split it so a Django template can place each part (no iframe)."""
    figure = folium_map.get_root()
    figure.render()
    return MapParts(
        header=figure.header.render(),
        html=figure.html.render(),
        script=figure.script.render(),
    )


# --- geography layers ---------------------------------------------------------------------------

MUNICIPALITY_LAYER_NAME = "市町村境界 Municipal boundaries"
BASIN_LAYER_NAME = "流域 Basins"
RIVER_LAYER_NAME = "河川 Rivers"


def municipality_layer(
    municipalities: Iterable[Municipality],
    *,
    own_ids: frozenset[int] = frozenset(),
    outlines: Mapping[int, dict] | None = None,
) -> folium.FeatureGroup | None:
    """Each town's boundary; a town without one is drawn as its outline in `outlines` (the hull of
    the stations the reader may see, geo.outlines), dashed and labelled as approximate."""
    outlines = outlines or {}
    features = []
    for town in municipalities:
        approximate = not town.boundary and town.pk in outlines
        features.append(
            geometry_feature(
                outlines[town.pk] if approximate else town.boundary,
                feature_id=town.slug,
                allowed_types=AREA_TYPES,
                display={
                    "label": bilingual_label_html(
                        town.name_ja, town.name_en,
                        suffix_ja="（概略）" if approximate else "",
                        suffix_en="(approx.)" if approximate else "",
                    ),
                    "label_pane": AREA_LABEL_PANE,
                },
                extra={"own": town.pk in own_ids, "approximate": approximate},
            )
        )
    return _geojson_group(MUNICIPALITY_LAYER_NAME, features, style=_municipality_style)


def _municipality_style(feature: dict) -> dict:
    style = OWN_MUNICIPALITY_STYLE if feature["properties"]["own"] else MUNICIPALITY_STYLE
    return {**style, "dashArray": OUTLINE_DASH} if feature["properties"].get("approximate") else style


def basin_layer(basins: Iterable[Basin]) -> folium.FeatureGroup | None:
    features = [
        geometry_feature(
            basin.geometry,
            feature_id=f"basin-{basin.pk}",
            allowed_types=AREA_TYPES,
            display={"tooltip": bilingual_label_html(basin.name_ja, basin.name_en, suffix_ja="流域", suffix_en="basin")},
        )
        for basin in basins
    ]
    return _geojson_group(BASIN_LAYER_NAME, features, style=lambda feature: BASIN_STYLE)


def river_layer(rivers: Iterable[River]) -> folium.FeatureGroup | None:
    features = [
        geometry_feature(
            river.geometry,
            feature_id=f"river-{river.pk}",
            allowed_types=LINE_TYPES,
            display={"tooltip": bilingual_label_html(river.name_ja, river.name_en)},
        )
        for river in rivers
    ]
    return _geojson_group(RIVER_LAYER_NAME, features, style=lambda feature: RIVER_STYLE)


# --- hazard zones -------------------------------------------------------------------------------

HAZARD_LAYER_NAME = "浸水想定区域など Hazard zones"


@dataclass(frozen=True)
class DepthBand:
    """One assumed-depth band of an inundation map, as the legend and the shading show it."""

    css: str
    upper_m: float | None  # inclusive upper bound; None: no upper bound
    fill: str
    label_ja: str
    label_en: str


# The depth colours of 水害ハザードマップ作成の手引き (MLIT, 2016), which every Japanese town's printed
# hazard map uses: residents read ours the way they read theirs. Colour is never the only cue: every
# zone is labelled with its depth in words, and deeper bands have heavier outlines.
DEPTH_BANDS = (
    DepthBand("d0", 0.5, "#f7f5a9", "0.5m未満", "under 0.5 m"),
    DepthBand("d1", 3.0, "#ffd8c0", "0.5〜3.0m", "0.5–3.0 m"),
    DepthBand("d2", 5.0, "#ffb7b7", "3.0〜5.0m", "3.0–5.0 m"),
    DepthBand("d3", 10.0, "#ff9191", "5.0〜10.0m", "5.0–10.0 m"),
    DepthBand("d4", 20.0, "#f285c9", "10.0〜20.0m", "10.0–20.0 m"),
    DepthBand("d5", None, "#dc7adc", "20.0m以上", "20 m or more"),
)
UNKNOWN_DEPTH = DepthBand("unknown", None, "#bdbdbd", "浸水深不明", "depth not given")
# A landslide warning area has no depth; the yellow of 土砂災害警戒区域 on the national maps.
LANDSLIDE_AREA = DepthBand("landslide", None, "#f5d000", "土砂災害警戒区域", "landslide warning area")
HAZARD_BANDS = {band.css: band for band in (*DEPTH_BANDS, UNKNOWN_DEPTH, LANDSLIDE_AREA)}

HAZARD_KIND_WORDS = {
    HazardZone.Kind.INUNDATION: ("洪水浸水想定区域", "Assumed flood inundation area"),
    HazardZone.Kind.STORM_SURGE: ("高潮浸水想定区域", "Assumed storm-surge inundation area"),
    HazardZone.Kind.LANDSLIDE: ("土砂災害警戒区域", "Landslide warning area"),
}


def hazard_band(zone: HazardZone) -> DepthBand:
    """The band a zone is shaded in: the one holding its deepest assumed depth."""
    if zone.kind == HazardZone.Kind.LANDSLIDE:
        return LANDSLIDE_AREA
    if zone.depth_max_m is not None:
        return next(band for band in DEPTH_BANDS if band.upper_m is None or zone.depth_max_m <= band.upper_m)
    if zone.depth_min_m is not None:
        return next(band for band in DEPTH_BANDS if band.upper_m is None or zone.depth_min_m < band.upper_m)
    return UNKNOWN_DEPTH


def hazard_style(band: DepthBand) -> dict:
    heavier = {"d2": 1.5, "d3": 2, "d4": 2.5, "d5": 3}.get(band.css, 1)
    return {
        "color": "#8a4b2a" if band is not LANDSLIDE_AREA else "#8a6d00",
        "weight": heavier,
        "dashArray": "2 4" if band in (UNKNOWN_DEPTH, LANDSLIDE_AREA) else None,
        "fillColor": band.fill,
        "fillOpacity": 0.55,
    }


def depth_text(zone: HazardZone) -> tuple[str, str]:
    """The zone's own assumed depth in words, Japanese and English ("" when it has none)."""
    low, high = zone.depth_min_m, zone.depth_max_m
    if low is not None and high is not None:
        return f"浸水深 {low:g}〜{high:g}m", f"{low:g}–{high:g} m deep"
    if high is not None:
        return f"浸水深 {high:g}m以下", f"up to {high:g} m deep"
    if low is not None:
        return f"浸水深 {low:g}m以上", f"{low:g} m deep or more"
    return "", ""


def hazard_label_html(zone: HazardZone) -> str:
    """The permanent label: the zone's name and its depth (in words: the shading alone is colour)."""
    depth_ja, depth_en = depth_text(zone)
    if zone.kind == HazardZone.Kind.LANDSLIDE or not depth_ja:
        depth_ja, depth_en = HAZARD_KIND_WORDS.get(zone.kind, ("", ""))
    return format_html(
        '<span class="mz-label-ja" lang="ja">{}<br>{}</span> <span class="mz-label-en" lang="en">{}</span>',
        zone.name_ja,
        depth_ja,
        depth_en,
    )


def hazard_popup_html(zone: HazardZone, band: DepthBand) -> str:
    kind_ja, kind_en = HAZARD_KIND_WORDS.get(zone.kind, (zone.kind, zone.kind))
    depth_ja, depth_en = depth_text(zone)
    rows = [("種別", "Kind", format_html("{} / {}", kind_ja, kind_en))]
    if depth_ja:
        rows.append(("想定浸水深", "Assumed depth", format_html("{} / {}", depth_ja, depth_en)))
    if zone.source:
        rows.append(("出典", "Source", zone.source))
    return format_html(
        '<div class="mz-popup mz-hazard-popup">'
        '<p class="mz-popup-title"><span class="mz-hazard-swatch mz-hazard-{}" aria-hidden="true"></span>'
        '<strong lang="ja">{}</strong><br><span lang="en">{}</span></p>'
        '<dl class="mz-popup-facts">{}</dl>'
        "</div>",
        band.css,
        zone.name_ja,
        zone.name_en,
        format_html_join("", '<dt><span lang="ja">{}</span> <span lang="en">{}</span></dt><dd>{}</dd>', rows),
    )


def hazard_zone_layer(zones: Iterable[HazardZone]) -> folium.FeatureGroup | None:
    features = []
    for zone in zones:
        band = hazard_band(zone)
        features.append(
            geometry_feature(
                zone.geometry,
                feature_id=f"hazard-{zone.pk}",
                allowed_types=AREA_TYPES,
                display={
                    "label": hazard_label_html(zone),
                    "label_pane": AREA_LABEL_PANE,
                    "popup": hazard_popup_html(zone, band),
                },
                extra={"band": band.css},
            )
        )
    return _geojson_group(
        HAZARD_LAYER_NAME, features, style=lambda feature: hazard_style(HAZARD_BANDS[feature["properties"]["band"]])
    )


def hazard_bands_shown(zones: Iterable[HazardZone]) -> list[DepthBand]:
    """The bands the map actually shades, shallow to deep, for the legend."""
    used = {hazard_band(zone).css for zone in zones if is_drawable(zone.geometry, AREA_TYPES)}
    return [band for band in HAZARD_BANDS.values() if band.css in used]


def _geojson_group(name: str, features: list[dict | None], *, style) -> folium.FeatureGroup | None:
    drawable = [feature for feature in features if feature is not None]
    if not drawable:
        return None
    group = folium.FeatureGroup(name=name)
    folium.GeoJson(
        {"type": "FeatureCollection", "features": drawable},
        style_function=style,
        on_each_feature=BIND_DETAILS_JS,
        control=False,
    ).add_to(group)
    return group


def geometry_feature(
    geometry: Any,
    *,
    feature_id: str,
    allowed_types: set[str],
    display: dict,
    extra: dict | None = None,
) -> dict | None:
    """A GeoJSON Feature for one stored geometry, or None if the geometry cannot be drawn.

    Geometries are user-imported JSON; Leaflet throws on an invalid one and that would stop the
    whole map script, so a bad row is logged and left out instead.
    """
    if not is_drawable(geometry, allowed_types):
        if geometry:
            expected = "/".join(sorted(allowed_types))
            logger.warning("map: skipping %s, its geometry is not a valid %s", feature_id, expected)
        return None
    return {
        "type": "Feature",
        "id": feature_id,
        "geometry": geometry,
        "properties": {"display": display, **(extra or {})},
    }


def is_drawable(geometry: Any, allowed_types: set[str]) -> bool:
    if not isinstance(geometry, dict) or geometry.get("type") not in allowed_types:
        return False
    try:
        shape = shapely.geometry.shape(geometry)
    except (GEOSException, ValueError, TypeError, KeyError, IndexError, AttributeError):
        return False
    return not shape.is_empty


def bilingual_label_html(name_ja: str, name_en: str, *, suffix_ja: str = "", suffix_en: str = "") -> str:
    """Escaped HTML for an area or river label: Japanese name over English name."""
    english = f"{name_en} {suffix_en}".strip()
    return format_html(
        '<span class="mz-label-ja" lang="ja">{}</span> <span class="mz-label-en" lang="en">{}</span>',
        f"{name_ja}{suffix_ja}",
        english,
    )


# --- view -----------------------------------------------------------------------------------------


def bounds_of(geometries: Iterable[dict], points: Iterable[tuple[float, float]]) -> list[list[float]] | None:
    """[[south, west], [north, east]] around drawable area geometries and (lat, lon) points."""
    west = south = float("inf")
    east = north = float("-inf")
    for geometry in geometries:
        if not is_drawable(geometry, AREA_TYPES | LINE_TYPES):
            continue
        min_lon, min_lat, max_lon, max_lat = shapely.geometry.shape(geometry).bounds
        west, south = min(west, min_lon), min(south, min_lat)
        east, north = max(east, max_lon), max(north, max_lat)
    for lat, lon in points:
        west, south = min(west, lon), min(south, lat)
        east, north = max(east, lon), max(north, lat)
    if west == float("inf"):
        return None
    return [[south, west], [north, east]]


def municipality_boundaries(municipalities: Iterable[Municipality]) -> list[dict]:
    return [town.boundary for town in municipalities if town.boundary]
