"""`readings_of` reads arrays (no row per reading in Python): it must give what a row-by-row read of
the usable readings in [since, until] gives, to the same doubles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from forecasts.selectors import readings_of
from sensors.models import Observation

from ..conftest import make_station


def row_by_row(station, since=None, until=None):
    queryset = Observation.objects.filter(station=station, quality=Observation.Quality.OK)
    if since is not None:
        queryset = queryset.filter(observed_at__gte=since)
    if until is not None:
        queryset = queryset.filter(observed_at__lte=until)
    rows = list(queryset.order_by("observed_at").values_list("observed_at", "value"))
    return [at.timestamp() for at, _ in rows], [value for _, value in rows]


def test_readings_of_gives_the_usable_readings_in_the_closed_range(towns):
    station, other, silent = (make_station(towns[0], code) for code in ("RO1", "RO2", "RO3"))
    start = datetime(2026, 6, 1, 3, 0, 0, 250001, tzinfo=UTC)
    qualities = ["ok", "ok", "suspect", "ok", "range", "ok", "flatline", "ok"]
    Observation.objects.bulk_create(
        Observation(
            station=s,
            observed_at=start + timedelta(minutes=7 * k, microseconds=k),
            value=1.0 + k / 3,
            quality=quality,
            received_at=start,
            source="http",
        )
        for s in (station, other)
        for k, quality in enumerate(qualities)
    )
    at = [start + timedelta(minutes=7 * k, microseconds=k) for k in range(len(qualities))]
    for since, until in (
        (None, None),
        (at[1], at[5]),
        (at[1] + timedelta(microseconds=1), at[5] - timedelta(microseconds=1)),
        (at[3], None),
        (None, at[0]),
        (at[7] + timedelta(seconds=1), None),
    ):
        got = readings_of({station.pk, silent.pk}, since=since, until=until)
        assert set(got) == {station.pk, silent.pk}
        times, values = row_by_row(station, since, until)
        assert got[station.pk].times.tolist() == times and got[station.pk].values.tolist() == values, (since, until)
        assert got[station.pk].times.dtype == np.float64
        assert len(got[silent.pk].times) == 0 and len(got[silent.pk].values) == 0
    assert readings_of([], since=at[0]) == {}
