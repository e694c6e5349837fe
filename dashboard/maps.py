"""The station and shelter layers and the legend, drawn on top of the geo base map.

Markers follow the official evacuation-level colours (2 yellow, 3 red, 4 purple, 5 black) and never
rely on colour alone: the level is written inside every marker ("L3"), the station kind is the
marker's shape, and a stale station is dashed, faded and tagged 欠測.

Stations are drawn by the browser (static/mizumori/stations.js) from their feature properties, on
the first render from the snapshot in the page and afterwards from live messages, with DOM text
nodes: data is never inserted as HTML. What the browser needs besides the data — the level words,
colours and advice, kind shapes, popup headings — is `map_vocabulary()`, embedded in the page as
JSON, so these words have one home: this module. The server draws the legend from the same styles.

Shelters are drawn the same way: a house-shaped marker whose colour, outline and inner mark all say
the status (open: solid green with a tick; full: solid brown with a bar; closed: hollow, dashed,
with a cross), and the status in words in the tooltip, popup, legend and HQ panel. Shelters are few,
so their marker, tooltip and popup are still prepared (and HTML-escaped) here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime

import folium
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import pgettext_lazy
from folium.elements import MacroElement
from folium.template import Template
from folium.utilities import JsCode

from geo.maps import (
    BIND_DETAILS_JS,
    DepthBand,
    Geography,
    MizumoriMap,
    base_map,
    finish_map,
    hazard_bands_shown,
    municipality_boundaries,
)
from geo.models import Shelter
from geo.outlines import town_outlines
from sensors.rain import HOUR as RAIN_HOUR
from sensors.rain import RAIN_INTENSITIES, rain_intensity

from .selectors import NOTICE_LEVEL

# --- levels ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LevelStyle:
    css: str  # class suffix: mz-level-<css>
    badge: str  # drawn inside the marker, so the level reads without colour
    fill: str
    text: str  # chosen for at least 4.5:1 contrast on `fill`
    stroke: str
    name_ja: str
    name_en: str
    action_ja: str
    action_en: str
    advice_ja: str
    advice_en: str

    @property
    def title_ja(self) -> str:
        # "データなし" and "平常" are their own action; do not say them twice.
        return self.name_ja if self.name_ja == self.action_ja else f"{self.name_ja} {self.action_ja}"

    @property
    def title_en(self) -> str:
        return self.name_en if self.name_en == self.action_en else f"{self.name_en}: {self.action_en}"


# A gauge's state is *equivalent information* (警戒レベル相当情報): it says which level a reading
# corresponds to, never an order. The words of levels 1–5 come from the active level scheme
# (`alerts.vocabulary.gauge_words`, versioned data); 高齢者等避難 / 避難指示 / 緊急安全確保 are orders
# only a town issues and 警報 is the weather agency's word, so they appear nowhere here. Colours are
# the official scale (2 yellow, 3 red, 4 purple, 5 black), always with the level's text and badge so
# colour is never the only cue; "no data" and "normal" are not levels of the scale and keep their
# words here.
CALM = {"fill": "#e3eef5", "text": "#1b3a57", "stroke": "#1b3a57"}
UNCONFIRMED = "unconfirmed"
LEVEL_COLOURS: dict[int | str | None, dict[str, str]] = {
    None: {"css": "none", "badge": "–", "fill": "#ffffff", "text": "#595959", "stroke": "#767676"},
    0: {"css": "0", "badge": "L0", **CALM},
    1: {"css": "1", "badge": "L1", **CALM},
    2: {"css": "2", "badge": "L2", "fill": "#f2e700", "text": "#000000", "stroke": "#333333"},
    3: {"css": "3", "badge": "L3", "fill": "#ff2800", "text": "#000000", "stroke": "#333333"},
    4: {"css": "4", "badge": "L4", "fill": "#aa00aa", "text": "#ffffff", "stroke": "#333333"},
    5: {"css": "5", "badge": "L5", "fill": "#0c000c", "text": "#ffffff", "stroke": "#0c000c"},
    # A suspect reading above a threshold: not a level yet, never "normal" (QC flags, never silences).
    UNCONFIRMED: {"css": "unconfirmed", "badge": "?", "fill": "#ffffff", "text": "#5c005c", "stroke": "#aa00aa"},
}
OFF_SCALE_WORDS: dict[int | str | None, dict[str, str]] = {
    UNCONFIRMED: dict(
        name_ja="未確認の値", name_en="Unconfirmed reading", action_ja="確認中", action_en="being checked",
        advice_ja="基準を こえる値が とどきましたが、まだ 確認中です。次の 観測で たしかめます。",
        advice_en="A reading above a threshold arrived but is not confirmed yet; the next reading will tell.",
    ),
    None: dict(
        name_ja="データなし", name_en="No data", action_ja="データなし", action_en="No data",
        advice_ja="この観測所からのデータがまだありません。", advice_en="No reading has arrived from this station yet.",
    ),
    0: dict(
        name_ja="平常", name_en="Normal", action_ja="平常", action_en="Normal",
        advice_ja="基準値未満です。", advice_en="Below every warning threshold.",
    ),
}


def levels() -> dict[int | str | None, LevelStyle]:
    """Every level's style: colours from here, words of levels 1–5 from the active scheme."""
    from alerts.vocabulary import gauge_words, scheme_words

    scheme = scheme_words()
    styles: dict[int | str | None, LevelStyle] = {}
    for key, colours in LEVEL_COLOURS.items():
        if key in OFF_SCALE_WORDS:
            styles[key] = LevelStyle(**colours, **OFF_SCALE_WORDS[key])
            continue
        words = scheme.gauge.get(key) if scheme else None
        words = words or gauge_words(key)
        styles[key] = LevelStyle(
            **colours,
            name_ja=words.name_ja, name_en=words.name_en,
            action_ja=words.reached_ja or words.name_ja, action_en=words.reached_en or words.name_en,
            advice_ja=words.advice_ja, advice_en=words.advice_en,
        )
    return styles


def level_style(level: int | None, styles: dict | None = None) -> LevelStyle:
    # Levels above the scale (data errors) are shown as the top level rather than hidden.
    if level is not None and level > 5:
        level = 5
    styles = styles if styles is not None else levels()
    return styles.get(level, styles[None])


# Rain gauges are shown by JMA's rain intensity of their 1-hour total (sensors/rain.py), never as a
# 警戒レベル: JMA's colours for hourly rain (20 yellow, 30 orange, 50 red, 80 purple), the category's
# first character as the badge.
RAIN_COLOURS = {
    "dry": {"badge": "–", **CALM},
    "rain": {"badge": "雨", **CALM},
    "heavy": {"badge": "強", "fill": "#faf500", "text": "#000000", "stroke": "#333333"},
    "very_heavy": {"badge": "激", "fill": "#ff9900", "text": "#000000", "stroke": "#333333"},
    "extremely_heavy": {"badge": "非", "fill": "#ff2800", "text": "#000000", "stroke": "#333333"},
    "torrential": {"badge": "猛", "fill": "#b40068", "text": "#ffffff", "stroke": "#333333"},
}


def rain_styles() -> dict[str, LevelStyle]:
    return {
        category.key: LevelStyle(
            css=f"rain-{category.key}", **RAIN_COLOURS[category.key],
            name_ja=category.name_ja, name_en=category.name_en, action_ja=category.name_ja,
            action_en=category.name_en, advice_ja=category.advice_ja, advice_en=category.advice_en,
        )
        for category in RAIN_INTENSITIES
    }


RAIN_STYLES = rain_styles()
# A rain threshold that is not a 1-hour amount (3 h, 24 h, storm totals, 10-minute amounts): no JMA
# intensity word fits it, so it is named only by the town's own label beside this neutral chip.
RAIN_TOTAL_STYLE = LevelStyle(
    css="rain-rain", badge="雨量", **CALM, name_ja="雨量の基準", name_en="Rain threshold",
    action_ja="雨量の基準", action_en="Rain threshold", advice_ja="", advice_en="",
)


def rain_threshold_style(window_minutes: int | None, value: float) -> LevelStyle:
    """How a rain gauge's threshold is named: a 1-hour amount by JMA's intensity word for it, any
    other by the neutral rain chip; never a 警戒レベル (sensors/rain.py)."""
    if window_minutes == RAIN_HOUR.total_seconds() // 60:
        intensity = rain_intensity(value)
        if intensity is not None:
            return RAIN_STYLES[intensity.key]
    return RAIN_TOTAL_STYLE


def state_style(props: dict, styles: dict | None = None) -> LevelStyle:
    """How a station's state is shown: its level; a rain gauge's rain intensity; or "unconfirmed" when
    a suspect latest reading would mean a higher level (static/mizumori/stations.js `stateStyle`
    decides the same way)."""
    if props.get("kind") == "rain" and props.get("rain_intensity") in RAIN_STYLES:
        return RAIN_STYLES[props["rain_intensity"]]
    styles = styles if styles is not None else levels()
    unconfirmed = props.get("unconfirmed_level")
    if props.get("quality") not in (None, "ok") and unconfirmed and unconfirmed > (props.get("level") or 0):
        return styles[UNCONFIRMED]
    return level_style(props.get("level"), styles)


@dataclass(frozen=True)
class KindStyle:
    shape: str
    name_ja: str
    name_en: str
    layer_name: str


KINDS = {
    "river": KindStyle("circle", "河川水位", "River level", "河川水位 River level"),
    "rain": KindStyle("diamond", "雨量", "Rainfall", "雨量 Rainfall"),
    "reservoir": KindStyle("square", "貯水池・ため池", "Reservoir / pond", "貯水池 Reservoirs"),
    "tide": KindStyle("hexagon", "潮位", "Tide level", "潮位 Tide level"),
}

# Each kind's marker outline as SVG element data (tag, attributes) on a 30×30 view box: drawn by the
# server in the legend (marker_svg) and by the browser on the map, from this one definition.
SHAPES: dict[str, tuple[str, dict[str, str]]] = {
    "circle": ("circle", {"cx": "15", "cy": "15", "r": "12.5"}),
    "diamond": ("path", {"d": "M15 1.5 28.5 15 15 28.5 1.5 15Z"}),
    "square": ("rect", {"x": "3", "y": "3", "width": "24", "height": "24", "rx": "3"}),
    "hexagon": ("path", {"d": "M8.5 2.5H21.5L28.5 15 21.5 27.5H8.5L1.5 15Z"}),
}
# The level badge is smaller in a diamond, whose middle is narrower.
BADGE_FONT_SIZE = {"diamond": "9"}
BADGE_FONT_SIZE_DEFAULT = "10.5"

# UI words of the map's popups: gettext (locale/*/django.po), so every language's catalog has them and
# a language without a translation shows Japanese. Level, threshold and order words are not here:
# they are the level scheme's data (pairs, `pick`), never a .po entry.
SHARING = {
    "public": pgettext_lazy("map popup", "Public"),
    "region": pgettext_lazy("map popup", "Shared in region"),
    "private": pgettext_lazy("map popup", "Own town only"),
}

STALE_JA, STALE_EN = "欠測", "stale"


def kind_style(kind: str) -> KindStyle:
    return KINDS.get(kind, KindStyle("circle", kind, kind, kind))


# --- marker drawing (legend) and the vocabulary the browser draws stations with -------------------


def marker_svg(*, shape: str, level: LevelStyle, stale: bool) -> SafeString:
    """The marker drawing for the legend: a shape per kind, filled with the level colour, the level
    written inside. static/mizumori/stations.js draws the map's markers the same way from
    `map_vocabulary()`."""
    tag, attributes = SHAPES.get(shape, SHAPES["circle"])
    outline = format_html(
        "<{} {}/>", tag, format_html_join(" ", '{}="{}"', sorted(attributes.items()))
    )
    dash = ' stroke-dasharray="4 3"' if stale else ""
    opacity = ' opacity="0.55"' if stale else ""
    return format_html(
        '<svg class="mz-marker-svg" viewBox="0 0 30 30" width="30" height="30" aria-hidden="true" focusable="false">'
        '<g fill="{}" stroke="{}" stroke-width="2"{}{}>{}</g>'
        '<text x="15" y="15.5" text-anchor="middle" dominant-baseline="middle" font-size="{}" font-weight="700" '
        'font-family="system-ui, sans-serif" fill="{}">{}</text></svg>',
        level.fill,
        level.stroke,
        mark_safe(dash),
        mark_safe(opacity),
        outline,
        BADGE_FONT_SIZE.get(shape, BADGE_FONT_SIZE_DEFAULT),
        level.text,
        level.badge,
    )


def headline_text(props: dict) -> str:
    """The quantity that set the station's state: the reading, or for a rain gauge its 1-hour total
    with the latest 10-minute amount beside it (stations.js `headlineText` writes the same)."""
    if props.get("kind") == "rain" and props.get("rain_hour_total") is not None:
        hour = value_text(props["rain_hour_total"], props["unit"])
        ten = value_text(props["value"], props["unit"])
        return f"{RAIN_HEADLINE[0]} {hour} ({RAIN_HEADLINE[1]} {ten})"
    return value_text(props["value"], props["unit"])


# Windows written the same in both languages of the page.
RAIN_HEADLINE = ("1 h", "10 min")


def value_text(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    digits = VALUE_DIGITS.get(unit, VALUE_DIGITS_DEFAULT)
    return f"{value:.{digits}f} {unit}".strip()


# River stages are read to the centimetre; rainfall and storage rates to one decimal.
VALUE_DIGITS = {"m": 2}
VALUE_DIGITS_DEFAULT = 1
TIME_FORMAT = "%Y-%m-%d %H:%M %Z"


def observed_text(observed_at_iso: str | None) -> str:
    """The reading time in the site time zone (TIME_ZONE), with the zone's abbreviation, e.g. JST."""
    if not observed_at_iso:
        return "—"
    observed_at = datetime.fromisoformat(observed_at_iso)
    return timezone.localtime(observed_at).strftime(TIME_FORMAT).strip()


def reached_threshold(props: dict) -> dict | None:
    """The highest threshold whose level is the station's current level (what was crossed)."""
    level = props["level"]
    if not level:
        return None
    matching = [t for t in props["thresholds"] if t["level"] == level]
    return max(matching, key=lambda t: t["value"]) if matching else None


WINDOW_WORDS = {"hours": ("時間", "h"), "minutes": ("分", "min")}


def window_text(seconds: str) -> str:
    minutes = int(seconds) // 60
    if minutes % 60 == 0:
        return f"{minutes // 60}{WINDOW_WORDS['hours'][0]} / {minutes // 60} {WINDOW_WORDS['hours'][1]}"
    return f"{minutes}{WINDOW_WORDS['minutes'][0]} / {minutes} {WINDOW_WORDS['minutes'][1]}"


TRENDS = {"rising": ("↑", pgettext_lazy("map popup", "rising")), "steady": ("→", pgettext_lazy("map popup", "steady")), "falling": ("↓", pgettext_lazy("map popup", "falling"))}

# The row headings of a station's popup (gettext, as SHARING), keyed by what the row shows.
POPUP_ROWS = {
    "kind": pgettext_lazy("map popup", "Kind"),
    "river": pgettext_lazy("map popup", "River"),
    "trend": pgettext_lazy("map popup", "Trend"),
    "reading": pgettext_lazy("map popup", "Reading"),
    "observed": pgettext_lazy("map popup", "Observed"),
    "owner": pgettext_lazy("map popup", "Owner"),
    "threshold": pgettext_lazy("map popup", "Threshold"),
    "rain_total": pgettext_lazy("map popup", "Rain total"),
    "sharing": pgettext_lazy("map popup", "Shared with"),
}
POPUP_WORDS = {
    "stale_note": pgettext_lazy("map popup", "Stale: no recent reading from this station."),
    "details": pgettext_lazy("map popup", "Details and chart"),
}


def _style_words(style: LevelStyle) -> dict:
    return {
        "css": style.css,
        "badge": style.badge,
        "fill": style.fill,
        "text": style.text,
        "stroke": style.stroke,
        "title": [style.title_ja, style.title_en],
        "name": [style.name_ja, style.name_en],
        "action": [style.action_ja, style.action_en],
        "advice": [style.advice_ja, style.advice_en],
    }


def calm_styles(styles: dict) -> list[str]:
    """The states (style css names) the map draws as one light element per station: below the
    notice level, and rain in the calm colours; stale or selected stations are drawn in full anyway."""
    calm = [style.css for key, style in styles.items() if key is None or (isinstance(key, int) and key < NOTICE_LEVEL)]
    return calm + [RAIN_STYLES[key].css for key, colours in RAIN_COLOURS.items() if colours.items() >= CALM.items()]


def map_vocabulary(*, towns: Iterable, show_sharing: bool) -> dict:
    """Everything static/mizumori/stations.js needs to draw a station from its feature properties:
    the level words, colours and advice, kind shapes, the popup's headings, town names. Embedded in
    the map page as JSON, so these words have one home (here) and are never copied into the script.

    `show_sharing` says whether the page is a staff page, whose popups say who a station is shared with.
    """
    level_words = {}
    styles = levels()
    for key, style in styles.items():
        level_words["none" if key is None else str(key)] = _style_words(style)
    return {
        "levels": level_words,
        "rain": {key: _style_words(style) for key, style in RAIN_STYLES.items()},
        "rain_headline": list(RAIN_HEADLINE),
        "top_level": max(key for key in styles if isinstance(key, int)),
        "notice_level": NOTICE_LEVEL,
        "calm": calm_styles(styles),
        "kinds": {kind: {"shape": style.shape, "name": [style.name_ja, style.name_en]} for kind, style in KINDS.items()},
        "shapes": {name: {"tag": tag, "attributes": attributes} for name, (tag, attributes) in SHAPES.items()},
        "badge_font_size": {**{shape: BADGE_FONT_SIZE_DEFAULT for shape in SHAPES}, **BADGE_FONT_SIZE},
        "stale": [STALE_JA, STALE_EN],
        # UI words in the page's language (the map page is made per language; so is the public shell's
        # cached copy, deploy/nginx.conf.template).
        "trends": {name: [arrow, str(words)] for name, (arrow, words) in TRENDS.items()},
        "sharing": {name: str(words) for name, words in SHARING.items()} if show_sharing else {},
        "rows": {name: str(words) for name, words in POPUP_ROWS.items()},
        "words": {name: str(words) for name, words in POPUP_WORDS.items()},
        "window": {name: list(words) for name, words in WINDOW_WORDS.items()},
        "value_digits": VALUE_DIGITS,
        "value_digits_default": VALUE_DIGITS_DEFAULT,
        # Feature times are ISO strings in TIME_ZONE already (sensors.selectors.local_iso); the page
        # adds the zone's name as the server's own pages do.
        "time_zone_name": timezone.localtime().strftime("%Z"),
        "towns": {town.slug: [town.name_ja, town.name_en] for town in towns},
        "shelter_statuses": {
            str(status): {"css": style.css, "name": [style.name_ja, style.name_en], "advice": [style.advice_ja, style.advice_en]}
            for status, style in SHELTER_STATUSES.items()
        },
        "station_url": reverse("station-detail", args=["__code__"]),
    }


# --- layers -----------------------------------------------------------------------------------------


class LiveLayerRegistration(MacroElement):
    """Hands a station layer (a FeatureGroup) to static/mizumori/live.js under its kind (folium
    names are random). The layer starts empty: the browser draws the stations into it."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
            Mizumori.registerStationLayer({{ this.kind|tojson }}, {{ this._parent.get_name() }});
        {% endmacro %}
        """
    )

    def __init__(self, kind: str):
        super().__init__()
        self._name = "LiveLayerRegistration"
        self.kind = kind


def station_layers() -> list[folium.FeatureGroup]:
    """One toggleable, empty layer per station kind, in a fixed order, for the browser to draw into."""
    groups = []
    for kind in KINDS:
        group = folium.FeatureGroup(name=kind_style(kind).layer_name)
        LiveLayerRegistration(kind).add_to(group)
        groups.append(group)
    return groups


# --- shelters ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShelterStatusStyle:
    css: str  # class suffix: mz-shelter-<css>
    fill: str
    stroke: str
    mark_colour: str  # the inner mark, at least 4.5:1 on `fill`
    dashed: bool
    mark: str  # SVG drawn inside the house: the status as a shape
    name_ja: str
    name_en: str
    advice_ja: str
    advice_en: str
    z: int  # open shelters are drawn over closed ones where markers overlap


SHELTER_STATUSES: dict[str, ShelterStatusStyle] = {
    Shelter.Status.OPEN: ShelterStatusStyle(
        "open", "#1a7f37", "#0b3d1a", "#ffffff", False,
        '<path d="M9 19.5 13.5 24 21.5 15" fill="none" stroke-width="3" stroke-linecap="round" '
        'stroke-linejoin="round"/>',
        "開設中", "Open", "避難者を受け入れています。", "Taking in evacuees.", 60,
    ),
    Shelter.Status.FULL: ShelterStatusStyle(
        "full", "#8f3f00", "#3d1b00", "#ffffff", False,
        '<path d="M8.5 19.5H21.5" fill="none" stroke-width="4" stroke-linecap="round"/>',
        "満員", "Full", "これ以上受け入れできません。開設中の別の避難所へ。",
        "Cannot take more people: go to another open shelter.", 40,
    ),
    Shelter.Status.CLOSED: ShelterStatusStyle(
        "closed", "#ffffff", "#595959", "#595959", True,
        '<path d="M10.5 15.5 19.5 24.5M19.5 15.5 10.5 24.5" fill="none" stroke-width="2.5" stroke-linecap="round"/>',
        "閉鎖中", "Closed", "開設されていません。", "Not open.", 0,
    ),
}
SHELTER_LAYER_NAME = "避難所 Shelters"
SHELTER_HOUSE_PATH = "M15 2.5 28 13.5V28H2V13.5Z"
SHELTER_MARKER_JS = JsCode("Mizumori.shelterMarker")


def shelter_status_style(status: str) -> ShelterStatusStyle:
    # An unknown stored value reads as closed: never tell residents a shelter is open when unsure.
    return SHELTER_STATUSES.get(status, SHELTER_STATUSES[Shelter.Status.CLOSED])


def shelter_svg(style: ShelterStatusStyle) -> SafeString:
    dash = ' stroke-dasharray="3 2.5"' if style.dashed else ""
    return format_html(
        '<svg class="mz-marker-svg mz-shelter-svg" viewBox="0 0 30 30" width="30" height="30" aria-hidden="true" '
        'focusable="false"><path d="{}" fill="{}" stroke="{}" stroke-width="2" stroke-linejoin="round"{}/>'
        '<g stroke="{}">{}</g></svg>',
        SHELTER_HOUSE_PATH,
        style.fill,
        style.stroke,
        mark_safe(dash),
        style.mark_colour,
        mark_safe(style.mark),
    )


def shelter_marker_html(shelter: Shelter) -> SafeString:
    """The house drawn in its status. Its name (aria-label) is written by the page in its language
    (static/mizumori/map.js `shelterIcon`): this drawing is the same for every reader."""
    style = shelter_status_style(shelter.status)
    return format_html('<div class="mz-shelter mz-shelter-{}" role="img">{}</div>', style.css, shelter_svg(style))


def local_time_text(moment: datetime | None) -> str:
    """A time in the site time zone (TIME_ZONE), with the zone's abbreviation, e.g. JST."""
    if moment is None:
        return "—"
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M %Z").strip()


def shelter_display(shelter: Shelter) -> dict:
    """What is the same in every language: the marker's drawing, its stacking, the HQ panel's time.
    Words (status chip, tooltip, popup, the marker's name) are written by the page in its language
    from the feature's data and `map_vocabulary()["shelter_statuses"]` (static/mizumori/stations.js):
    the public snapshot carrying this is one document for every reader."""
    return {
        "icon": shelter_marker_html(shelter),
        "z": shelter_status_style(shelter.status).z,
        "updated": local_time_text(shelter.status_updated_at),
    }


class ShelterLayerRegistration(MacroElement):
    """Hands the shelter GeoJson layer to static/mizumori/live.js (folium names are random)."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
            Mizumori.registerShelterLayer({{ this._parent.get_name() }});
        {% endmacro %}
        """
    )

    def __init__(self):
        super().__init__()
        self._name = "ShelterLayerRegistration"


def shelter_layer(features: list[dict]) -> folium.FeatureGroup:
    """The shelters, from features shaped by dashboard.live_geo.shelter_feature. Drawn even when
    empty: a shelter added later arrives over the live layer."""
    group = folium.FeatureGroup(name=SHELTER_LAYER_NAME)
    layer = folium.GeoJson(
        {"type": "FeatureCollection", "features": features},
        point_to_layer=SHELTER_MARKER_JS,
        on_each_feature=BIND_DETAILS_JS,
        control=False,
    )
    layer.add_to(group)
    ShelterLayerRegistration().add_to(layer)
    return group


# --- active alerts ----------------------------------------------------------------------------------

ALERT_LAYER_NAME = "アラート Active alerts"
ALERT_MARKER_JS = JsCode("Mizumori.alertMarker")


def alert_map_feature(alert: dict) -> dict:
    """A map feature for one alert document (alerts.selectors.alert_document). static/mizumori/live.js
    builds the same shape from live alert messages; the label is set as text there, never as HTML."""
    station = alert["station"]
    value = f" {alert['value']:.2f} {alert['unit']}" if alert.get("value") is not None else ""
    return {
        "type": "Feature",
        "id": f"alert-{alert['id']}",
        "geometry": {"type": "Point", "coordinates": [station["lon"], station["lat"]]},
        "properties": {
            "alert": alert["id"],
            "level": alert["level"],
            "state": alert["state"],
            "label": f"L{alert['level']} {station['name_ja']} / {station['name_en']}{value}",
        },
    }


class AlertLayerRegistration(MacroElement):
    """Hands the alert GeoJson layer to static/mizumori/live.js (folium names are random)."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
            Mizumori.registerAlertLayer({{ this._parent.get_name() }});
        {% endmacro %}
        """
    )

    def __init__(self):
        super().__init__()
        self._name = "AlertLayerRegistration"


def alert_layer(features: list[dict]) -> folium.FeatureGroup:
    """Open alerts drawn over their stations; drawn even when empty, as alerts arrive live."""
    group = folium.FeatureGroup(name=ALERT_LAYER_NAME)
    layer = folium.GeoJson(
        {"type": "FeatureCollection", "features": features}, point_to_layer=ALERT_MARKER_JS, control=False
    )
    layer.add_to(group)
    AlertLayerRegistration().add_to(layer)
    return group


# --- legend -----------------------------------------------------------------------------------------


class StationLegend(MacroElement):
    """The bilingual legend, placed in the map as a Leaflet control by static/mizumori/map.js.

    Its markup is part of the page, so it still reads (below the map) if the script fails.
    """

    _template = Template(
        """
        {% macro html(this, kwargs) %}{{ this.legend_html }}{% endmacro %}
        {% macro script(this, kwargs) %}
            Mizumori.addLegend({{ this._parent.get_name() }}, {{ this.get_name()|tojson }});
        {% endmacro %}
        """
    )

    def __init__(self, *, hazard_bands: Iterable[DepthBand] = (), shelters: bool = True):
        super().__init__()
        self._name = "StationLegend"
        self.legend_html = ""
        self.hazard_bands = list(hazard_bands)
        self.shelters = shelters

    def render(self, **kwargs):
        self.legend_html = legend_html(
            element_id=self.get_name(), hazard_bands=self.hazard_bands, shelters=self.shelters
        )
        super().render(**kwargs)


def legend_level_row(level: int | None, styles: dict[int | None, LevelStyle]) -> dict:
    style = level_style(level, styles)
    return {"svg": marker_svg(shape="circle", level=style, stale=False), "ja": style.title_ja, "en": style.title_en}


def legend_shelter_rows() -> list[dict]:
    return [
        {"svg": shelter_svg(style), "ja": f"避難所 {style.name_ja}", "en": f"Shelter: {style.name_en}"}
        for style in SHELTER_STATUSES.values()
    ]


def legend_hazard_rows(bands: Iterable[DepthBand]) -> list[dict]:
    return [{"css": band.css, "fill": band.fill, "ja": band.label_ja, "en": band.label_en} for band in bands]


def legend_html(*, element_id: str, hazard_bands: Iterable[DepthBand] = (), shelters: bool = False) -> str:
    styles = levels()
    level_rows = [legend_level_row(level, styles) for level in (5, 4, 3, 2, 1, 0, None)]
    level_rows.insert(-2, {
        "svg": marker_svg(shape="circle", level=styles[UNCONFIRMED], stale=False),
        "ja": styles[UNCONFIRMED].title_ja, "en": styles[UNCONFIRMED].title_en,
    })
    # Rain gauges: JMA's intensity of the 1-hour total, not a level.
    level_rows += [
        {
            "svg": marker_svg(shape=KINDS["rain"].shape, level=RAIN_STYLES[category.key], stale=False),
            "ja": f"{category.name_ja}(1時間 {category.lower_mm:g} mm以上)",
            "en": f"{category.name_en} (1 h ≥ {category.lower_mm:g} mm)",
        }
        for category in RAIN_INTENSITIES
        if category.lower_mm >= 20
    ]
    # The kind rows show the bare shape: a level badge there would read as a level.
    shape_only = replace(styles[0], badge="")
    kind_rows = [
        {
            "svg": marker_svg(shape=kind.shape, level=shape_only, stale=False),
            "ja": kind.name_ja,
            "en": kind.name_en,
        }
        for kind in KINDS.values()
    ]
    stale_row = {
        "svg": marker_svg(shape="circle", level=styles[0], stale=True),
        "ja": f"{STALE_JA}(最新データなし)",
        "en": "Stale: no recent reading",
    }
    return render_to_string(
        "dashboard/_map_legend.html",
        {
            "element_id": element_id,
            "level_rows": level_rows,
            "kind_rows": kind_rows,
            "stale_row": stale_row,
            "shelter_rows": legend_shelter_rows() if shelters else [],
            "hazard_rows": legend_hazard_rows(hazard_bands),
        },
    )


# --- the whole map ------------------------------------------------------------------------------------


def station_map(
    geography: Geography,
    station_points_by_town: Mapping[str, list[tuple[float, float]]],
    *,
    shelter_features: list[dict] | None = None,
    alert_features: list[dict] | None = None,
    own_municipality_ids: Iterable[int] = (),
) -> MizumoriMap:
    """Base map (with hazard zones) + empty station layers + shelters + legend, viewed to fit the
    boundaries, the stations' (lat, lon) points ({town slug: points}) and the shelters.
    `shelter_features=None` leaves shelters out. The stations themselves are drawn by the browser from
    the page's snapshot (dashboard.views)."""
    # A town without a boundary is drawn as the hull of ITS stations this reader may see: the points
    # are the reader's stations (the public map: public ones), so no outline hints at a hidden station.
    points_by_town = {
        town.pk: [(lon, lat) for lat, lon in station_points_by_town.get(town.slug, ())]
        for town in geography.municipalities
    }
    outlines = town_outlines(geography.municipalities, points_by_town)
    folium_map = base_map(geography, own_municipality_ids=own_municipality_ids, outlines=outlines)
    for group in station_layers():
        group.add_to(folium_map)
    if shelter_features is not None:
        shelter_layer(shelter_features).add_to(folium_map)
    if alert_features is not None:
        alert_layer(alert_features).add_to(folium_map)
    StationLegend(
        hazard_bands=hazard_bands_shown(geography.hazard_zones), shelters=shelter_features is not None
    ).add_to(folium_map)
    shelter_points = [
        (feature["geometry"]["coordinates"][1], feature["geometry"]["coordinates"][0])
        for feature in shelter_features or ()
    ]
    finish_map(
        folium_map,
        fit_geometries=[*municipality_boundaries(geography.municipalities), *outlines.values()],
        fit_points=[point for points in station_points_by_town.values() for point in points] + shelter_points,
    )
    return folium_map


# --- plain-language notices (the list under the public map) ------------------------------------------


@dataclass(frozen=True)
class StationNotice:
    """One station at a raised level, in words a resident can act on."""

    code: str
    name_ja: str
    name_en: str
    town_ja: str
    town_en: str
    kind: KindStyle
    level: LevelStyle
    reading: str
    observed: str
    stale: bool
    # The map's word for a station without recent readings (the same as its markers say).
    stale_words: tuple[str, str] = (STALE_JA, STALE_EN)


def station_notices(features: Iterable[dict], towns: Iterable) -> list[StationNotice]:
    """Notices for these station features (`features_needing_notice`), with their towns' names
    (`towns`: Municipality rows, e.g. the geography's)."""
    notices = []
    styles = levels()
    names = {town.slug: town for town in towns}
    for feature in features:
        props = feature["properties"]
        town = names.get(props["municipality"])
        notices.append(
            StationNotice(
                code=props["code"],
                name_ja=props["name_ja"],
                name_en=props["name_en"],
                town_ja=town.name_ja if town else props["municipality"],
                town_en=town.name_en if town else props["municipality"],
                kind=kind_style(props["kind"]),
                level=state_style(props, styles),
                reading=headline_text(props),
                observed=observed_text(props["observed_at"]),
                stale=bool(props["stale"]),
            )
        )
    return notices
