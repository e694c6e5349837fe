"""The forecast refresh's read of its gauges' look-back (`forecasts.selectors.readings_of`): the row-by-row
read it replaced and the array read, side by side on a throw-away test database. Prints figures; asserts
only that both read the same series.

    DATABASE_URL=postgres://... .venv/bin/python bench/readings_of.py 300 1200   # gauges, one-second readings each

In phase a of bench/e2e.py a gauge gets ~20 readings a second, so once beat has trained forecast models
the drain's `forecasts.refresh` reads thousands of readings per trained gauge every batch (45.7 % of a
drain process's samples in one run, docs/performance.md "Drain round 6")."""

import os
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402


def row_by_row(station_ids, *, since):
    """`readings_of` as it was: a server-side cursor, a tuple and a parsed timestamp per reading."""
    from forecasts.learn import Series
    from sensors.models import Observation

    queryset = Observation.objects.filter(station_id__in=list(station_ids), quality=Observation.Quality.OK)
    pairs = defaultdict(list)
    rows = queryset.filter(observed_at__gte=since).order_by("station_id", "observed_at")
    for station_id, observed_at, value in rows.values_list("station_id", "observed_at", "value").iterator(chunk_size=20000):
        pairs[station_id].append((observed_at.timestamp(), value))
    return {station_id: Series.of(pairs.get(station_id, [])) for station_id in station_ids}


def main():
    gauges, per_gauge = (int(arg) for arg in (sys.argv[1:] or ["300", "1200"]))
    setup_test_environment()
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        from forecasts.selectors import readings_of
        from sensors.models import Observation, Station
        from tenancy.models import Municipality

        town = Municipality.objects.create(code="990001", slug="bench-reads", name_ja="町", name_en="Town")
        stations = Station.objects.bulk_create(
            Station(code=f"F{i}", name_ja=f"観測所{i}", name_en=f"Gauge {i}", kind="river", municipality=town,
                    lon=140, lat=35, unit="m")
            for i in range(gauges)
        )
        t0 = datetime(2026, 6, 1, tzinfo=UTC)
        Observation.objects.bulk_create(
            (Observation(station=s, observed_at=t0 + timedelta(seconds=k), value=1 + k / 1000, received_at=t0,
                         source="http") for s in stations for k in range(per_gauge)),
            batch_size=20000,
        )
        ids = [s.pk for s in stations]
        since = t0 + timedelta(seconds=per_gauge // 10)
        print(f"database: {connection.vendor}; {gauges} gauges, {per_gauge} readings each")
        for name, read in (("row by row (before)", row_by_row), ("arrays (readings_of)", readings_of)) * 2:
            cpu, wall = time.process_time(), time.perf_counter()
            series = read(ids, since=since)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            count = sum(len(s.times) for s in series.values())
            print(f"  {name:21s} {count:,} readings: CPU {cpu * 1000:.0f} ms ({cpu / count * 1e6:.2f} µs a reading), "
                  f"wall {wall * 1000:.0f} ms; loadavg {os.getloadavg()[0]:.2f}")
        before, after = row_by_row(ids, since=since), readings_of(ids, since=since)
        assert all(before[pk].times.tolist() == after[pk].times.tolist() for pk in ids)
        assert all(before[pk].values.tolist() == after[pk].values.tolist() for pk in ids)
        print("  the same series")
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
