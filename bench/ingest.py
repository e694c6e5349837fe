"""The ingest request path's CPU per reading, in one process: Python and its PostgreSQL backend.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/mizumori .venv/bin/python bench/ingest.py
    .venv/bin/python bench/ingest.py --profile            # cProfile of the measured POSTs
    .venv/bin/python bench/ingest.py --statements 8       # the statements with the most wall time

Runs in a throw-away test database created the way the test suite creates it. Seeds one town's
river stations with the standard thresholds and one reading each, then POSTs batches shaped as
`bench/e2e.py` phase a sends them (`--per-post` newest readings for each station, a millisecond
apart, values on a slow wave) through the whole Django stack (middleware, DRF, parser, view,
`observation_ingest`; the test client, no network) and prints, per 1,000 readings: this process's
CPU (`time.process_time`), the CPU of its PostgreSQL backend (from /proc/<pid>/schedstat: the database must
run on this machine), and wall time. The change log is emptied between POSTs, not counted. Asserts
nothing (see docs/performance.md).
"""

import argparse
import cProfile
import io
import json
import math
import os
import pstats
import re
import statistics
import sys
import time
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext, setup_test_environment  # noqa: E402
from django.utils import timezone  # noqa: E402



def seed(count: int, now: datetime):
    from sensors.models import Station, Threshold
    from sensors.services import observation_ingest
    from tenancy.models import Municipality
    from tenancy.services import ingest_token_create

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from conftest import RIVER_THRESHOLDS

    town = Municipality.objects.create(code="990094", slug="ingest-bench", name_ja="ベンチ町", name_en="Bench Town")
    stations = Station.objects.bulk_create(
        Station(code=f"R{i:04d}", name_ja=f"観測所{i}", name_en=f"Gauge {i}", kind="river", municipality=town,
                lon=140 + i / 1000, lat=35, unit="m", visibility="public", expected_interval=timedelta(minutes=10))
        for i in range(count)
    )
    Threshold.objects.bulk_create(
        Threshold(station=s, name=n, label_ja=ja, label_en=en, level=lv, value=v)
        for s in stations for n, ja, en, lv, v in RIVER_THRESHOLDS
    )
    observation_ingest(
        municipality=None, source="import",
        items=[{"station": s.code, "observed_at": now, "value": 2.0} for s in stations],
    )
    _, secret = ingest_token_create(municipality=town, label="ingest bench")
    return [s.code for s in stations], secret


def wave_value(index: int, step: int) -> float:
    """As bench/e2e.py: every fifth station crosses 氾濫危険水位 on a slow wave."""
    amplitude = 2.2 if index % 5 == 0 else 0.8
    return round(2.0 + amplitude * math.sin(2 * math.pi * (step / 120 + index / 37)), 3)


def backend_cpu(pid: int) -> float:
    """Seconds on a CPU of process `pid`, to the nanosecond (/proc/<pid>/stat counts 10 ms ticks)."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9


class StatementCPU:
    """Django execute wrapper: the backend's CPU and the client's wall time per statement shape."""

    def __init__(self, pid: int | None):
        self.pid = pid
        self.cpu: dict[str, float] = defaultdict(float)
        self.wall: dict[str, float] = defaultdict(float)
        self.count: dict[str, int] = defaultdict(int)
        self.on = False

    def __call__(self, execute, sql, params, many, context):
        if not self.on:
            return execute(sql, params, many, context)
        before, began = backend_cpu(self.pid) if self.pid else 0.0, time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            shape = " ".join(_LITERALS.sub("?", sql).split())[:120]
            self.wall[shape] += time.perf_counter() - began
            self.cpu[shape] += (backend_cpu(self.pid) if self.pid else 0.0) - before
            self.count[shape] += 1


_LITERALS = re.compile(r"'[^']*'|\b\d+\b")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stations", type=int, default=333, help="stations of the town (e2e: 333 per client)")
    parser.add_argument("--per-post", type=int, default=3, help="readings per station per POST (e2e: 3)")
    parser.add_argument("--posts", type=int, default=60, help="POSTs measured")
    parser.add_argument("--profile", action="store_true", help="cProfile the measured POSTs")
    parser.add_argument("--statements", type=int, default=0, metavar="N",
                        help="print the N statements with the most wall time (client side), summed")
    args = parser.parse_args()

    setup_test_environment()
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        run(args)
    finally:
        connection.close()
        connection.creation.destroy_test_db(old_name, verbosity=0)


def run(args):
    from events.models import OutboxEvent

    start = timezone.now().replace(microsecond=0) - timedelta(hours=2)
    codes, secret = seed(args.stations, start - timedelta(minutes=10))
    client = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
    pid = None
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            pid = cursor.fetchone()[0]
    profiler = cProfile.Profile() if args.profile else None
    python, backend, walls, counts = [], [], [], []
    statements = StatementCPU(pid)
    connection.execute_wrappers.append(statements)
    step = 0
    for post in range(args.posts + 2):  # the first two warm the caches and are not counted
        first = start + timedelta(seconds=post)
        stamps = [(first + timedelta(milliseconds=k)).isoformat() for k in range(args.per_post)]
        items = [
            {"station": code, "observed_at": stamps[k], "value": wave_value(i, step + k)}
            for k in range(args.per_post) for i, code in enumerate(codes)
        ]
        step += args.per_post
        body = json.dumps({"observations": items}).encode()
        if profiler and post >= 2:
            profiler.enable()
        statements.on = post >= 2 and bool(args.statements)
        with CaptureQueriesContext(connection) as captured:
            before_backend = backend_cpu(pid) if pid else 0.0
            began, began_cpu = time.perf_counter(), time.process_time()
            response = client.post("/api/v1/observations", body, content_type="application/json")
            wall, cpu = time.perf_counter() - began, time.process_time() - began_cpu
            after_backend = backend_cpu(pid) if pid else 0.0
        if profiler:
            profiler.disable()
        reply = response.json()
        assert response.status_code == 200 and reply["accepted"] == len(items), response.content[:300]
        if post >= 2:
            thousands = len(items) / 1000
            python.append(cpu * 1000 / thousands)
            backend.append((after_backend - before_backend) * 1000 / thousands)
            walls.append(wall * 1000 / thousands)
            counts.append(len(captured))
        statements.on = False
        OutboxEvent.objects.all().delete()
        if connection.vendor == "postgresql" and post % 10 == 9:
            # As the drain and the vacuum worker keep it in a real run: no dead rows piling up.
            with connection.cursor() as cursor:
                cursor.execute(f"VACUUM {OutboxEvent._meta.db_table}")
    print(f"database {connection.vendor}; {args.stations} stations × {args.per_post} readings per POST, "
          f"{args.posts} POSTs; loadavg {os.getloadavg()[0]:.2f}")
    print(f"per 1,000 readings: Python CPU median {statistics.median(python):.2f} ms (mean {statistics.mean(python):.2f}); "
          f"PostgreSQL backend CPU median {statistics.median(backend):.2f} ms (mean {statistics.mean(backend):.2f}); wall median {statistics.median(walls):.2f} ms; "
          f"queries per POST {sorted(set(counts))}"
          f"{' (Python CPU includes the profiler: run without --profile/--statements for it)' if profiler or args.statements else ''}")
    if args.statements:
        # COMMIT is not a statement Django wraps: its share is the rest of the backend's CPU.
        print("  backend CPU / client wall per POST, by statement (COMMIT: not listed):")
        ranked = sorted(statements.cpu, key=lambda shape: -statements.cpu[shape])[: args.statements]
        for shape in ranked:
            print(f"  {statements.cpu[shape] / args.posts * 1000:6.2f} / {statements.wall[shape] / args.posts * 1000:6.2f} ms"
                  f"  ×{statements.count[shape] // args.posts}  {shape}")
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats(os.environ.get("PROFILE_SORT", "cumulative")).print_stats(50)
        print(out.getvalue())


if __name__ == "__main__":
    main()
