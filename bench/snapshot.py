"""The public snapshot document's build for 2,000 public stations: a full build against a publish tick
that applies only what the live publisher published since the last one (dashboard.features).

    .venv/bin/python bench/snapshot.py
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/mizumori .venv/bin/python bench/snapshot.py --stations 2000

Runs in a throw-away test database created the way the test suite creates it. Seeds public stations
of three kinds (rivers with the five standard thresholds), two readings each, drains the change log
(so the live log holds their features), then times:

- "full": the document built from nothing (every station's feature read and built), as every tick
  did before, and as a process's first build or a catalog change still does;
- "tick, K changed": K stations get a reading, the change log is drained (the live publisher
  publishes them; not timed), then the document is built from the previous one plus those messages.

Each figure is the median of --rounds builds: this process's CPU time (`time.process_time`: the
database's own work is not in it), wall time and queries, with the 1-minute load average beside it.
Prints figures; asserts nothing (docs/performance.md).
"""

import argparse
import asyncio
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402
from asgiref.sync import sync_to_async  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402
from django.test.utils import CaptureQueriesContext, setup_test_environment  # noqa: E402
from django.utils import timezone  # noqa: E402

KINDS = ("river", "rain", "reservoir")
UNITS = {"river": "m", "rain": "mm", "reservoir": "%"}
VALUES = {"river": 2.4, "rain": 3.0, "reservoir": 61.5}


def seed(count: int, now):
    from events.services import drain_pending
    from sensors.models import Station, Threshold
    from sensors.services import observation_ingest
    from tenancy.models import Municipality

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from conftest import RIVER_THRESHOLDS

    town = Municipality.objects.create(code="990094", slug="bench-town", name_ja="ベンチ町", name_en="Bench Town")
    stations = Station.objects.bulk_create(
        Station(code=f"S{i:04d}", name_ja=f"水守川 第{i}観測所", name_en=f"Mizumori River gauge {i}",
                kind=KINDS[i % 3], municipality=town, lon=139.5 + (i % 50) / 50, lat=35.0 + (i // 50) / 50,
                unit=UNITS[KINDS[i % 3]], river_name="水守川", visibility="public",
                expected_interval=timedelta(minutes=10))
        for i in range(count)
    )
    Threshold.objects.bulk_create(
        Threshold(station=s, name=n, label_ja=ja, label_en=en, level=lv, value=v)
        for s in stations if s.kind == "river" for n, ja, en, lv, v in RIVER_THRESHOLDS
    )
    for minutes in (12, 2):
        items = [{"station": s.code, "observed_at": now - timedelta(minutes=minutes), "value": VALUES[s.kind]}
                 for s in stations]
        for start in range(0, len(items), 1000):
            observation_ingest(municipality=None, items=items[start : start + 1000], source="http")
    drain_pending()
    return stations


def timed(call, rounds: int, before=None) -> tuple[float, float, int]:
    cpu, wall, queries = [], [], []
    for index in range(rounds):
        if before:
            before(index)
        with CaptureQueriesContext(connection) as captured:
            began, began_cpu = time.perf_counter(), time.process_time()
            call()
            wall.append(time.perf_counter() - began)
            cpu.append(time.process_time() - began_cpu)
        queries.append(len(captured))
    return statistics.median(cpu) * 1000, statistics.median(wall) * 1000, max(queries)


def measure(args):
    from events.services import drain_pending
    from public.snapshot import encoded_snapshot, public_station_features
    from sensors.services import observation_ingest

    now = timezone.now().replace(microsecond=0)
    stations = seed(args.stations, now)
    size = len(encoded_snapshot().body)
    print(f"database: {connection.vendor}; {len(stations)} public stations; document {size / 1e6:.2f} MB")

    cpu, wall, queries = timed(encoded_snapshot, args.rounds, before=lambda _: public_station_features().forget())
    assert public_station_features().last_update == "full"
    print(f"  full build        CPU {cpu:8.1f} ms  wall {wall:8.1f} ms  {queries:3d} queries  "
          f"loadavg {os.getloadavg()[0]:.2f}")

    for changed in args.changed:
        step = [0]

        def publish(index, changed=changed):
            step[0] += 1
            at = now + timedelta(seconds=step[0])
            chosen = stations[(index * changed) % len(stations):][:changed]
            observation_ingest(municipality=None, source="http", items=[
                {"station": s.code, "observed_at": at, "value": VALUES[s.kind] + 0.01 * (step[0] % 7)} for s in chosen
            ])
            drain_pending()

        encoded_snapshot()  # the store is current
        cpu, wall, queries = timed(encoded_snapshot, args.rounds, before=publish)
        assert public_station_features().last_update == "changes"
        print(f"  tick, {changed:4d} changed CPU {cpu:8.1f} ms  wall {wall:8.1f} ms  {queries:3d} queries  "
              f"loadavg {os.getloadavg()[0]:.2f}")
    connection.close()


async def _on_a_loop(func, *args):
    # As bench/drain.py: the live publisher's async_to_sync calls reach this one event loop.
    return await sync_to_async(func, thread_sensitive=True)(*args)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stations", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--changed", type=int, nargs="*", default=[10, 100, 1000])
    run_in_test_database(measure, parser.parse_args())


def run_in_test_database(measure, args) -> None:
    """`measure(args)` in a throw-away test database, on an event loop (the live publisher's)."""
    setup_test_environment()
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        asyncio.run(_on_a_loop(measure, args))
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
