"""What ingestion needs to know of every station, cached per process and reloaded when it changes.

Every batch used to load its stations and their thresholds as model instances; they change a few
times a year and are read thousands of times a second. The cache holds plain tuples and is keyed by
`CatalogStamp.stamp`, which database triggers change on every write to the station and threshold
tables (any write path: forms, admin, `QuerySet.update`, raw SQL, fixtures). Each batch reads the
stamp (one indexed single-row query) and reloads everything when it differs, so an edited threshold
or a new station is seen by the next batch of every process.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from datetime import timedelta
from typing import NamedTuple

from django.db import connection

from .rain import HOUR as RAIN_HOUR
from .models import CatalogStamp, Station, StationKind, Threshold
from .plausibility import Plausibility, plausibility_of


class ThresholdRow(NamedTuple):
    """The parts of a `Threshold` that set a station's level (duck-types the model for `level_for`)."""

    value: float
    level: int | None
    window: timedelta | None


class StationRow(NamedTuple):
    pk: int
    code: str
    kind: str
    is_active: bool
    municipality_id: int
    plausibility: Plausibility  # range, step, rate and flatline limits (sensors.plausibility)
    thresholds: tuple[ThresholdRow, ...]  # ordered by value
    windows: tuple[timedelta, ...]  # accumulation windows kept in its state, ascending


def accumulation_windows(kind: str, threshold_windows) -> tuple[timedelta, ...]:
    """The rain totals a station's latest state keeps: its thresholds' windows and, for every rain
    gauge, the 1-hour total its intensity is judged by (sensors.rain)."""
    windows = {window for window in threshold_windows if window}
    if kind == StationKind.RAIN:
        windows.add(RAIN_HOUR)
    return tuple(sorted(windows))


_STAMP_SQL = f"SELECT stamp FROM {connection.ops.quote_name(CatalogStamp._meta.db_table)} WHERE id = 1"
_lock = threading.Lock()
_cached: tuple[int | None, dict[str, StationRow]] = (None, {})


def current_stamp() -> int | None:
    with connection.cursor() as cursor:
        cursor.execute(_STAMP_SQL)
        row = cursor.fetchone()
    return row[0] if row else None


def stations_by_code() -> dict[str, StationRow]:
    """Every station by code, as committed (or as this transaction sees it) when the stamp was read."""
    global _cached
    stamp = current_stamp()
    cached_stamp, catalog = _cached
    if stamp is not None and stamp == cached_stamp:
        return catalog
    with _lock:
        catalog = _load()
        # No stamp row (a freshly flushed database): serve the fresh load, cache nothing.
        _cached = (stamp, catalog) if stamp is not None else (None, {})
    return catalog


def _load() -> dict[str, StationRow]:
    thresholds: dict[int, list[ThresholdRow]] = defaultdict(list)
    for station_id, value, level, window in Threshold.objects.order_by("station_id", "value", "pk").values_list(
        "station_id", "value", "level", "window"
    ):
        thresholds[station_id].append(ThresholdRow(value, level, window))
    catalog = {}
    for pk, code, kind, is_active, municipality_id, *limits in Station.objects.order_by().values_list(
        "pk", "code", "kind", "is_active", "municipality_id",
        "plausible_min", "plausible_max", "max_step", "max_rate_per_hour", "flatline_readings",
    ):
        rows = tuple(thresholds.get(pk, ()))
        catalog[code] = StationRow(
            pk, code, kind, is_active, municipality_id, plausibility_of(kind, *limits), rows,
            accumulation_windows(kind, (row.window for row in rows)),
        )
    return catalog

