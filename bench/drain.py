"""Change-log drain micro-benchmark: CPU per reading of each drain handler, in one process.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/mizumori .venv/bin/python bench/drain.py
    .venv/bin/python bench/drain.py --profile alerts.evaluate     # cProfile of one handler
    .venv/bin/python bench/drain.py --statements 8                # each handler's slowest statements
    .venv/bin/python bench/drain.py --gateway 20 --profile gateway  # + 20 gateway ticks over HTTP, profiled

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
import re
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
    parser.add_argument("--profile", default="", help="cProfile this handler (or 'gateway') and print the top functions")
    parser.add_argument("--statements", type=int, default=0, metavar="N",
                        help="print each handler's N statements that took the most wall time (client side: "
                             "PostgreSQL's work and the round trip), summed over the measured rounds")
    parser.add_argument("--spike", action="store_true",
                        help="each station's first measured reading is a spike (+1 m, back at the next one) that "
                             "stays in the look-back, as the jump from the seeded history does in bench/e2e.py "
                             "phase a")
    parser.add_argument("--gateway", type=int, default=0, metavar="TICKS",
                        help="then POST this many gateway ticks (one reading for each of a town's stations) "
                             "through the Django test client and time the server side")
    args = parser.parse_args()

    setup_test_environment()
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        from events import registry

        now = timezone.now().replace(microsecond=0) - timedelta(hours=1)
        towns, stations = seed(args.stations, now)
        print(f"database: {connection.vendor}; {len(stations)} stations, {args.per_round} readings each per round, "
              f"{args.rounds} rounds{', a spike first' if args.spike else ''}; loadavg {os.getloadavg()[0]:.2f}")
        names = [handler.name for handler in registry.handlers()]
        result = asyncio.run(_on_a_loop(measure, args, names, towns, stations, now))
        report(args, names, *result)
        if args.gateway:
            asyncio.run(_on_a_loop(gateway_ticks, args, towns, stations, now))
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
    wall = defaultdict(float)
    queries = defaultdict(list)
    statements = defaultdict(lambda: defaultdict(lambda: [0, 0.0]))
    profiler = cProfile.Profile() if args.profile else None
    tick = 0
    readings = 0
    for round_ in range(args.rounds + 1):  # the first round warms the caches and is not counted
        by_town = defaultdict(list)
        for _ in range(args.per_round):
            tick += 1
            at = now + timedelta(seconds=tick)
            for i, s in enumerate(stations):
                spike = 1.0 if args.spike and tick == 1 else 0.0
                by_town[i % 2].append({"station": s.code, "observed_at": at, "value": value_of(i, tick) + spike})
        for t, items in by_town.items():
            for start in range(0, len(items), 1000):
                observation_ingest(municipality=towns[t], items=items[start : start + 1000], source="http")
        while True:
            claimed = 0
            for name in names:
                if profiler and name == args.profile and round_:
                    profiler.enable()
                with CaptureQueriesContext(connection) as captured:
                    began, began_wall = time.process_time(), time.perf_counter()
                    report = drain_once(handler_names=[name])
                    spent, waited = time.process_time() - began, time.perf_counter() - began_wall
                if profiler:
                    profiler.disable()
                claimed += report.claimed
                if round_ and report.claimed:
                    cpu[name] += spent
                    wall[name] += waited
                    queries[name].append(len(captured))
                    for query in captured.captured_queries:
                        entry = statements[name][statement_shape(query["sql"])]
                        entry[0] += 1
                        entry[1] += float(query["time"])
            if not claimed:
                break
        if round_:
            readings += len(stations) * args.per_round
    connection.close()
    return cpu, wall, queries, readings, profiler, statements


_LITERALS = re.compile(r"'(?:[^']|'')*'|\b\d+(?:\.\d+)?\b")


def statement_shape(sql: str) -> str:
    """A statement with its literals (arrays, times, ids) folded, so one statement of every batch is one line."""
    return " ".join(_LITERALS.sub("?", sql).split())[:150]


def gateway_ticks(args, towns, stations, now):
    """`POST /api/v1/observations` with one newest reading for every station of the first town, as a
    gateway sends it, through the whole Django stack in this process (no network): wall and CPU time
    of the request, the change log drained between ticks (not counted)."""
    import json
    import statistics

    from django.test import Client

    from events.services import drain_pending
    from tenancy.services import ingest_token_create

    _, secret = ingest_token_create(municipality=towns[0], label="bench gateway")
    client = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
    own = [s for i, s in enumerate(stations) if i % 2 == 0]
    profiler = cProfile.Profile() if args.profile == "gateway" else None
    walls, cpus, counts = [], [], []
    for tick in range(args.gateway + 1):  # the first warms the caches and is not counted
        at = (now + timedelta(minutes=50, seconds=tick)).isoformat()
        body = json.dumps(
            {"observations": [{"station": s.code, "observed_at": at, "value": value_of(i, tick)} for i, s in enumerate(own)]}
        )
        if profiler and tick:
            profiler.enable()
        with CaptureQueriesContext(connection) as captured:
            began, began_cpu = time.perf_counter(), time.process_time()
            response = client.post("/api/v1/observations", body, content_type="application/json")
            wall, cpu = time.perf_counter() - began, time.process_time() - began_cpu
        if profiler:
            profiler.disable()
        assert response.status_code == 200 and response.json()["accepted"] == len(own), response.content[:500]
        if tick:
            walls.append(wall * 1000)
            cpus.append(cpu * 1000)
            counts.append(len(captured))
        drain_pending()
    connection.close()

    def p95(values):
        return sorted(values)[max(0, round(0.95 * len(values)) - 1)]

    print(f"gateway tick, {len(own)} stations, {args.gateway} POSTs in process: wall p50 {statistics.median(walls):.1f} ms, "
          f"p95 {p95(walls):.1f} ms; CPU p50 {statistics.median(cpus):.1f} ms, p95 {p95(cpus):.1f} ms "
          f"({statistics.median(cpus) / len(own) * 1000:.0f} µs per reading); queries {sorted(set(counts))}; "
          f"loadavg {os.getloadavg()[0]:.2f}")
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats(os.environ.get("PROFILE_SORT", "cumulative")).print_stats(45)
        print(out.getvalue())


def report(args, names, cpu, wall, queries, readings, profiler, statements):
    # Wall time beside CPU: on a quiet machine the difference is mostly waiting for PostgreSQL.
    total = total_wall = 0.0
    for name in names:
        per, per_wall = cpu[name] / readings * 1e6, wall[name] / readings * 1e6
        total, total_wall = total + per, total_wall + per_wall
        counts = sorted(set(queries[name]))
        print(f"  {name:22s} {per:7.1f} µs CPU/reading, {per_wall:7.1f} µs wall  ({cpu[name]:.2f} CPU-s; "
              f"queries per batch {counts})")
    print(f"  {'all handlers':22s} {total:7.1f} µs CPU/reading, {total_wall:7.1f} µs wall, over {readings:,} readings; "
          f"loadavg {os.getloadavg()[0]:.2f}")
    for name in names if args.statements else ():
        slowest = sorted(statements[name].items(), key=lambda item: -item[1][1])[: args.statements]
        if slowest:
            print(f"  {name}: statements by wall time (count, ms in all, µs per reading)")
        for shape, (count, seconds) in slowest:
            print(f"    {count:5d} {seconds * 1000:9.1f} ms {seconds / readings * 1e6:7.1f} µs  {shape}")
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats(os.environ.get("PROFILE_SORT", "cumulative")).print_stats(45)
        print(out.getvalue())


if __name__ == "__main__":
    main()
