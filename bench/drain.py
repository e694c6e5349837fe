"""Change-log drain micro-benchmark: CPU per reading of each drain handler, in one process.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/mizumori .venv/bin/python bench/drain.py
    .venv/bin/python bench/drain.py --profile alerts.evaluate     # cProfile of one handler

Runs in a throw-away test database created the way the test suite creates it. Seeds river stations
with the standard thresholds and default alert rules and two hours of 10-minute history, then
ingests rounds of newest readings (a slow wave; every fifth station climbs through the levels, so
rules open, escalate and resolve alerts) and times each handler's drain of every round with
`time.process_time` (this process's CPU: PostgreSQL's own work is not in it). Prints figures;
asserts nothing (see docs/performance.md).
"""

import argparse
import asyncio
import cProfile
import io
import math
import os
import pstats
import sys
import time
from collections import defaultdict
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

VISIBILITY_CYCLE = ["public", "public", "region", "shared", "private"]


def seed(stations_count: int, now):
    from alerts.services import alert_rules_sync_for_station
    from events.services import drain_pending
    from sensors.models import SharingGrant, Station, Threshold
    from sensors.services import observation_ingest
    from tenancy.models import Municipality

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from conftest import RIVER_THRESHOLDS

    towns = [
        Municipality.objects.create(code=f"99{n}094"[:6], slug=f"drain-{n}", name_ja=f"町{n}", name_en=f"Town {n}")
        for n in range(2)
    ]
    stations = Station.objects.bulk_create(
        Station(code=f"D{i:04d}", name_ja=f"観測所{i}", name_en=f"Gauge {i}", kind="river", municipality=towns[i % 2],
                lon=140 + i / 1000, lat=35, unit="m", visibility=VISIBILITY_CYCLE[i % len(VISIBILITY_CYCLE)],
                expected_interval=timedelta(minutes=10))
        for i in range(stations_count)
    )
    Threshold.objects.bulk_create(
        Threshold(station=s, name=n, label_ja=ja, label_en=en, level=lv, value=v)
        for s in stations for n, ja, en, lv, v in RIVER_THRESHOLDS
    )
    SharingGrant.objects.bulk_create(
        SharingGrant(station=s, grantor=towns[i % 2], grantee=towns[(i + 1) % 2])
        for i, s in enumerate(stations) if s.visibility == "shared"
    )
    for s in stations:
        alert_rules_sync_for_station(s)
    by_town = defaultdict(list)
    for step in range(12, 0, -1):
        for i, s in enumerate(stations):
            by_town[i % 2].append({"station": s.code, "observed_at": now - step * timedelta(minutes=10),
                                   "value": 1.5 + (i % 50) / 100})
    for t, items in by_town.items():
        observation_ingest(municipality=towns[t], items=items, source="import")
    drain_pending()
    return towns, stations


def value_of(index: int, tick: int) -> float:
    base = 1.5 + (index % 50) / 100 + 0.2 * math.sin(tick / 7 + index)
    if index % 5 == 0:  # climbs through the levels and back: opens, escalates, resolves
        base += 2.8 * max(0.0, math.sin(tick / 12))
    return round(base, 3)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stations", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=12, help="drain rounds measured")
    parser.add_argument("--per-round", type=int, default=3, help="readings per station per round")
    parser.add_argument("--profile", default="", help="cProfile this handler and print the top functions")
    args = parser.parse_args()

    setup_test_environment()
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        from events import registry

        now = timezone.now().replace(microsecond=0) - timedelta(hours=1)
        towns, stations = seed(args.stations, now)
        print(f"database: {connection.vendor}; {len(stations)} stations, {args.per_round} readings each per round, "
              f"{args.rounds} rounds; loadavg {os.getloadavg()[0]:.2f}")
        names = [handler.name for handler in registry.handlers()]
        result = asyncio.run(_on_a_loop(measure, args, names, towns, stations, now))
        report(args, names, *result)
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


async def _on_a_loop(func, *args):
    # As `manage.py drain_events` runs it (events.runner): handlers' async_to_sync calls then reach
    # this one event loop instead of starting a loop (and Redis connections) of their own per call.
    return await sync_to_async(func, thread_sensitive=True)(*args)


def measure(args, names, towns, stations, now):
    from events.services import drain_once
    from sensors.services import observation_ingest

    cpu = defaultdict(float)
    queries = defaultdict(list)
    profiler = cProfile.Profile() if args.profile else None
    tick = 0
    readings = 0
    for round_ in range(args.rounds + 1):  # the first round warms the caches and is not counted
        by_town = defaultdict(list)
        for _ in range(args.per_round):
            tick += 1
            at = now + timedelta(seconds=tick)
            for i, s in enumerate(stations):
                by_town[i % 2].append({"station": s.code, "observed_at": at, "value": value_of(i, tick)})
        for t, items in by_town.items():
            for start in range(0, len(items), 1000):
                observation_ingest(municipality=towns[t], items=items[start : start + 1000], source="http")
        while True:
            claimed = 0
            for name in names:
                if profiler and name == args.profile and round_:
                    profiler.enable()
                with CaptureQueriesContext(connection) as captured:
                    began = time.process_time()
                    report = drain_once(handler_names=[name])
                    spent = time.process_time() - began
                if profiler:
                    profiler.disable()
                claimed += report.claimed
                if round_ and report.claimed:
                    cpu[name] += spent
                    queries[name].append(len(captured))
            if not claimed:
                break
        if round_:
            readings += len(stations) * args.per_round
    connection.close()
    return cpu, queries, readings, profiler


def report(args, names, cpu, queries, readings, profiler):
    total = 0.0
    for name in names:
        per = cpu[name] / readings * 1e6
        total += per
        counts = sorted(set(queries[name]))
        print(f"  {name:22s} {per:7.1f} µs/reading  ({cpu[name]:.2f} CPU-s; queries per batch {counts})")
    print(f"  {'all handlers':22s} {total:7.1f} µs/reading over {readings:,} readings; "
          f"loadavg {os.getloadavg()[0]:.2f}")
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats(os.environ.get("PROFILE_SORT", "cumulative")).print_stats(45)
        print(out.getvalue())


if __name__ == "__main__":
    main()
