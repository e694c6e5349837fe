"""The one trend rule: is a station rising, steady or falling? Used by the map, the API, the live
layer, the station page and the alert board alike, so no two doors can disagree.

It compares over a window (TREND_WINDOW) rather than between the last two readings: a river rising
1 cm every 10 minutes is rising, though each step is within the gauge's noise.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Iterable, NamedTuple

from django.db import connection
from django.db.models import F, Prefetch

from bulkwrite import pg_array

from .models import Observation, StationKind, StationState

TREND_WINDOW = timedelta(minutes=30)
# Changes up to this much over TREND_WINDOW are sensor noise and read as steady: river stages are read
# (and tide levels) to the centimetre, storage rates to a tenth of a percent, and rain gauges tip in
# 0.5 mm steps.
TREND_STEADY_BAND = {
    StationKind.RIVER: 0.02, StationKind.RESERVOIR: 0.5, StationKind.RAIN: 0.5, StationKind.TIDE: 0.02,
}
# What a station list prefetches so each station's trend needs no query of its own (the look-back):
# rain compares the latest window with the one before it, so two windows.
TREND_READINGS_ATTR = "trend_readings"
TREND_LOOKBACK = 2 * TREND_WINDOW
# The window for readings whose times are integer microseconds since the epoch (the live publisher's).
TREND_WINDOW_MICROS = TREND_WINDOW // timedelta(microseconds=1)


def trend_reads_edges_only(kind: str) -> bool:
    """Whether `reading_trend` reads only two of a station's readings: the newest usable one and the
    oldest usable one inside the window before it (every kind but rain, which sums two windows). A
    reader holding many readings per station (the live publisher in a storm) may then fetch just
    those two, and the rule gives the same answer."""
    return kind != StationKind.RAIN


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


def trend_readings_of(kinds: dict[int, str]) -> dict[int, list[Reading]]:
    """The look-back of each station ({station id: kind} in): the readings its trend is judged on, as
    plain `Reading`s with their times in integer microseconds since the epoch (judge them with
    `TREND_WINDOW_MICROS`), and only the ones `reading_trend` counts (it drops quality-flagged ones
    first). No timestamp is parsed and no tuple or model instance built per reading: in a storm batch,
    or a list of 2,000 stations, those cost more than the rest of a feature.

    On PostgreSQL one statement. Where the rule reads only the window's edges
    (`trend_reads_edges_only`: every kind but rain) just those two readings are fetched, each by one
    probe of the (station, observed_at) index: in a storm a gauge reporting every few seconds has
    hundreds of readings in the look-back, and fetching them all was most of the live publisher's time
    (and PostgreSQL's). Rain gauges get their readings as two arrays per station."""
    from .services import _TO_MICROS, to_micros

    by_station: dict[int, list[Reading]] = {pk: [] for pk in kinds}
    if not by_station:
        return by_station
    ok = str(Observation.Quality.OK)
    if connection.vendor == "postgresql":
        edges = [pk for pk, kind in kinds.items() if trend_reads_edges_only(kind)]
        every = [pk for pk, kind in kinds.items() if not trend_reads_edges_only(kind)]
        observations = connection.ops.quote_name(Observation._meta.db_table)
        states = connection.ops.quote_name(StationState._meta.db_table)
        micros = _TO_MICROS.format
        sql = f"""
            SELECT x.station_id, ARRAY[{micros("f.observed_at")}, {micros("n.observed_at")}], ARRAY[f.value, n.value]
            FROM unnest(%(edges)s::bigint[]) AS x (station_id)
            JOIN {states} s ON s.station_id = x.station_id
            CROSS JOIN LATERAL (
                SELECT o.observed_at, o.value FROM {observations} o
                WHERE o.station_id = x.station_id AND o.quality = %(ok)s AND o.observed_at > s.observed_at - %(lookback)s
                ORDER BY o.observed_at DESC LIMIT 1) n
            CROSS JOIN LATERAL (
                SELECT o.observed_at, o.value FROM {observations} o
                WHERE o.station_id = x.station_id AND o.quality = %(ok)s AND o.observed_at > s.observed_at - %(lookback)s
                  AND o.observed_at >= n.observed_at - %(window)s
                ORDER BY o.observed_at LIMIT 1) f
            UNION ALL
            SELECT o.station_id, array_agg({micros("o.observed_at")} ORDER BY o.observed_at),
                   array_agg(o.value ORDER BY o.observed_at)
            FROM {observations} o
            JOIN {states} s ON s.station_id = o.station_id
            WHERE o.station_id = ANY(%(every)s::bigint[]) AND o.quality = %(ok)s AND o.observed_at > s.observed_at - %(lookback)s
            GROUP BY o.station_id"""
        params = {
            "edges": pg_array(edges), "every": pg_array(every), "ok": ok, "lookback": TREND_LOOKBACK,
            "window": TREND_WINDOW,
        }
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            for station_id, times, values in cursor.fetchall():
                if len(times) == 2 and times[0] == times[1]:  # the window's oldest reading is its newest
                    times, values = times[1:], values[1:]
                by_station[station_id] = [Reading(at, value, ok) for at, value in zip(times, values)]
    else:
        ids = list(by_station)
        for start in range(0, len(ids), 2000):
            for station_id, observed_at, value in (
                Observation.objects.filter(
                    station_id__in=ids[start : start + 2000], quality=ok,
                    observed_at__gt=F("station__state__observed_at") - TREND_LOOKBACK,
                )
                .order_by("station_id", "observed_at")
                .values_list("station_id", "observed_at", "value")
            ):
                by_station[station_id].append(Reading(to_micros(observed_at), value, ok))
    return by_station


class TrendReadings(list):
    """One station's look-back as `trend_readings_of` reads it (`Reading`s, oldest first, times in
    integer microseconds; for every kind but rain only the window's edges), as attached to a station by
    `trend_readings_prefetch`."""

    __slots__ = ("station_id",)

    def __init__(self, station_id: int, readings: list[Reading]):
        super().__init__(readings)
        self.station_id = station_id


def trend_lookbacks(stations) -> list[TrendReadings]:
    """`Station.trend_lookback`'s prefetch: the look-back of each of these stations, one query."""
    return [TrendReadings(pk, readings) for pk, readings in trend_readings_of({s.pk: s.kind for s in stations}).items()]


def trend_readings_prefetch() -> Prefetch:
    """For a station queryset (or `prefetch_related_objects` on a list of stations): each station's
    look-back, the readings of the last TREND_LOOKBACK before its latest one, in one query for all
    of them (`TrendLookback`)."""
    return Prefetch("trend_lookback", to_attr=TREND_READINGS_ATTR)


def station_trend(station) -> str | None:
    """The trend of a station fetched with `trend_readings_prefetch` (None without it: no data)."""
    return reading_trend(station.kind, getattr(station, TREND_READINGS_ATTR, None) or (), window=TREND_WINDOW_MICROS)
