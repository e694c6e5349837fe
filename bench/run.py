"""Ingestion and read-path benchmarks. Prints figures; asserts nothing (see docs/performance.md).

    .venv/bin/python bench/run.py                # embedded default (SQLite)
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/mizumori .venv/bin/python bench/run.py

Runs in a throw-away test database created the way the test suite creates it.
"""

import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.db import connection, reset_queries  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext, setup_test_environment  # noqa: E402
from django.utils import timezone  # noqa: E402

STATIONS = 300
READINGS_PER_STATION = 100  # 30,000 readings, sent in batches of 10,000


def build_region():
    from sensors.models import Station, Threshold
    from tenancy.models import Municipality

    town = Municipality.objects.create(code="990094", slug="bench-town", name_ja="ベンチ町", name_en="Bench Town")
    stations = Station.objects.bulk_create(
        Station(code=f"B{i:04d}", name_ja=f"観測所{i}", name_en=f"Gauge {i}", kind="river", municipality=town,
                lon=140 + i / 1000, lat=35, unit="m", visibility="public")
        for i in range(STATIONS)
    )
    Threshold.objects.bulk_create(
        Threshold(station=s, name=name, label_ja=name, label_en=name, level=level, value=value)
        for s in stations
        for name, level, value in [("flood_caution", 2, 3.0), ("evacuation_decision", 3, 3.5), ("flood_danger", 4, 4.0)]
    )
    return town, [s.code for s in stations]


def bench_ingest(town, codes):
    from sensors.services import observation_ingest

    now = timezone.now().replace(microsecond=0)
    items = [
        {"station": code, "observed_at": now - timedelta(minutes=10 * step), "value": 1.0 + step / 100}
        for step in range(READINGS_PER_STATION)
        for code in codes
    ]
    timings, queries = [], []
    for start in range(0, len(items), 10_000):
        batch = items[start : start + 10_000]
        with CaptureQueriesContext(connection) as captured:
            began = time.perf_counter()
            report = observation_ingest(municipality=town, items=batch, source="import")
            timings.append(time.perf_counter() - began)
        assert report.accepted == len(batch), report.as_dict()
        queries.append(len(captured))
    total = sum(timings)
    print(f"ingest: {len(items)} readings in {len(timings)} batches of 10,000: {total:.2f} s "
          f"({len(items) / total:,.0f} readings/s), queries per batch {queries}")

    began = time.perf_counter()
    report = observation_ingest(municipality=town, items=items[:10_000], source="import")
    print(f"ingest: a 10,000-reading batch of duplicates: {time.perf_counter() - began:.2f} s "
          f"({report.duplicates} duplicates)")

    live = [{"station": code, "observed_at": now + timedelta(seconds=1), "value": 3.6} for code in codes]
    began = time.perf_counter()
    observation_ingest(municipality=town, items=live, source="http")
    print(f"ingest: one reading for each of {len(codes)} stations (a gateway tick): "
          f"{(time.perf_counter() - began) * 1000:.0f} ms")


def bench_reads():
    client = Client()
    durations = []
    for _ in range(20):
        reset_queries()
        with CaptureQueriesContext(connection) as captured:
            began = time.perf_counter()
            response = client.get("/api/v1/stations")
            durations.append(time.perf_counter() - began)
        assert response.status_code == 200
    print(f"read: GET /api/v1/stations with {STATIONS} stations: median {statistics.median(durations) * 1000:.0f} ms, "
          f"{len(captured)} queries, {len(response.content) / 1024:.0f} KiB")
    durations = []
    for _ in range(20):
        began = time.perf_counter()
        response = client.get("/api/v1/stations/B0001/observations")
        durations.append(time.perf_counter() - began)
    print(f"read: 24 h of one station's history: median {statistics.median(durations) * 1000:.1f} ms")


def main():
    setup_test_environment()
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        print(f"database: {connection.vendor}")
        town, codes = build_region()
        bench_ingest(town, codes)
        bench_reads()
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
