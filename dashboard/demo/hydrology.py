"""The physics of the FICTIONAL Kawasemi basin: rain -> runoff -> routing -> stage, and storage.

Pure and deterministic: no database, no clock. Time runs in 10-minute steps on the UTC grid, and a
value at time T is what a gauge reports at T for the 10 minutes ending at T.

- Rain: each storm is a moving cell whose intensity at a gauge follows a gamma-shaped hyetograph
  (build-up, peak, long recession) that peaks later further down the valley. Gauges are tipping
  buckets: a reading is the number of whole 0.5 mm tips in its 10 minutes, so the readings add up
  to the storm's cumulative rain to within one tip, whatever the window.
- Runoff: every river gauge drains a local sub-catchment whose rain is the inverse-distance mean of
  the rain gauges (what they *reported*, so the rivers answer to the rain the map shows). A two-tank
  model (Sugawara's tank model, simplified) turns that rain into quick flow from the upper tank's
  side outlets and slow flow from the lower tank, plus a constant groundwater base flow.
- Routing: each reach between gauges delays its inflow by the flood wave's travel time and
  attenuates it with a linear reservoir (lag-and-route), so downstream gauges peak later.
- Stage: a rating curve per gauge, Q = a (h - h0)^2. The basin is fictional, so its channels are
  "surveyed" by calibration: each curve passes through the gauge's calm stage at base flow and its
  design peak (`StationSpec.storm_response` metres above calm) at the design storm's peak flow. The
  stage also swings a centimetre each way over the day (evapotranspiration draws on base flow), so a
  calm river is never flat for a whole day, as real ones are not.
- Storage: the dam and the ponds fill from their catchment's runoff and release a compensation
  flow, a slow drawdown back to the operating level, and spillway flow above 常時満水位 (100 %).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache, cached_property, lru_cache

from sensors.models import PHYSICAL_LIMITS, StationKind
from sensors.tide import predict as tide_predict

from . import region
from .region import StationSpec

STEP = timedelta(minutes=10)
STEP_SECONDS = int(STEP.total_seconds())
STEPS_PER_HOUR = 6

# --- rain ---------------------------------------------------------------------------------------

TIP_MM = 0.5  # one tip of the bucket
HYETOGRAPH_SHAPE = 3.0  # f(x) = x^3 e^(3(1-x)): rises to 1 at x = 1, recedes over about three times as long
# The area under f: integral of x^3 e^(3(1-x)) dx from 0 to infinity = e^3 * 3! / 3^4.
HYETOGRAPH_AREA = math.exp(3) * 6 / 81
RAIN_OVER_AFTER = 20.0  # times to peak: what is left to fall by then is below 1e-15 of the total


@dataclass(frozen=True)
class Storm:
    """One rain event: a cell that breaks over the head of the basin and drifts down the valley.

    `scale` 1.0 is the design storm: a rain gauge's peak intensity is then 6 x its
    `storm_response` (the peak 10-minute amount) in mm/h. `hills_bias` below 1 spreads the rain more
    evenly down the valley (a coastal storm), above 1 piles it on the hills.
    """

    start: datetime  # rain begins at the head of the basin
    scale: float = 1.0
    time_to_peak: timedelta = timedelta(minutes=90)
    drift: timedelta = timedelta(minutes=60)  # how much later the peak reaches the coast (u = 1)
    hills_bias: float = 1.0

    def peak_mm_per_hour(self, spec: StationSpec) -> float:
        mean = _mean_rain_response()
        return max(self.scale * 6 * (mean + self.hills_bias * (spec.storm_response - mean)), 0.0)

    def total_mm(self, spec: StationSpec) -> float:
        return self._at_gauge[spec.code][1]

    def onset_at(self, spec: StationSpec) -> datetime:
        return self._at_gauge[spec.code][0]

    @cached_property
    def _at_gauge(self) -> dict[str, tuple[datetime, float]]:
        """(onset, storm total in mm) per rain gauge, worked out once: the model asks every step."""
        hours_to_peak = self.time_to_peak / timedelta(hours=1)
        return {
            spec.code: (self.start + self.drift * spec.u, self.peak_mm_per_hour(spec) * hours_to_peak * HYETOGRAPH_AREA)
            for spec in rain_gauges()
        }

    def peak_at(self, spec: StationSpec) -> datetime:
        return self.onset_at(spec) + self.time_to_peak

    def cumulative_mm(self, spec: StationSpec, at: datetime) -> float:
        """Rain this storm has dropped on the gauge from its start up to `at` (the hyetograph's integral)."""
        x = (at - self.onset_at(spec)) / self.time_to_peak
        if x <= 0:
            return 0.0
        if x > RAIN_OVER_AFTER:
            return self.total_mm(spec)
        k = HYETOGRAPH_SHAPE * x
        # The CDF of a gamma distribution with integer shape 4: 1 - e^-k (1 + k + k^2/2 + k^3/6).
        fraction = 1.0 - math.exp(-k) * (1 + k + k * k / 2 + k**3 / 6)
        return self.total_mm(spec) * fraction

    def intensity_mm_per_hour(self, spec: StationSpec, at: datetime) -> float:
        x = (at - self.onset_at(spec)) / self.time_to_peak
        if x <= 0:
            return 0.0
        return self.peak_mm_per_hour(spec) * x**HYETOGRAPH_SHAPE * math.exp(HYETOGRAPH_SHAPE * (1 - x))


@lru_cache(maxsize=1)
def _mean_rain_response() -> float:
    gauges = rain_gauges()
    return sum(spec.storm_response for spec in gauges) / len(gauges)


def cumulative_rain(spec: StationSpec, storms: Iterable[Storm], at: datetime) -> float:
    return sum(storm.cumulative_mm(spec, at) for storm in storms if storm.start < at)


def tips(cumulative_mm: float) -> int:
    # The small epsilon keeps 1.0 / 0.5 from landing on 1.9999999 tips.
    return math.floor(cumulative_mm / TIP_MM + 1e-9)


def rain_reading(spec: StationSpec, storms: Sequence[Storm], at: datetime) -> float:
    """The gauge's reading at `at`: whole tips in the 10 minutes ending then, in mm."""
    now_tips = tips(cumulative_rain(spec, storms, at))
    before_tips = tips(cumulative_rain(spec, storms, at - STEP))
    return (now_tips - before_tips) * TIP_MM


# --- the network --------------------------------------------------------------------------------

# Local sub-catchment (km²) of each river gauge and the dam / pond catchments, and what flows into
# each gauge from upstream. The tributaries join the main river between KWS-R04 and KWS-R05
# (Sawai, at u = 0.47) and just below KWS-R09 (Kotake, at u = 0.86).
LOCAL_AREA_KM2 = {
    "KWS-D01": 25.0,
    "KWS-R01": 20.0,
    "KWS-R02": 25.0,
    "KWS-R03": 30.0,
    "KWS-R04": 35.0,
    "KWS-R05": 20.0,
    "KWS-R06": 15.0,
    "KWS-R07": 20.0,
    "KWS-R08": 25.0,
    "KWS-R09": 20.0,
    "KWS-R10": 25.0,
    "SWI-R01": 35.0,
    "SWI-F01": 25.0,
    "KTK-R01": 30.0,
    "KTK-R02": 30.0,
    "KTK-F01": 8.0,
}
POND_AREA_KM2 = 1.0  # an irrigation pond's own small catchment
UPSTREAM = {
    "KWS-R01": ("KWS-D01",),
    "KWS-R02": ("KWS-R01",),
    "KWS-R03": ("KWS-R02",),
    "KWS-R04": ("KWS-R03",),
    "SWI-F01": ("SWI-R01",),
    "KWS-R05": ("KWS-R04", "SWI-F01"),
    "KWS-R06": ("KWS-R05",),
    "KWS-R07": ("KWS-R06",),
    "KWS-R08": ("KWS-R07",),
    "KTK-R02": ("KTK-R01",),
    "KTK-F01": ("KTK-R02",),
    "KWS-R09": ("KWS-R08",),
    "KWS-R10": ("KWS-R09", "KTK-F01"),
}
CONFLUENCE_U = {"sawai": 0.47, "kotake": 0.86}

WAVE_CELERITY_KM_PER_H = 9.0  # 2.5 m/s: a flood wave in a short, steep river
ROUTING_ATTENUATION = 0.4  # the reach's linear-reservoir constant, as a fraction of its travel time
ROUTING_MIN_K = timedelta(minutes=10)
GROUNDWATER_M3S_PER_KM2 = 0.03  # base flow that keeps the rivers running between storms

# Two-tank runoff model, per 10-minute step (mm and fractions of storage).
TANK_QUICK_OUTLETS = ((12.0, 0.06), (40.0, 0.05))  # (height above the tank bottom in mm, outflow fraction)
TANK_INFILTRATION = 0.02  # upper tank -> lower tank
TANK_SLOW_OUTFLOW = 0.004  # lower tank -> river (a time constant of about 40 hours)
EVAPOTRANSPIRATION_MM = 0.015  # per step (about 2 mm a day)

# Reservoirs, per 10-minute step.
DRAWDOWN_FRACTION = {"dam": 1 / 72, "pond": 1 / 144}  # of the storage above the operating level
SPILLWAY_FRACTION = 1 / 6  # of the storage above 常時満水位

RATING_EXPONENT = 2.0  # Q = a (h - h0)^2: a wide, shallow channel
STAGE_NOISE_M = 0.004  # sensor noise, deterministic per gauge and time
# Base flow is not constant over a day: the valley's plants draw on it by day (evapotranspiration),
# so a calm river's stage dips in the afternoon and recovers by dawn, by a centimetre or two in a
# small river. Without it the demo's calm rivers read the same centimetre for days, which a real
# gauge does only when it is stuck (the flatline check, sensors.plausibility, flags 144 in a row).
DIURNAL_STAGE_M = 0.01
DIURNAL_LOW_HOUR_UTC = 6  # 15:00 JST, the afternoon low


def tide_gauges() -> list[StationSpec]:
    return [spec for spec in region.STATIONS if spec.kind == StationKind.TIDE]


def rain_gauges() -> list[StationSpec]:
    return [spec for spec in region.STATIONS if spec.kind == StationKind.RAIN]


def river_gauges() -> list[StationSpec]:
    return [spec for spec in region.STATIONS if spec.kind == StationKind.RIVER]


def reservoirs() -> list[StationSpec]:
    return [spec for spec in region.STATIONS if spec.kind == StationKind.RESERVOIR]


def _km(spec: StationSpec) -> tuple[float, float]:
    return region.valley_km(spec.u, spec.v_on_map)


def rain_weights(spec: StationSpec) -> dict[str, float]:
    """Inverse-distance (squared) weights of the rain gauges for the catchment at this station."""
    here = _km(spec)
    raw = {gauge.code: 1.0 / (math.dist(here, _km(gauge)) ** 2 + 1.0) for gauge in rain_gauges()}
    total = sum(raw.values())
    return {code: weight / total for code, weight in raw.items()}


def reach_km(upstream: StationSpec, downstream: StationSpec) -> float:
    """River distance a flood wave travels from one station to the next one down."""
    if upstream.river == downstream.river:
        return river_chainage_at(downstream) - river_chainage_at(upstream)
    confluence_u = CONFLUENCE_U[upstream.river]
    along_tributary = region.river_chainage_km(upstream.river, confluence_u) - river_chainage_at(upstream)
    along_main = river_chainage_at(downstream) - region.river_chainage_km(downstream.river, confluence_u)
    return along_tributary + along_main


def river_chainage_at(spec: StationSpec) -> float:
    return region.river_chainage_km(spec.river, spec.u)


def travel_time(upstream: StationSpec, downstream: StationSpec) -> timedelta:
    return timedelta(hours=reach_km(upstream, downstream) / WAVE_CELERITY_KM_PER_H)


def network_order() -> list[str]:
    """Flow-carrying stations (the dam and river gauges) with every station after all its upstream ones."""
    order: list[str] = []

    def visit(code: str) -> None:
        if code in order:
            return
        for upstream in UPSTREAM.get(code, ()):
            visit(upstream)
        order.append(code)

    for code in LOCAL_AREA_KM2:
        visit(code)
    return order


def base_flow_m3s(code: str) -> float:
    """Calm-weather discharge at a gauge: the groundwater flow of everything that drains to it."""
    return GROUNDWATER_M3S_PER_KM2 * LOCAL_AREA_KM2[code] + sum(base_flow_m3s(up) for up in UPSTREAM.get(code, ()))


def mm_to_m3s(depth_mm: float, area_km2: float) -> float:
    """A runoff depth per step over an area, as a discharge."""
    return depth_mm * area_km2 * 1000.0 / STEP_SECONDS


# --- components ---------------------------------------------------------------------------------


@dataclass
class TankModel:
    """Two stacked tanks per catchment (mm of water over the catchment)."""

    upper: float = 0.0
    lower: float = 0.0

    def step(self, rain_mm: float) -> tuple[float, float]:
        """Add one step's rain; returns (runoff, evapotranspiration) in mm for the step."""
        self.upper += rain_mm
        evaporated = 0.0 if rain_mm > 0 else min(EVAPOTRANSPIRATION_MM, self.upper)
        self.upper -= evaporated
        quick = 0.0
        for height, fraction in TANK_QUICK_OUTLETS:
            if self.upper > height:
                quick += fraction * (self.upper - height)
        infiltration = TANK_INFILTRATION * self.upper
        self.upper -= quick + infiltration
        self.lower += infiltration
        slow = TANK_SLOW_OUTFLOW * self.lower
        self.lower -= slow
        return quick + slow, evaporated

    @property
    def stored(self) -> float:
        return self.upper + self.lower


@dataclass
class Reach:
    """Lag-and-route: the inflow as it was `lag` ago, through a linear reservoir of constant `k`."""

    lag: timedelta
    k: timedelta
    initial_flow: float
    history: list[float] = field(default_factory=list)
    outflow: float = 0.0

    def __post_init__(self):
        self.outflow = self.initial_flow
        self._decay = math.exp(-STEP / self.k)
        lag_steps = self.lag / STEP
        self._whole, self._fraction = int(lag_steps), lag_steps - int(lag_steps)
        self.history = [self.initial_flow] * (self._whole + 2)

    def step(self, inflow: float) -> float:
        self.history.append(inflow)
        del self.history[0]
        # history[-1] is now, history[-1 - n] was n steps ago: interpolate between whole steps.
        newer = self.history[-1 - self._whole]
        older = self.history[-2 - self._whole]
        lagged = newer + (older - newer) * self._fraction
        self.outflow = lagged + (self.outflow - lagged) * self._decay
        return self.outflow


@dataclass
class Reservoir:
    """Storage in m³: fills from inflow; releases compensation flow, a drawdown and spillway flow."""

    operating_volume: float  # the calm-weather storage
    full_volume: float  # 常時満水位: 100 %
    compensation_m3s: float  # released in calm weather, equal to the calm inflow
    drawdown: float
    volume: float = -1.0

    def __post_init__(self):
        if self.volume < 0:
            self.volume = self.operating_volume

    def step(self, inflow_m3s: float) -> float:
        """One step; returns the outflow in m³/s."""
        self.volume += inflow_m3s * STEP_SECONDS
        released = (
            self.compensation_m3s * STEP_SECONDS * min(self.volume / self.operating_volume, 1.0)
            + self.drawdown * max(self.volume - self.operating_volume, 0.0)
            + SPILLWAY_FRACTION * max(self.volume - self.full_volume, 0.0)
        )
        released = min(released, self.volume)
        self.volume -= released
        return released / STEP_SECONDS

    @property
    def storage_rate(self) -> float:
        return 100.0 * self.volume / self.full_volume


@dataclass(frozen=True)
class RatingCurve:
    """Q = a (h - h0)^2, h in metres of stage at the gauge."""

    a: float
    h0: float

    def stage(self, discharge: float) -> float:
        return self.h0 + math.sqrt(max(discharge, 0.0) / self.a)

    @classmethod
    def through(cls, calm: tuple[float, float], design: tuple[float, float]) -> RatingCurve:
        """The curve through two (discharge, stage) points."""
        (q1, h1), (q2, h2) = calm, design
        ratio = math.sqrt(q2 / q1)
        h0 = (h2 - ratio * h1) / (1 - ratio)
        return cls(a=q1 / (h1 - h0) ** RATING_EXPONENT, h0=h0)


# --- the basin ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Calibration:
    ratings: dict[str, RatingCurve]
    full_volumes: dict[str, float]  # m³ at 常時満水位 per reservoir


@dataclass
class BasinState:
    """Everything the basin remembers between steps."""

    tanks: dict[str, TankModel]
    reaches: dict[tuple[str, str], Reach]
    reservoirs: dict[str, Reservoir]
    flows: dict[str, float]  # m³/s leaving each flow-carrying station at the last step


class Basin:
    """Steps the whole basin forward one 10-minute step at a time from the rain gauges' readings."""

    def __init__(self, calibration: Calibration | None):
        self.calibration = calibration
        self.specs = {spec.code: spec for spec in region.STATIONS}
        self.order = network_order()
        self.weights = {code: rain_weights(self.specs[code]) for code in self.order}
        self.weights.update({spec.code: rain_weights(spec) for spec in reservoirs()})
        full = calibration.full_volumes if calibration else {}
        self.state = BasinState(
            tanks={code: TankModel() for code in self.weights},
            reaches={
                (up, code): Reach(
                    lag=travel_time(self.specs[up], self.specs[code]),
                    k=max(travel_time(self.specs[up], self.specs[code]) * ROUTING_ATTENUATION, ROUTING_MIN_K),
                    initial_flow=base_flow_m3s(up),
                )
                for code, ups in UPSTREAM.items()
                for up in ups
            },
            reservoirs={spec.code: self._reservoir(spec, full.get(spec.code)) for spec in reservoirs()},
            flows={code: base_flow_m3s(code) for code in self.order},
        )
        self.inflows: dict[str, float] = {}  # m³/s into each reservoir at the last step
        self.outflows: dict[str, float] = {}  # m³/s out of each reservoir at the last step
        self.runoff_mm: dict[str, float] = {}
        self.evaporated_mm: dict[str, float] = {}

    def _reservoir(self, spec: StationSpec, full_volume: float | None) -> Reservoir:
        # Before calibration the volume is "big enough never to spill", which calibration corrects.
        full = full_volume or 1e12
        kind = "dam" if spec.code in LOCAL_AREA_KM2 else "pond"
        return Reservoir(
            operating_volume=full * spec.base / 100,
            full_volume=full,
            compensation_m3s=GROUNDWATER_M3S_PER_KM2 * self._area(spec.code),
            drawdown=DRAWDOWN_FRACTION[kind],
        )

    def _area(self, code: str) -> float:
        return LOCAL_AREA_KM2.get(code, POND_AREA_KM2)

    def catchment_rain(self, code: str, rain: dict[str, float]) -> float:
        return sum(weight * rain[gauge] for gauge, weight in self.weights[code].items() if rain.get(gauge))

    def step(self, rain: dict[str, float]) -> dict[str, float]:
        """Advance one step with each rain gauge's reading (mm); returns m³/s at every flow station."""
        state = self.state
        wet = any(rain.values())
        for code, tank in state.tanks.items():
            catchment_rain = self.catchment_rain(code, rain) if wet else 0.0
            self.runoff_mm[code], self.evaporated_mm[code] = tank.step(catchment_rain)
        for spec in reservoirs():
            if spec.code in LOCAL_AREA_KM2:
                continue  # the dam is on the river: stepped in network order below
            inflow = mm_to_m3s(self.runoff_mm[spec.code], POND_AREA_KM2) + state.reservoirs[spec.code].compensation_m3s
            self.inflows[spec.code] = inflow
            self.outflows[spec.code] = state.reservoirs[spec.code].step(inflow)
        for code in self.order:
            local = mm_to_m3s(self.runoff_mm[code], LOCAL_AREA_KM2[code]) + GROUNDWATER_M3S_PER_KM2 * LOCAL_AREA_KM2[code]
            routed = sum(state.reaches[(up, code)].step(state.flows[up]) for up in UPSTREAM.get(code, ()))
            if code in state.reservoirs:
                self.inflows[code] = local + routed
                state.flows[code] = self.outflows[code] = state.reservoirs[code].step(local + routed)
            else:
                state.flows[code] = local + routed
        return dict(state.flows)

    def values(self, at: datetime) -> dict[str, float]:
        """What each river gauge and reservoir measures now (stage in m, storage rate in %)."""
        if self.calibration is None:
            raise ValueError("an uncalibrated basin has no stages")
        values = {}
        for spec in river_gauges():
            stage = self.calibration.ratings[spec.code].stage(self.state.flows[spec.code])
            values[spec.code] = stage + _tide(spec, at) + _diurnal(at) + _noise(spec.code, at)
        for code, reservoir in self.state.reservoirs.items():
            values[code] = reservoir.storage_rate
        return values


TIDE_PERIOD = timedelta(hours=12.42)  # principal lunar semidiurnal tide (M2)


def _diurnal(at: datetime) -> float:
    hours = (at - EPOCH) / timedelta(hours=1) - DIURNAL_LOW_HOUR_UTC
    return -DIURNAL_STAGE_M * math.cos(2 * math.pi * hours / 24)


def _tide(spec: StationSpec, at: datetime) -> float:
    if not spec.tide_amplitude:
        return 0.0
    return spec.tide_amplitude * math.sin(2 * math.pi * (at - EPOCH) / TIDE_PERIOD)


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# --- the sea at the harbour's tide gauge ---------------------------------------------------------

# The storm's winds and low pressure pile the sea up (高潮) a little after the rain peaks at the
# coast, for a few hours: a bell of `storm_response` metres (design storm) around that time.
SURGE_LAG = timedelta(hours=1)
SURGE_HALF_WIDTH = timedelta(hours=3)


def surge_m(spec: StationSpec, storms: Iterable[Storm], at: datetime) -> float:
    total = 0.0
    for storm in storms:
        peak = storm.start + storm.drift * spec.u + storm.time_to_peak + SURGE_LAG
        x = (at - peak) / SURGE_HALF_WIDTH
        if abs(x) < 6:
            total += spec.storm_response * storm.scale * math.exp(-x * x)
    return total


def tide_level(spec: StationSpec, storms: Iterable[Storm], at: datetime) -> float:
    """Mean sea level + the astronomical tide (the gauge's own harmonic constants, as the seed stores
    them for the baseline, sensors.tide) + the storm surge; what the gauge measures, above T.P."""
    return tide_predict(region.tide_harmonics(spec), [at])[0] + surge_m(spec, storms, at) + _noise(spec.code, at)


@cache
def _code_hash(code: str) -> int:
    return sum(ord(char) * 31**i for i, char in enumerate(code)) & 0xFFFFFFFF


def _noise(code: str, at: datetime) -> float:
    """A small, deterministic wobble (a 32-bit integer hash of the gauge and the step)."""
    x = (_code_hash(code) * 2654435761 + int((at - EPOCH) / STEP) * 40503) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 2246822519) & 0xFFFFFFFF
    x ^= x >> 13
    return STAGE_NOISE_M * (x / 0xFFFFFFFF * 2 - 1)


# --- calibration --------------------------------------------------------------------------------

DESIGN_STORM_START = datetime(2000, 1, 1, tzinfo=UTC)
DESIGN_STORM_LENGTH = timedelta(hours=30)


def design_storm(start: datetime = DESIGN_STORM_START) -> Storm:
    """The storm the basin's channels and reservoirs are sized against (and the demo's main storm)."""
    return Storm(start=start)


@lru_cache(maxsize=1)
def calibration() -> Calibration:
    """Rating curves and reservoir volumes that make the design storm reach each station's
    `storm_response` above calm: the fictional basin's survey."""
    storm = design_storm()
    basin = Basin(None)
    peak_flow = dict.fromkeys(basin.order, 0.0)
    peak_excess = dict.fromkeys(basin.state.reservoirs, 0.0)
    for at in grid(storm.start + STEP, storm.start + DESIGN_STORM_LENGTH):
        flows = basin.step({spec.code: rain_reading(spec, [storm], at) for spec in rain_gauges()})
        for code, flow in flows.items():
            peak_flow[code] = max(peak_flow[code], flow)
        for code, reservoir in basin.state.reservoirs.items():
            peak_excess[code] = max(peak_excess[code], reservoir.volume - reservoir.operating_volume)
    ratings = {
        spec.code: RatingCurve.through(
            (base_flow_m3s(spec.code), spec.base), (peak_flow[spec.code], spec.base + spec.storm_response)
        )
        for spec in river_gauges()
    }
    # Below the spillway the storage above the operating level does not depend on the volume,
    # so the volume that turns the design storm's excess into `storm_response` % follows directly.
    full_volumes = {
        spec.code: peak_excess[spec.code] * 100 / spec.storm_response for spec in reservoirs()
    }
    return Calibration(ratings=ratings, full_volumes=full_volumes)


def grid(start: datetime, end: datetime) -> Iterator[datetime]:
    """10-minute grid times from the first at or after `start` up to and including `end`."""
    at = grid_ceil(start)
    while at <= end:
        yield at
        at += STEP


def grid_floor(at: datetime) -> datetime:
    steps = math.floor((at - EPOCH) / STEP)
    return EPOCH + steps * STEP


def grid_ceil(at: datetime) -> datetime:
    floor = grid_floor(at)
    return floor if floor == at else floor + STEP


# --- what the gauges send -----------------------------------------------------------------------

VALUE_DECIMALS = {StationKind.RIVER: 2, StationKind.RAIN: 1, StationKind.RESERVOIR: 1, StationKind.TIDE: 2}


def as_reported(spec: StationSpec, value: float) -> float | None:
    """A true value as the gauge sends it: rounded, within physical limits; None for a flood gauge
    (危機管理型水位計) below its start level, which sends nothing."""
    low, high, decimals = _reporting(spec.kind)
    value = round(min(max(value, low), high), decimals)
    if spec.start_level is not None and value < spec.start_level:
        return None
    return value


@cache
def _reporting(kind: str) -> tuple[float, float, int]:
    low, high = PHYSICAL_LIMITS[StationKind(kind)]
    return low, high, VALUE_DECIMALS[StationKind(kind)]


@dataclass(frozen=True)
class Snapshot:
    at: datetime
    values: dict[str, float | None]  # per station code: what it sends (None: nothing)
    flows: dict[str, float]
    rain_mm: dict[str, float]


class BasinRun:
    """The basin driven by a weather timeline, stepped forward on demand (for history and live ticks)."""

    def __init__(self, storms_until, start: datetime):
        """`storms_until(t)` gives the storms that may have rained by time t; the basin starts calm at `start`."""
        self.storms_until = storms_until
        self.basin = Basin(calibration())
        self.at = grid_floor(start)
        self.gauges = rain_gauges()
        storms = storms_until(self.at)
        self.tips = {spec.code: tips(cumulative_rain(spec, storms, self.at)) for spec in self.gauges}

    def advance(self) -> Snapshot:
        """One step on: the same readings as `rain_reading`, remembering the last tip counts."""
        self.at += STEP
        storms = self.storms_until(self.at)
        rain = {}
        for spec in self.gauges:
            now_tips = tips(cumulative_rain(spec, storms, self.at))
            rain[spec.code] = (now_tips - self.tips[spec.code]) * TIP_MM
            self.tips[spec.code] = now_tips
        flows = self.basin.step(rain)
        measured = self.basin.values(self.at) | rain
        measured |= {spec.code: tide_level(spec, storms, self.at) for spec in tide_gauges()}
        values = {spec.code: as_reported(spec, measured[spec.code]) for spec in region.STATIONS}
        return Snapshot(at=self.at, values=values, flows=flows, rain_mm=rain)

    def run_until(self, end: datetime) -> Iterator[Snapshot]:
        while self.at + STEP <= end:
            yield self.advance()
