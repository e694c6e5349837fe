"""The one trend rule: is a station rising, steady or falling? Used by the map, the API, the live
layer, the station page and the alert board alike, so no two doors can disagree.

It compares over a window (TREND_WINDOW) rather than between the last two readings: a river rising
1 cm every 10 minutes is rising, though each step is within the gauge's noise.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Iterable, NamedTuple

from django.db.models import F, Prefetch

from .models import Observation, StationKind

TREND_WINDOW = timedelta(minutes=30)
# Changes up to this much over TREND_WINDOW are sensor noise and read as steady: river stages are read
# (and tide levels) to the centimetre, storage rates to a tenth of a percent, and rain gauges tip in
# 0.5 mm steps.
TREND_STEADY_BAND = {
    StationKind.RIVER: 0.02, StationKind.RESERVOIR: 0.5, StationKind.RAIN: 0.5, StationKind.TIDE: 0.02,
}
# What a station list prefetches so each station's trend needs no query of its own: rain compares
# the latest window with the one before it, so two windows.
TREND_READINGS_ATTR = "trend_readings"
TREND_LOOKBACK = 2 * TREND_WINDOW
# The window for readings whose times are integer microseconds since the epoch (the live publisher's).
TREND_WINDOW_MICROS = TREND_WINDOW // timedelta(microseconds=1)


class Reading(NamedTuple):
    observed_at: datetime | int  # or integer microseconds since the epoch, with a window in microseconds
    value: float
    quality: str


def reading_trend(kind: str, readings: Iterable[Reading | tuple], *, window: timedelta | int = TREND_WINDOW) -> str | None:
    """"rising", "steady" or "falling" over the `window` before the newest reading (oldest first in
    `readings`); None when too little is known (or, for rain, when no rain fell in the last two windows).
    Times and window in one unit: datetimes and a timedelta, or integer microseconds and an int.

    Rain compares the total of the latest window with the window before it; stages and storage
    compare the newest reading with the oldest one inside the window. Quality-flagged readings don't count.
    """
    # By position (time, value, quality): plain tuples do as well as Readings, so an as-of map need
    # not wrap its 12,000 rows again.
    ok = Observation.Quality.OK
    usable = [reading for reading in readings if reading[2] == ok]
    if not usable:
        return None
    newest = usable[-1][0]
    if kind == StationKind.RAIN:
        recent = sum(r[1] for r in usable if r[0] > newest - window)
        before = sum(r[1] for r in usable if newest - 2 * window < r[0] <= newest - window)
        if recent == 0 and before == 0:
            return None
        change = recent - before
    else:
        in_window = [r for r in usable if r[0] >= newest - window]
        if len(in_window) < 2:
            return None
        change = in_window[-1][1] - in_window[0][1]
    band = TREND_STEADY_BAND.get(kind, 0.0)
    # Readings are decimal: 1.22 - 1.20 is 0.020000000000000018 in binary, and must read as 2 cm.
    change = round(change, 9)
    if change > band:
        return "rising"
    if change < -band:
        return "falling"
    return "steady"


def trend_readings_prefetch() -> Prefetch:
    """For a station queryset: the readings of the last TREND_LOOKBACK before each station's latest
    one, in one query for all of them (the (station, observed_at) index serves it)."""
    return Prefetch(
        "observations",
        queryset=Observation.objects.filter(observed_at__gt=F("station__state__observed_at") - TREND_LOOKBACK)
        .order_by("observed_at")
        .only("station_id", "observed_at", "value", "quality"),
        to_attr=TREND_READINGS_ATTR,
    )


def station_trend(station) -> str | None:
    """The trend of a station fetched with `trend_readings_prefetch` (None without it: no data)."""
    observations = getattr(station, TREND_READINGS_ATTR, None) or []
    return reading_trend(station.kind, [Reading(o.observed_at, o.value, o.quality) for o in observations])
