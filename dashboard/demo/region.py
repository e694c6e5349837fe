"""The demo region, as data: a FICTIONAL coastal river basin shared by three FICTIONAL municipalities.

Everything here is invented for demonstrations and tests. No town, river, station, threshold or
code refers to a real place; the local government codes start with 99, which no prefecture uses,
and every municipality, basin and river name carries 架空 / "(fictional)" so it is visible as such
in the admin and on the map.

The 翡翠川 (Kawasemi River) rises in the hills of 奥翠町 (Okumidori, upstream), flows through the
core city 翠ヶ原市 (Midorigahara, middle reaches) and reaches the sea at 翠浜町 (Midorihama, coast).
Two tributaries join it: 沢井川 (Sawai) from the northern hills and 小竹川 (Kotake) from the south.

Geometry is drawn in valley coordinates and mapped to [lon, lat] by the builders below:
`u` runs along the valley axis, 0 at the head of the basin and 1 at the coast; `v` runs across it,
-1 on the southern ridge and +1 on the northern one. Because that mapping keeps each cross-section
in order (y grows with v for every u), a simple ring in (u, v) stays a simple ring on the map, and
towns built from the same border vertices share their edges exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from sensors.models import StationKind, Visibility
from sensors.threshold_sets import (  # the demo's stations use the standard ladders
    KIND_UNITS,
    RAIN_THRESHOLDS,
    ThresholdSpec,
    reservoir_thresholds,
    river_thresholds,
    tide_thresholds,
)
from sensors.tide import Constituent, Harmonics

FICTIONAL_NOTE = "架空の地域 / fictional region for demonstrations"

# --- where and how big --------------------------------------------------------------------------
# The valley head sits at this [lon, lat]; the valley runs 40 km towards the south-east, to the sea.
ORIGIN_LON, ORIGIN_LAT = 140.02, 35.47
VALLEY_LENGTH_KM = 40.0
VALLEY_AXIS_DEGREES = -35.0  # counter-clockwise from east: pointing south-east
KM_PER_DEGREE_LAT = 110.574
KM_PER_DEGREE_LON = 111.320 * math.cos(math.radians(ORIGIN_LAT))
COORDINATE_DECIMALS = 6  # about 0.1 m: plenty, and keeps the GeoJSON small

SIDE_STEP_U = 0.04  # spacing of ridge vertices: a few dozen per town
BORDER_VERTICES = 9


def _centre_line_km(u: float) -> float:
    """The valley bends gently; offset of its centre from the straight axis."""
    return 2.0 * math.sin(2.5 * u)


def _half_width_km(u: float, side: int) -> float:
    """Half the valley width on one side (+1 north, -1 south): wide in the hills, narrow at the coast."""
    width = 9.0 - 4.0 * u
    if side > 0:
        wiggle = 0.08 * math.sin(11 * u) + 0.05 * math.sin(23 * u + 1)
    else:
        wiggle = 0.07 * math.sin(13 * u + 2) + 0.05 * math.sin(19 * u)
    return width * (1 + wiggle)


def valley_km(u: float, v: float) -> tuple[float, float]:
    """Valley coordinates to km along (x) and across (y) the valley axis."""
    side = 1 if v >= 0 else -1
    return u * VALLEY_LENGTH_KM, _centre_line_km(u) + v * _half_width_km(u, side)


def to_lonlat(u: float, v: float) -> tuple[float, float]:
    x, y = valley_km(u, v)
    angle = math.radians(VALLEY_AXIS_DEGREES)
    east = x * math.cos(angle) - y * math.sin(angle)
    north = x * math.sin(angle) + y * math.cos(angle)
    return (
        round(ORIGIN_LON + east / KM_PER_DEGREE_LON, COORDINATE_DECIMALS),
        round(ORIGIN_LAT + north / KM_PER_DEGREE_LAT, COORDINATE_DECIMALS),
    )


# --- towns --------------------------------------------------------------------------------------


def local_government_code(five_digits: str) -> str:
    """全国地方公共団体コード: five digits plus the check digit (weights 6..2, modulus 11)."""
    total = sum(int(digit) * weight for digit, weight in zip(five_digits, (6, 5, 4, 3, 2)))
    return five_digits + str((11 - total % 11) % 10)


@dataclass(frozen=True)
class TownSpec:
    slug: str
    code: str
    name_ja: str
    name_en: str
    reach: str  # where along the river, for people reading the data


TOWNS = (
    TownSpec("okumidori", local_government_code("99002"), "奥翠町（架空）", "Okumidori Town (fictional)", "upstream hills"),
    TownSpec("midorigahara", local_government_code("99001"), "翠ヶ原市（架空）", "Midorigahara City (fictional)", "core city, middle reaches"),
    TownSpec("midorihama", local_government_code("99003"), "翠浜町（架空）", "Midorihama Town (fictional)", "coast and river mouth"),
)
TOWN_SLUGS = tuple(town.slug for town in TOWNS)  # in order from the hills to the sea


def _across(u_of_v) -> list[tuple[float, float]]:
    """A line across the valley from the southern ridge (v=-1) to the northern one (v=+1)."""
    vs = [-1 + 2 * i / (BORDER_VERTICES - 1) for i in range(BORDER_VERTICES)]
    return [(u_of_v(v), v) for v in vs]


def head_of_basin() -> list[tuple[float, float]]:
    return _across(lambda v: -0.04 * (1 - v * v))


def border_upstream_core() -> list[tuple[float, float]]:
    return _across(lambda v: 0.35 + 0.015 * math.sin(2.5 * v + 1))


def border_core_coast() -> list[tuple[float, float]]:
    return _across(lambda v: 0.72 + 0.015 * math.sin(3 * v + 0.5))


def coastline() -> list[tuple[float, float]]:
    return _across(lambda v: 1.0 + 0.012 * math.sin(5 * v))


def _cross_lines() -> list[list[tuple[float, float]]]:
    """The lines that cut the basin into towns, from the head of the basin to the coast."""
    return [head_of_basin(), border_upstream_core(), border_core_coast(), coastline()]


def _ridge(side: int, u_from: float, u_to: float) -> list[tuple[float, float]]:
    """Ridge vertices strictly between two cross lines, in the direction u_from -> u_to.

    Every town picks its ridge vertices from the same grid (plus the cross-line ends), so the
    basin outline is exactly the towns' outer edges put together.
    """
    ends = {line[0 if side < 0 else -1][0] for line in _cross_lines()}
    grid = {round(i * SIDE_STEP_U, 6) for i in range(int(1 / SIDE_STEP_U) + 1)}
    low, high = sorted((u_from, u_to))
    inside = sorted(u for u in grid | ends if low < u < high)
    if u_from > u_to:
        inside.reverse()
    return [(u, side) for u in inside]


def _ring_uv(west: list[tuple[float, float]], east: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Counter-clockwise (RFC 7946) ring between two cross lines: south ridge, east line, north ridge, west line."""
    ring = [west[0]]
    ring += _ridge(-1, west[0][0], east[0][0])
    ring += east
    ring += _ridge(+1, east[-1][0], west[-1][0])
    ring += list(reversed(west))
    return ring


def _polygon(ring_uv: list[tuple[float, float]]) -> dict:
    return {"type": "Polygon", "coordinates": [[list(to_lonlat(u, v)) for u, v in ring_uv]]}


@lru_cache(maxsize=1)
def _town_rings_uv() -> dict[str, list[tuple[float, float]]]:
    lines = _cross_lines()
    return {slug: _ring_uv(lines[i], lines[i + 1]) for i, slug in enumerate(TOWN_SLUGS)}


def town_boundary(slug: str) -> dict:
    """The town's boundary as a GeoJSON Polygon, [lon, lat]."""
    return _polygon(_town_rings_uv()[slug])


def basin_boundary() -> dict:
    """The part of the basin inside the three towns: exactly their outer edges."""
    lines = _cross_lines()
    return _polygon(_ring_uv(lines[0], lines[-1]))


# --- rivers -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RiverSpec:
    key: str
    name_ja: str
    name_en: str
    course: tuple[tuple[float, float], ...]  # (u, v) from the source to the mouth or confluence, u increasing


def _main_river_v(u: float) -> float:
    """The main river meanders around the valley floor."""
    return 0.12 * math.sin(7 * u) + 0.05 * math.sin(17 * u)


def _main_course() -> tuple[tuple[float, float], ...]:
    points = [(round(i * 0.02, 6), _main_river_v(i * 0.02)) for i in range(50)]
    mouth_v = _main_river_v(1.0)
    mouth_u = 1.0 + 0.012 * math.sin(5 * mouth_v)  # on the coastline
    return tuple(points) + ((mouth_u, mouth_v),)


def _tributary_course(upper: list[tuple[float, float]], confluence_u: float) -> tuple[tuple[float, float], ...]:
    return tuple(upper) + ((confluence_u, _main_river_v(confluence_u)),)


BASIN_NAME_JA = "翡翠川流域（架空）"
BASIN_NAME_EN = "Kawasemi River basin (fictional)"

RIVERS = (
    RiverSpec("kawasemi", "翡翠川（架空）", "Kawasemi River (fictional)", _main_course()),
    RiverSpec(
        "sawai",
        "沢井川（架空）",
        "Sawai River (fictional)",
        _tributary_course([(0.10, 0.88), (0.18, 0.74), (0.27, 0.58), (0.36, 0.42), (0.42, 0.26)], 0.47),
    ),
    RiverSpec(
        "kotake",
        "小竹川（架空）",
        "Kotake River (fictional)",
        _tributary_course([(0.42, -0.86), (0.50, -0.72), (0.60, -0.55), (0.70, -0.40), (0.78, -0.25)], 0.86),
    ),
)
RIVERS_BY_KEY = {river.key: river for river in RIVERS}


def river_line(key: str) -> dict:
    return {"type": "LineString", "coordinates": [list(to_lonlat(u, v)) for u, v in RIVERS_BY_KEY[key].course]}


def river_v_at(key: str, u: float) -> float:
    """Where the river crosses the valley cross-section at u (linear between course vertices)."""
    course = RIVERS_BY_KEY[key].course
    if not course[0][0] <= u <= course[-1][0]:
        raise ValueError(f"u={u} is outside the course of {key}")
    for (u0, v0), (u1, v1) in zip(course, course[1:]):
        if u0 <= u <= u1:
            return v0 + (v1 - v0) * (u - u0) / (u1 - u0)
    raise AssertionError("unreachable: u is within the course")


def river_chainage_km(key: str, u: float) -> float:
    """Distance along the river from its source down to u: how far a flood wave has travelled."""
    course = RIVERS_BY_KEY[key].course
    points = [vertex for vertex in course if vertex[0] < u] + [(u, river_v_at(key, u))]
    kms = [valley_km(pu, pv) for pu, pv in points]
    return sum(math.dist(a, b) for a, b in zip(kms, kms[1:]))


# --- thresholds ---------------------------------------------------------------------------------


# The standard ladders of each kind: sensors.threshold_sets (one home for their words).


# --- stations -----------------------------------------------------------------------------------

EVERY_10_MINUTES = timedelta(minutes=10)


@dataclass(frozen=True)
class StationSpec:
    code: str
    name_ja: str
    name_en: str
    kind: str
    town: str
    visibility: str
    u: float
    v: float | None  # None: on its river at u
    river: str | None
    base: float  # calm-weather value in the station's unit
    # How strongly the design storm (hydrology.py) moves this station: metres of rise at a river
    # gauge's peak, the peak 10-minute rainfall (mm) at a rain gauge, percentage points of storage at
    # a reservoir. River rating curves and reservoir volumes are calibrated to it.
    storm_response: float
    thresholds: tuple[ThresholdSpec, ...]
    expected_interval: timedelta | None = EVERY_10_MINUTES
    start_level: float | None = None  # flood gauges (危機管理型水位計) report only at or above this stage
    tide_amplitude: float = 0.0  # metres of semidiurnal tide near the mouth
    datum: str = ""  # what 0 means (a tide gauge's T.P.)

    @property
    def unit(self) -> str:
        return KIND_UNITS[StationKind(self.kind)]

    @property
    def lonlat(self) -> tuple[float, float]:
        return to_lonlat(self.u, self.v_on_map)

    @property
    def v_on_map(self) -> float:
        return self.v if self.v is not None else river_v_at(self.river, self.u)

    @property
    def chainage_km(self) -> float:
        """Distance from the river's source; 0 for stations not on a river course."""
        if self.river is None or self.kind != StationKind.RIVER:
            return 0.0
        return river_chainage_km(self.river, self.u)

    @property
    def river_name(self) -> str:
        return RIVERS_BY_KEY[self.river].name_ja if self.river else BASIN_NAME_JA


PUBLIC, REGION, PRIVATE, SHARED = Visibility.PUBLIC, Visibility.REGION, Visibility.PRIVATE, Visibility.SHARED
RIVER, RAIN, RESERVOIR, TIDE = StationKind.RIVER, StationKind.RAIN, StationKind.RESERVOIR, StationKind.TIDE


def _gauge(code, name_ja, name_en, town, visibility, river, u, base, rise, thresholds, **extra):
    return StationSpec(code, name_ja, name_en, RIVER, town, visibility, u, None, river, base, rise, thresholds, **extra)


def _flood_gauge(code, name_ja, name_en, town, visibility, river, u, base, rise, thresholds):
    # Low-cost 危機管理型水位計: silent until the stage reaches its start level (here the standby level).
    return _gauge(code, name_ja, name_en, town, visibility, river, u, base, rise, thresholds,
                  expected_interval=None, start_level=thresholds[0].value)


def _rain(code, name_ja, name_en, town, visibility, u, v, peak_10min):
    return StationSpec(code, name_ja, name_en, RAIN, town, visibility, u, v, None, 0.0, peak_10min, RAIN_THRESHOLDS)


def _tide_gauge(code, name_ja, name_en, town, visibility, u, v, mean_level, amplitude, surge, thresholds):
    # `base` is the mean sea level above T.P.; `storm_response` the storm surge's peak in metres.
    return StationSpec(code, name_ja, name_en, TIDE, town, visibility, u, v, None, mean_level, surge, thresholds,
                       tide_amplitude=amplitude, datum="T.P.")


def _reservoir(code, name_ja, name_en, town, visibility, u, v, base, fill, flood_full, crest, river=None):
    return StationSpec(code, name_ja, name_en, RESERVOIR, town, visibility, u, v, river, base, fill,
                       reservoir_thresholds(flood_full, crest))


UP, CORE, COAST = TOWN_SLUGS

STATIONS: tuple[StationSpec, ...] = (
    # Main river, from the hills to the sea. Gauges lower down have bigger channels, so higher thresholds.
    _gauge("KWS-R01", "上奥翠", "Kami-Okumidori", UP, REGION, "kawasemi", 0.08, 0.45, 1.25, river_thresholds(1.0, 1.5, 1.9, 2.3, 2.9)),
    _gauge("KWS-R02", "奥翠橋", "Okumidori Bridge", UP, PUBLIC, "kawasemi", 0.17, 0.60, 1.60, river_thresholds(1.3, 1.9, 2.4, 2.8, 3.5)),
    _gauge("KWS-R03", "滝見", "Takimi", UP, PUBLIC, "kawasemi", 0.27, 0.70, 2.15, river_thresholds(1.5, 2.2, 2.7, 3.2, 3.9)),
    _gauge("KWS-R04", "中川原", "Nakagawara", CORE, PUBLIC, "kawasemi", 0.40, 0.85, 2.45, river_thresholds(1.8, 2.6, 3.1, 3.6, 4.4)),
    _gauge("KWS-R05", "翠ヶ原大橋", "Midorigahara Ohashi", CORE, PUBLIC, "kawasemi", 0.50, 0.95, 3.20, river_thresholds(2.0, 2.9, 3.4, 3.9, 4.8)),
    _gauge("KWS-R06", "本町", "Honmachi", CORE, REGION, "kawasemi", 0.57, 1.05, 2.90, river_thresholds(2.1, 3.0, 3.6, 4.1, 5.0)),
    _gauge("KWS-R07", "新田", "Shinden", CORE, PUBLIC, "kawasemi", 0.66, 1.10, 2.80, river_thresholds(2.2, 3.1, 3.7, 4.2, 5.1)),
    _gauge("KWS-R08", "下翠", "Shimomidori", COAST, PUBLIC, "kawasemi", 0.77, 1.00, 2.75, river_thresholds(2.3, 3.2, 3.8, 4.3, 5.3)),
    _gauge("KWS-R09", "潮見橋", "Shiomi Bridge", COAST, REGION, "kawasemi", 0.86, 0.90, 2.50, river_thresholds(2.4, 3.3, 3.9, 4.5, 5.5)),
    _gauge("KWS-R10", "翡翠川河口", "Kawasemi Estuary", COAST, PUBLIC, "kawasemi", 0.96, 0.55, 2.00, river_thresholds(2.0, 2.8, 3.3, 3.8, 4.6), tide_amplitude=0.35),
    # Tributaries.
    _gauge("SWI-R01", "沢井", "Sawai", UP, REGION, "sawai", 0.22, 0.35, 1.50, river_thresholds(0.9, 1.4, 1.8, 2.2, 2.8)),
    _flood_gauge("SWI-F01", "沢井下流", "Lower Sawai", CORE, SHARED, "sawai", 0.42, 0.30, 1.35, river_thresholds(0.8, 1.2, 1.5, 1.9, 2.5)),
    _gauge("KTK-R01", "小竹", "Kotake", CORE, REGION, "kotake", 0.55, 0.40, 1.10, river_thresholds(1.0, 1.5, 1.9, 2.3, 2.9)),
    _gauge("KTK-R02", "小竹橋", "Kotake Bridge", COAST, PUBLIC, "kotake", 0.77, 0.50, 1.30, river_thresholds(1.1, 1.6, 2.1, 2.5, 3.1)),
    _flood_gauge("KTK-F01", "小竹合流点", "Kotake Confluence", COAST, SHARED, "kotake", 0.81, 0.35, 1.25, river_thresholds(0.9, 1.3, 1.7, 2.1, 2.7)),
    # Rain gauges: most in the hills, where the storm breaks first and hardest.
    _rain("KWS-P01", "奥翠山", "Mt. Okumidori", UP, SHARED, 0.05, 0.50, 11.0),
    _rain("KWS-P02", "翠峠", "Midori Pass", UP, REGION, 0.12, -0.55, 12.0),
    _rain("KWS-P03", "大平", "Ohira", UP, PUBLIC, 0.22, 0.30, 10.5),
    _rain("KWS-P04", "奥翠町役場", "Okumidori Town Office", UP, PRIVATE, 0.30, -0.20, 10.0),
    _rain("KWS-P05", "翠ヶ原市役所", "Midorigahara City Hall", CORE, PUBLIC, 0.47, 0.35, 8.0),
    _rain("KWS-P06", "南台", "Minamidai", CORE, PRIVATE, 0.60, -0.35, 7.0),
    _rain("KWS-P07", "翠浜", "Midorihama", COAST, REGION, 0.80, 0.30, 5.0),
    _rain("KWS-P08", "灯台岬", "Lighthouse Cape", COAST, PRIVATE, 0.93, -0.45, 4.0),
    # The harbour's tide gauge at the river mouth: the coastal town shares 潮位 with its river levels.
    # Its surge (1.6 m at the design storm's peak) reaches 高潮注意潮位 even at low water and stays
    # below 高潮危険潮位 at high water, whatever the hour the demo starts.
    _tide_gauge("KWS-H01", "翡翠港", "Kawasemi Harbour", COAST, PUBLIC, 0.985, -0.25, 0.20, 0.60, 1.60,
                tide_thresholds(1.2, 1.8, 2.8)),
    # The dam and the irrigation ponds (ため池), as storage rate.
    _reservoir("KWS-D01", "翡翠ダム", "Kawasemi Dam", UP, PUBLIC, 0.035, None, 62.0, 40.0, 120.0, 135.0, river="kawasemi"),
    _reservoir("KWS-T01", "大池", "Oike Pond", UP, PRIVATE, 0.19, 0.55, 88.0, 20.0, 115.0, 125.0),
    _reservoir("KWS-T02", "上池", "Kamiike Pond", UP, REGION, 0.26, -0.55, 85.0, 18.0, 115.0, 125.0),
    _reservoir("KWS-T03", "皿池", "Saraike Pond", CORE, SHARED, 0.45, -0.55, 92.0, 26.0, 115.0, 125.0),
    _reservoir("KWS-T04", "鏡池", "Kagamiike Pond", CORE, REGION, 0.62, 0.50, 80.0, 15.0, 115.0, 125.0),
    _reservoir("KWS-T05", "新池", "Shinike Pond", COAST, PRIVATE, 0.83, 0.55, 90.0, 12.0, 115.0, 125.0),
    _reservoir("KWS-T06", "蛙池", "Kaeruike Pond", COAST, REGION, 0.90, -0.55, 75.0, 10.0, 115.0, 125.0),
)
STATIONS_BY_CODE = {spec.code: spec for spec in STATIONS}

# The harbour's astronomical tide: M2 of the spec's amplitude with S2, K1 and O1 in the proportions
# of a Pacific-coast port; at its highest spring tide it stays below 高潮注意潮位 in calm weather.
TIDE_EPOCH = datetime(2020, 1, 1, tzinfo=UTC)


def tide_harmonics(spec: StationSpec) -> Harmonics:
    a = spec.tide_amplitude
    return Harmonics(spec.base, TIDE_EPOCH, (
        Constituent("M2", a, 150.0), Constituent("S2", 0.25 * a, 180.0),
        Constituent("K1", 0.17 * a, 200.0), Constituent("O1", 0.12 * a, 180.0),
    ))


def station(code: str) -> StationSpec:
    return STATIONS_BY_CODE[code]


# --- hazard zones -------------------------------------------------------------------------------

HAZARD_SOURCE = f"{FICTIONAL_NOTE}: 想定最大規模降雨 (demo)"
HAZARD_STEP_U = 0.01


@dataclass(frozen=True)
class HazardZoneSpec:
    """An assumed inundation area on one bank of the main river, between u_from and u_to.

    Its inner edge follows the river at `near` (valley units of v), its outer edge swells to `far`
    in the middle of the reach and narrows towards both ends, like the floodplain of a real
    hazard map. Zones on the same bank are meant not to overlap: each place has one depth.
    """

    name_ja: str
    name_en: str
    town: str
    depth_min_m: float | None
    depth_max_m: float | None
    u_from: float
    u_to: float
    bank: int  # +1 north bank (left, looking downstream), -1 south bank
    near: float
    far: float

    def _edge(self, offset_of_u) -> list[tuple[float, float]]:
        steps = round((self.u_to - self.u_from) / HAZARD_STEP_U)
        us = [self.u_from + (self.u_to - self.u_from) * i / steps for i in range(steps + 1)]
        return [(u, _main_river_v(u) + self.bank * offset_of_u(u)) for u in us]

    def _outer_offset(self, u: float) -> float:
        swell = math.sin(math.pi * (u - self.u_from) / (self.u_to - self.u_from))
        return self.near + (self.far - self.near) * (0.35 + 0.65 * swell)

    @property
    def geometry(self) -> dict:
        """A GeoJSON Polygon, counter-clockwise (RFC 7946): the lower-v edge downstream, the other back."""
        inner = self._edge(lambda u: self.near)
        outer = self._edge(self._outer_offset)
        lower, upper = (inner, outer) if self.bank > 0 else (outer, inner)
        ring = lower + list(reversed(upper))
        ring.append(ring[0])
        return _polygon(ring)


HAZARD_ZONES: tuple[HazardZoneSpec, ...] = (
    HazardZoneSpec("翡翠川下流 右岸", "Lower Kawasemi, north bank", COAST, 3.0, 5.0, 0.76, 0.95, +1, 0.04, 0.40),
    HazardZoneSpec("翡翠川下流 左岸", "Lower Kawasemi, south bank", COAST, 0.5, 3.0, 0.75, 0.97, -1, 0.04, 0.36),
    HazardZoneSpec("新田地区", "Shinden district", CORE, None, 0.5, 0.60, 0.70, +1, 0.04, 0.30),
)


# --- shelters -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShelterSpec:
    code: str
    name_ja: str
    name_en: str
    town: str
    u: float
    v: float
    capacity: int
    status: str  # as the demo starts: a storm is coming and some towns have opened shelters
    address: str

    @property
    def lonlat(self) -> tuple[float, float]:
        return to_lonlat(self.u, self.v)


OPEN, FULL, CLOSED = "open", "full", "closed"

SHELTERS: tuple[ShelterSpec, ...] = (
    ShelterSpec("SH-OKU-01", "奥翠小学校", "Okumidori Elementary School", UP, 0.12, -0.30, 250, OPEN, "奥翠町本郷 1-1（架空）"),
    ShelterSpec("SH-OKU-02", "奥翠町民センター", "Okumidori Community Centre", UP, 0.30, -0.40, 120, CLOSED, "奥翠町滝見 3-2（架空）"),
    ShelterSpec("SH-MDG-01", "翠ヶ原市総合体育館", "Midorigahara City Gymnasium", CORE, 0.45, -0.40, 800, OPEN, "翠ヶ原市中央 2-5（架空）"),
    ShelterSpec("SH-MDG-02", "翠ヶ原中学校", "Midorigahara Junior High School", CORE, 0.53, 0.45, 400, FULL, "翠ヶ原市北町 4-10（架空）"),
    ShelterSpec("SH-MDG-03", "南台公民館", "Minamidai Community Hall", CORE, 0.64, -0.60, 90, CLOSED, "翠ヶ原市南台 1-8（架空）"),
    ShelterSpec("SH-MDH-01", "翠浜町役場", "Midorihama Town Office", COAST, 0.80, 0.65, 300, OPEN, "翠浜町役場通 1（架空）"),
    ShelterSpec("SH-MDH-02", "翠浜高台公園", "Midorihama Hilltop Park", COAST, 0.92, -0.70, 500, CLOSED, "翠浜町高台 7（架空）"),
    ShelterSpec("SH-MDH-03", "翠浜小学校", "Midorihama Elementary School", COAST, 0.88, 0.68, 350, CLOSED, "翠浜町潮見 2-3（架空）"),
)


# Who each town lets see its shared stations (sensors.SharingGrant): the upstream town shares its
# hill rain gauge with the coast, which floods last; the core city shares a tributary gauge and a
# pond with its neighbours; the coast shares its confluence gauge with the core city.
SHARING = [
    ("KWS-P01", "midorihama"),
    ("SWI-F01", "midorihama"),
    ("KWS-T03", "okumidori"),
    ("KTK-F01", "midorigahara"),
]
