"""The HQ board's first load (`GET /hq/`) through the Django test client: queries and CPU.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/mizumori .venv/bin/python bench/hq_page.py
    .venv/bin/python bench/hq_page.py --stations 2000 --towns 10 --statements 12
    .venv/bin/python bench/hq_page.py --profile 30                 # cProfile's top 30 functions

Runs in a throw-away test database created the way the test suite creates it. Seeds `--towns` towns
and `--stations` stations (river, rain, reservoir and tide in turn; the visibility cycle public,
public, region, shared, private, a shared station granted to the next town), their thresholds and
default alert rules, a shelter per town, two hours of 10-minute readings with every tenth river
station above 氾濫危険水位 (so alerts are open and the board has notices), drains the change log,
then loads `/hq/` as a member of the first town and as a platform admin, `--repeat` times each after
one warm-up load. Prints the number of queries, CPU (`time.process_time`, this process: PostgreSQL's
own work is not in it) and wall time per load; asserts nothing (docs/performance.md).
"""

import argparse
import cProfile
import io
import os
import pstats
import re
import statistics
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext, setup_test_environment  # noqa: E402
from django.utils import timezone  # noqa: E402

VISIBILITY_CYCLE = ["public", "public", "region", "shared", "private"]
KINDS = ["river", "river", "rain", "reservoir", "tide"]


def town_code(n: int) -> str:
    """A fictional municipality code (prefecture 99) with a valid check digit."""
    from tenancy.models import local_government_check_digit

    five = f"99{n:03d}"
    return f"{five}{local_government_check_digit(five)}"


def seed(stations_count: int, towns_count: int, now):
    from django.contrib.auth import get_user_model

    from alerts.services import alert_rules_sync_for_station
    from events.services import drain_pending
    from geo.models import Shelter
    from sensors.models import SharingGrant, Station, Threshold
    from sensors.services import observation_ingest
    from tenancy.models import Membership, Municipality

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from conftest import RIVER_THRESHOLDS, TIDE_THRESHOLDS

    towns = [
        Municipality.objects.create(code=town_code(n), slug=f"hq-{n}", name_ja=f"町{n}", name_en=f"Town {n}")
        for n in range(towns_count)
    ]
    units = {"river": "m", "rain": "mm", "reservoir": "%", "tide": "m"}
    stations = Station.objects.bulk_create(
        Station(code=f"H{i:04d}", name_ja=f"観測所{i}", name_en=f"Gauge {i}", kind=KINDS[i % len(KINDS)],
                municipality=towns[i % towns_count], lon=139.5 + (i % 40) * 0.01, lat=35.5 + (i // 40) * 0.01,
                unit=units[KINDS[i % len(KINDS)]], visibility=VISIBILITY_CYCLE[(i // len(KINDS)) % len(VISIBILITY_CYCLE)],
                expected_interval=timedelta(minutes=10))
        for i in range(stations_count)
    )
    ladders = {"river": RIVER_THRESHOLDS, "tide": TIDE_THRESHOLDS}
    Threshold.objects.bulk_create(
        Threshold(station=s, name=n, label_ja=ja, label_en=en, level=lv, value=v)
        for s in stations for n, ja, en, lv, v in ladders.get(s.kind, ())
    )
    SharingGrant.objects.bulk_create(
        SharingGrant(station=s, grantor=s.municipality, grantee=towns[(towns.index(s.municipality) + 1) % towns_count])
        for s in stations if s.visibility == "shared" and towns_count > 1
    )
    for s in stations:
        alert_rules_sync_for_station(s)
    Shelter.objects.bulk_create(
        Shelter(code=f"S{n:03d}", name_ja=f"避難所{n}", name_en=f"Shelter {n}", municipality=town,
                lon=139.6, lat=35.6 + n * 0.01, capacity=200, status="open" if n % 2 else "closed")
        for n, town in enumerate(towns)
    )
    base = {"river": 1.5, "rain": 2.0, "reservoir": 60.0, "tide": 0.5}
    items = {town.pk: [] for town in towns}
    for step in range(12, 0, -1):
        for i, s in enumerate(stations):
            high = s.kind == "river" and i % 10 == 0
            items[s.municipality_id].append({
                "station": s.code, "observed_at": now - step * timedelta(minutes=10),
                "value": (4.2 if high and step <= 4 else base[s.kind] + (i % 50) / 100),
            })
    for town in towns:
        observation_ingest(municipality=town, items=items[town.pk], source="import")
    drain_pending()
    member = get_user_model().objects.create_user("hq-member", password="pw-hq-member-123")
    Membership.objects.create(user=member, municipality=towns[0], role=Membership.Role.VIEWER)
    admin = get_user_model().objects.create_superuser("hq-admin", password="pw-hq-admin-123")
    return towns, stations, {"member of one town": member, "platform admin": admin}


def statement_shape(sql: str) -> str:
    sql = re.sub(r"'(?:[^']|'')*'", "?", sql)
    sql = re.sub(r"\b\d+(\.\d+)?\b", "?", sql)
    sql = re.sub(r"\((\?(, )?)+\)", "(…)", sql)
    return sql[:160]


def measure(client: Client, repeat: int, statements: int, profile: int) -> dict:
    client.get("/hq/")  # warm-up: caches of the process (catalog, geography, compiled templates)
    cpu, wall, counts = [], [], []
    shapes: Counter = Counter()
    profiler = cProfile.Profile() if profile else None
    for _ in range(repeat):
        with CaptureQueriesContext(connection) as queries:
            c0, w0 = time.process_time(), time.perf_counter()
            if profiler:
                profiler.enable()
            response = client.get("/hq/")
            if profiler:
                profiler.disable()
            cpu.append(time.process_time() - c0)
            wall.append(time.perf_counter() - w0)
        assert response.status_code == 200, response.status_code
        counts.append(len(queries))
        shapes.update(statement_shape(q["sql"]) for q in queries.captured_queries)
    result = {"queries": counts, "cpu": cpu, "wall": wall, "bytes": len(response.content)}
    if statements:
        result["shapes"] = [(n / repeat, shape) for shape, n in shapes.most_common(statements)]
    if profiler:
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out).sort_stats(os.environ.get("HQ_PROFILE_SORT", "cumulative"))
        stats.print_stats(profile)
        if os.environ.get("HQ_PROFILE_CALLERS"):
            stats.print_callers(os.environ["HQ_PROFILE_CALLERS"])
        result["profile"] = out.getvalue()
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stations", type=int, default=1000)
    parser.add_argument("--towns", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=5, help="measured loads per viewer, after one warm-up")
    parser.add_argument("--statements", type=int, default=0, metavar="N", help="print the N most frequent statement shapes")
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="cProfile the loads; print the top N functions")
    args = parser.parse_args()

    setup_test_environment()
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        now = timezone.now().replace(microsecond=0)
        towns, stations, users = seed(args.stations, args.towns, now)
        print(f"database: {connection.vendor}; {len(stations)} stations in {len(towns)} towns; "
              f"load {os.getloadavg()[0]:.2f}")
        for label, user in users.items():
            client = Client()
            client.force_login(user)
            r = measure(client, args.repeat, args.statements, args.profile)
            print(f"/hq/ as {label}: queries {sorted(set(r['queries']))}, CPU p50 {statistics.median(r['cpu']) * 1000:,.0f} ms, "
                  f"wall p50 {statistics.median(r['wall']) * 1000:,.0f} ms, {r['bytes']:,} bytes; "
                  f"load {os.getloadavg()[0]:.2f}")
            for n, shape in r.get("shapes", []):
                print(f"    {n:5.1f} × {shape}")
            if "profile" in r:
                print(r["profile"])
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
