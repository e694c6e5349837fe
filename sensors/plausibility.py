"""Plausibility limits of a station's readings: the one place both ingestion's quality flags and the
alert evaluator's jump/spike check take them from.

The limits are data on the station (`Station.plausible_min` ... `Station.flatline_readings`); an empty
field means the default of the station's kind below. `seed_plausibility_limits` fills them from a
station's own history.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import numpy as np

from .models import PHYSICAL_LIMITS, StationKind


class Plausibility(NamedTuple):
    low: float  # a reading below is flagged "range"
    high: float  # a reading above is flagged "range"
    max_step: float | None  # believable change between two readings at no time apart (None: not judged)
    max_rate: float | None  # ...plus this much per hour between them
    flatline_readings: int | None  # this many identical readings in a row are flagged "flatline" (None: off)


# Per kind: a river stage (m) or storage rate (%) cannot move further than a fixed slack for gauge
# noise plus a rate times the time between two readings. A real flash flood can outrun this (more
# than 1 m in 10 minutes): its first reading is flagged, raises an unconfirmed alert at once
# (alerts.services) and is confirmed by the next one, so a tight limit costs no warning time. Rain may burst, so its steps are never judged, and
# a dry gauge repeats 0 mm for days. A reservoir held at full supply level may read the same for days.
# A river at base flow can read the same centimetre for hours, but not for a whole day of 10-minute
# readings (daily evaporation and diurnal flow move it).
KIND_DEFAULTS = {
    StationKind.RIVER: Plausibility(*PHYSICAL_LIMITS[StationKind.RIVER], 0.5, 3.0, 144),
    StationKind.RAIN: Plausibility(*PHYSICAL_LIMITS[StationKind.RAIN], None, None, None),
    StationKind.RESERVOIR: Plausibility(*PHYSICAL_LIMITS[StationKind.RESERVOIR], 5.0, 20.0, None),
    # A tide moves up to about 1 m an hour in the Ariake Sea and a storm surge faster; the slack takes
    # the swell the stilling well does not damp. It turns twice a day: never flat for long, but slack
    # water can repeat a centimetre for a while, so no flatline check by default.
    StationKind.TIDE: Plausibility(*PHYSICAL_LIMITS[StationKind.TIDE], 0.5, 3.0, None),
}


def plausibility_of(kind: str, low=None, high=None, max_step=None, max_rate=None, flatline_readings=None) -> Plausibility:
    """A station's limits from its fields (empty ones from its kind's defaults)."""
    default = KIND_DEFAULTS[StationKind(kind)]
    return Plausibility(
        default.low if low is None else low,
        default.high if high is None else high,
        default.max_step if max_step is None else max_step,
        default.max_rate if max_rate is None else max_rate,
        default.flatline_readings if flatline_readings is None else (flatline_readings or None),
    )


def station_plausibility(station) -> Plausibility:
    return plausibility_of(
        station.kind, station.plausible_min, station.plausible_max, station.max_step, station.max_rate_per_hour,
        station.flatline_readings,
    )


def in_range(limits: Plausibility, value: float) -> bool:
    return limits.low <= value <= limits.high


def is_jump(limits: Plausibility, from_value: float, to_value: float, seconds: float) -> bool:
    """Whether moving from one reading to another `seconds` later is more than the station can do."""
    if limits.max_step is None:
        return False
    return abs(to_value - from_value) > _allowed_step(limits, max(seconds, 0.0))


def neighbour_jumps(limits: Plausibility, times: np.ndarray, values: np.ndarray) -> np.ndarray:
    """`is_jump` from each reading to the next (epoch seconds, oldest first), for all pairs at once:
    the same arithmetic elementwise, so the same answers."""
    if limits.max_step is None or len(values) < 2:
        return np.zeros(max(len(values) - 1, 0), dtype=bool)
    return np.abs(np.diff(values)) > _allowed_step(limits, np.maximum(np.diff(times), 0.0))


def _allowed_step(limits: Plausibility, seconds):
    return limits.max_step + (limits.max_rate or 0.0) * seconds / 3600.0


# History shorter than this (a day of 10-minute readings) says too little; the kind's defaults stay.
MIN_HISTORY_READINGS = 144
# Seeded limits leave this much room above what the station's history shows.
HISTORY_HEADROOM = 1.5


def limits_from_history(kind: str, times: Sequence[float], values: Sequence[float]) -> dict | None:
    """Station fields seeded from its good readings (epoch seconds, oldest first); None when there are
    too few to judge.

    History only ever widens the step, rate and flatline limits beyond the kind's defaults: a calm
    record must not flag the first real flood. The range closes in on what the gauge has shown, with
    the whole observed span again as room on either side (never beyond the kind's physical limits);
    a reading beyond is stored flagged "range", and a flagged reading above a level-3 threshold still
    raises an unconfirmed alert. Rain keeps its kind's limits: a record downpour is not a fault.
    """
    default = KIND_DEFAULTS[StationKind(kind)]
    if kind == StationKind.RAIN or len(values) < MIN_HISTORY_READINGS:
        return None
    times, values = np.asarray(times, dtype=float), np.asarray(values, dtype=float)
    low, high = float(values.min()), float(values.max())
    span = high - low
    steps = np.abs(np.diff(values))
    gaps = np.diff(times)
    close = gaps <= 3600.0  # consecutive readings across a long outage say nothing of a step
    largest_step = float(steps[close].max()) if close.any() else 0.0
    hour_before = np.searchsorted(times, times - 3600.0)
    largest_hourly = float(np.abs(values - values[hour_before]).max())
    run, longest = 1, 1
    for same in values[1:] == values[:-1]:
        run = run + 1 if same else 1
        longest = max(longest, run)
    flatline = default.flatline_readings
    if flatline is not None and longest * HISTORY_HEADROOM > flatline:
        flatline = math.ceil(longest * HISTORY_HEADROOM)
    return {
        "plausible_min": round(max(default.low, low - span), 3),
        "plausible_max": round(min(default.high, high + span), 3),
        "max_step": round(max(default.max_step, largest_step * HISTORY_HEADROOM), 3),
        "max_rate_per_hour": round(max(default.max_rate, largest_hourly * HISTORY_HEADROOM), 3),
        "flatline_readings": flatline if flatline is not None else 0,
    }
