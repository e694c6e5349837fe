"""Reads for the dashboard pages. Tenant data comes only through `sensors.selectors` with a viewer."""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

from django.utils import timezone

from sensors.models import Station, StationKind
from sensors.selectors import features_as_of, observation_range, station_feature, station_get, station_list
from sensors.trends import Reading, reading_trend
from tenancy.selectors import Viewer

# Residents are told about stations from this level up (警戒レベル2: check how to evacuate).
NOTICE_LEVEL = 2


@dataclass(frozen=True)
class MapStation:
    """A visible station with its contract-shaped GeoJSON feature (see /api/v1/stations)."""

    station: Station
    feature: dict

    @property
    def level(self) -> int | None:
        return self.feature["properties"]["level"]

    @property
    def stale(self) -> bool:
        return self.feature["properties"]["stale"]


def map_stations(*, viewer: Viewer) -> list[MapStation]:
    """Every active station the viewer may see, ready to draw; a fixed number of queries."""
    now = timezone.now()
    return [MapStation(station, station_feature(station, now=now)) for station in station_list(viewer=viewer)]


def features_needing_notice(features: Iterable[dict], *, min_level: int = NOTICE_LEVEL) -> list[dict]:
    """Station features at `min_level` or above, most severe first."""
    raised = [f for f in features if f["properties"]["level"] is not None and f["properties"]["level"] >= min_level]
    return sorted(raised, key=lambda f: (-f["properties"]["level"], f["properties"]["code"]))


# --- one station's page: its readings over a chosen span -------------------------------------------

# A 7-day page for a 1-minute gauge is about 10,000 readings. This caps a faulty gauge that reports
# every second from making the page (and the server) heavy; the CSV download still has every reading.
STATION_PAGE_MAX_READINGS = 20_000
# Rain is charted as 10-minute amounts (a gauge may report more often) with the running 1-hour
# total, the window of the national heavy-rain criteria.
RAIN_BIN = timedelta(minutes=10)
RAIN_RUNNING_TOTAL = timedelta(hours=1)


@dataclass(frozen=True)
class RainBin:
    """The rain of one 10-minute interval ending at `end`; None where no reading came in."""

    end: datetime
    amount: float | None
    running_total: float | None  # the hour ending at `end`, from the readings that came in


@dataclass(frozen=True)
class StationHistory:
    """A visible station, its contract-shaped feature and its readings in [since, until]."""

    station: Station
    feature: dict
    since: datetime
    until: datetime
    readings: list[Reading]  # oldest first
    lead_in: list[Reading]  # the hour before `since`, for rain running totals; empty otherwise
    truncated: bool  # more than STATION_PAGE_MAX_READINGS: only the newest were loaded

    @property
    def trend(self) -> str | None:
        return reading_trend(self.station.kind, self.lead_in + self.readings)

    def rain_intervals(self) -> list[RainBin]:
        return rain_bins(self.lead_in + self.readings, since=self.since, until=self.until)


def station_history(
    *, viewer: Viewer, code: str, since: datetime, until: datetime, as_of: bool = False
) -> StationHistory:
    """One station's page data in a fixed number of queries; raises Station.DoesNotExist alike for
    missing and not-visible stations. `as_of`: the feature is the station as it stood at `until`
    (the as-of read of the map, `features_as_of`), not now."""
    station = station_get(viewer=viewer, code=code)
    feature = features_as_of([station], until)[0] if as_of else station_feature(station, now=timezone.now())
    lead_in_start = since - RAIN_RUNNING_TOTAL if station.kind == StationKind.RAIN else since
    newest_first = list(
        observation_range(station=station, since=lead_in_start, until=until)
        .order_by("-observed_at")
        .values_list("observed_at", "value", "quality")[: STATION_PAGE_MAX_READINGS + 1]
    )
    truncated = len(newest_first) > STATION_PAGE_MAX_READINGS
    readings = [Reading(*row) for row in reversed(newest_first[:STATION_PAGE_MAX_READINGS])]
    split = bisect_left([reading.observed_at for reading in readings], since)
    return StationHistory(
        station=station,
        feature=feature,
        since=since,
        until=until,
        readings=readings[split:],
        lead_in=readings[:split],
        truncated=truncated,
    )


def rain_bins(readings: list[Reading], *, since: datetime, until: datetime) -> list[RainBin]:
    """Every 10-minute interval from `since` to `until` (the last may still be filling up).

    A reading stamped 10:10 is the rain of 10:00-10:10, so each reading goes to the interval that
    ends at or after it. `readings` should start an hour before `since` so the first running totals
    are whole.
    """
    step = int(RAIN_BIN.total_seconds())
    amounts: dict[int, float] = defaultdict(float)
    for reading in readings:
        amounts[math.ceil(reading.observed_at.timestamp() / step) * step] += reading.value
    first_end = math.floor(since.timestamp() / step) * step + step
    last_end = math.ceil(until.timestamp() / step) * step
    per_total = int(RAIN_RUNNING_TOTAL.total_seconds()) // step
    bins = []
    for end in range(first_end, last_end + 1, step):
        amount = amounts.get(end)
        window = [amounts[e] for e in range(end - (per_total - 1) * step, end + 1, step) if e in amounts]
        bins.append(
            RainBin(
                end=datetime.fromtimestamp(end, tz=dt_timezone.utc),
                amount=None if amount is None else round(amount, 3),
                running_total=None if amount is None else round(sum(window), 3),
            )
        )
    return bins


def thin_series(points: list[tuple[float, float]], *, limit: int) -> list[tuple[float, float]]:
    """At most about `limit` points of a time series, keeping each stretch's lowest and highest
    reading, so that thinning never hides a flood peak (plain sampling would)."""
    if len(points) <= limit:
        return points
    per_bucket = math.ceil(len(points) / (limit // 2))
    thinned: list[tuple[float, float]] = []
    for start in range(0, len(points), per_bucket):
        bucket = points[start : start + per_bucket]
        low = min(bucket, key=lambda point: point[1])
        high = max(bucket, key=lambda point: point[1])
        thinned.extend(sorted({low, high}))
    return thinned
