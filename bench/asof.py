"""The past, at scale: the as-of map for 2,000 stations on a large observation table, and a 24-hour
situation report PDF for one town.

    nice .venv/bin/python bench/asof.py                 # 2,000 stations × 35 days every 10 min ≈ 10.1M rows
    nice .venv/bin/python bench/asof.py --days 3        # a quick try (≈ 0.9M rows)

Needs PostgreSQL (BENCH_POSTGRES_URL, default postgres://postgres@127.0.0.1:5432/postgres); prints
figures, asserts nothing (see docs/performance.md). Creates the scratch database `mizumori_bench_asof`
(BENCH_DATABASE to name another; dropped first, and at the end unless --keep; --reuse measures a kept
one again without loading), migrates it like production (monthly partitions) and loads readings with COPY. Targets (issue 14): as-of map ≤ 200 ms server time; 24-hour report ≤ 10 s.
"""

import argparse
import io
import json
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg

BENCH_DATABASE = os.environ.get("BENCH_DATABASE", "mizumori_bench_asof")
SERVER_URL = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
STATIONS = 2_000
STEP = timedelta(minutes=10)


def database_url(name: str) -> str:
    return urlunsplit(urlsplit(SERVER_URL)._replace(path=f"/{name}"))


def recreate_database(drop_only: bool = False) -> None:
    with psycopg.connect(SERVER_URL, autocommit=True) as server:
        server.execute(f"DROP DATABASE IF EXISTS {BENCH_DATABASE}")
        if not drop_only:
            server.execute(f"CREATE DATABASE {BENCH_DATABASE}")


def setup_django():
    os.environ["DATABASE_URL"] = database_url(BENCH_DATABASE)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def build_stations(count: int):
    from sensors.models import Station, Threshold
    from tenancy.models import Municipality
    from tests.conftest import RIVER_THRESHOLDS

    town = Municipality.objects.create(code="990094", slug="bench-town", name_ja="ベンチ町", name_en="Bench Town")
    stations = Station.objects.bulk_create(
        Station(code=f"A{i:04d}", name_ja=f"観測所{i}", name_en=f"Gauge {i}", kind="river", municipality=town,
                lon=140 + (i % 50) / 100, lat=35 + (i // 50) / 100, unit="m", visibility="public")
        for i in range(count)
    )
    Threshold.objects.bulk_create(
        Threshold(station=s, name=n, label_ja=ja, label_en=en, level=lv, value=v)
        for s in stations for n, ja, en, lv, v in RIVER_THRESHOLDS
    )
    return town, [s.pk for s in stations]


def copy_readings(station_ids: list[int], start: datetime, end: datetime) -> tuple[int, float]:
    from django.db import connection

    rows, began = 0, time.perf_counter()
    received = end.isoformat()
    sql = "COPY sensors_observation (station_id, observed_at, value, quality, received_at, source) FROM STDIN"
    with connection.cursor() as cursor:
        moment = start
        while moment < end:
            buffer = io.StringIO()
            chunk_end = min(moment + timedelta(hours=12), end)
            while moment < chunk_end:
                stamp = moment.isoformat()
                # A slow storm wave so levels move: 2.0 m … 4.5 m over a day.
                wave = 2.0 + 2.5 * abs(((moment - start).total_seconds() / 86400) % 2 - 1)
                buffer.writelines(f"{pk}\t{stamp}\t{wave + (pk % 7) / 100:.2f}\tok\t{received}\timport\n" for pk in station_ids)
                rows += len(station_ids)
                moment += STEP
            with cursor.cursor.copy(sql) as copy:
                copy.write(buffer.getvalue())
        cursor.execute("ANALYZE sensors_observation")
    return rows, time.perf_counter() - began


def timed_gets(client, path: str, times: int):
    """The last response, and the wall and Python CPU milliseconds of each of `times` requests."""
    served, cpu = [], []
    for _ in range(times):
        began, began_cpu = time.perf_counter(), time.process_time()
        response = client.get(path, HTTP_HOST="localhost", HTTP_ACCEPT_ENCODING="identity")
        served.append((time.perf_counter() - began) * 1000)
        cpu.append((time.process_time() - began_cpu) * 1000)
    return response, served, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=35)
    parser.add_argument("--stations", type=int, default=STATIONS)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--reuse", action="store_true", help="measure a database kept by --keep, without loading")
    parser.add_argument("--only", choices=["map", "report"], help="measure only the as-of map or only the report")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of one as-of request and of the report")
    args = parser.parse_args()
    if not args.reuse:
        recreate_database()
    try:
        setup_django()
        from django.db import connection
        from django.db.models import Max

        from sensors import partitions
        from sensors.models import Observation, Station
        from sensors.selectors import as_of_span, readings_up_to, station_feature_collection_at
        from tenancy.models import Municipality
        from tenancy.selectors import Viewer

        if args.reuse:
            town = Municipality.objects.get(slug="bench-town")
            station_ids = list(Station.objects.values_list("pk", flat=True))
            end = Observation.objects.aggregate(newest=Max("observed_at"))["newest"] + STEP
        else:
            end = datetime.now(UTC).replace(second=0, microsecond=0)
            start = end - timedelta(days=args.days)
            span = (end.year - start.year) * 12 + end.month - start.month
            partitions.partitions_ensure_ahead(months_ahead=span, now=start)
            town, station_ids = build_stations(args.stations)
            rows, seconds = copy_readings(station_ids, start, end)
            print(f"COPY {rows:,} rows in {seconds:.1f} s", flush=True)

        viewer = Viewer(is_platform_admin=True)
        if args.only != "report":
            at = end - timedelta(hours=30, minutes=5)
            spans = {pk: timedelta(hours=1) for pk in station_ids}
            totals, queries = [], []
            for _ in range(args.repeats + 2):
                began = time.perf_counter()
                collection = station_feature_collection_at(viewer=viewer, at=at)
                totals.append((time.perf_counter() - began) * 1000)
                began = time.perf_counter()
                readings_up_to(spans, at)
                queries.append((time.perf_counter() - began) * 1000)
            print(f"as-of map, {len(collection['features']):,} stations: {statistics.median(totals[2:]):.0f} ms in all "
                  f"(Python included), readings query {statistics.median(queries[2:]):.0f} ms fetched", flush=True)
            # PostgreSQL's own time for the one readings query.
            stations = list(Station.objects.all())
            spans = {s.pk: as_of_span(s) for s in stations}
            connection.force_debug_cursor = True
            readings_up_to(spans, at)
            sql = next(query["sql"] for query in reversed(connection.queries) if "LATERAL" in query["sql"])
            connection.force_debug_cursor = False
            from django.db import transaction

            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("SET LOCAL jit = off")  # as readings_up_to runs it
                cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}")
                plan = cursor.fetchone()[0]
                plan = json.loads(plan) if isinstance(plan, str) else plan
            print(f"readings query in PostgreSQL: {plan[0]['Execution Time']:.0f} ms", flush=True)
            # The whole request as a reader makes it: view, selector, JSON rendering.
            from django.test import Client

            client, path = Client(), f"/api/v1/stations?at={quote(at.isoformat())}"
            response, served, cpu = timed_gets(client, path, args.repeats + 2)
            print(f"GET /api/v1/stations?at= (status {response.status_code}, {len(response.content) / 1e6:.1f} MB): "
                  f"median {statistics.median(served[2:]):.0f} ms, best {min(served):.0f} ms (target ≤ 200 ms); "
                  f"Python CPU median {statistics.median(cpu[2:]):.0f} ms, best {min(cpu):.0f} ms "
                  f"(PostgreSQL's share is the EXPLAIN figure); load average {os.getloadavg()[0]:.1f}", flush=True)
            # The answer is written from text kept per station: held to the renderer's bytes of the
            # as-of dicts (as tests/timeline/test_as_of_json.py does on a few stations), at full size.
            from rest_framework.renderers import JSONRenderer

            from tenancy.selectors import ANONYMOUS

            same = response.content == JSONRenderer().render(station_feature_collection_at(viewer=ANONYMOUS, at=at))
            print(f"  the answer equals the renderer's bytes of the as-of dicts: {'yes' if same else 'NO'}", flush=True)
            if args.profile:
                import cProfile
                import pstats

                profiler = cProfile.Profile(time.process_time)
                profiler.enable()
                client.get(path, HTTP_HOST="localhost", HTTP_ACCEPT_ENCODING="identity")
                profiler.disable()
                pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
            # Playback's batch at 60×: 25 moments 24 s apart (10 s of playing at 2.5 frames/s).
            frames_path = (f"/api/v1/replay/frames?since={quote(at.isoformat())}"
                           f"&until={quote((at + timedelta(seconds=24 * 24)).isoformat())}&step=24")
            response, served, cpu = timed_gets(client, frames_path, args.repeats + 2)
            print(f"GET /api/v1/replay/frames, 25 moments at 60× (status {response.status_code}, "
                  f"{len(response.content) / 1e6:.2f} MB): median {statistics.median(served[2:]):.0f} ms, "
                  f"best {min(served):.0f} ms; Python CPU median {statistics.median(cpu[2:]):.0f} ms "
                  f"(10 s of playback per batch); load average {os.getloadavg()[0]:.1f}", flush=True)

        if args.only != "map":
            from django.template.loader import render_to_string

            from timeline.reports import FONT_PATH, report_pdf, situation_report

            for run in ("first, cold imports", "second, warm process"):
                if args.profile and run.startswith("second"):
                    import cProfile

                    profiler = cProfile.Profile(time.process_time)
                    profiler.enable()
                began, began_cpu = time.perf_counter(), time.process_time()
                report = situation_report(viewer=viewer, since=end - timedelta(hours=24), until=end, towns=[town],
                                          moments=[end - timedelta(hours=h) for h in (16, 8, 0)])
                built = time.perf_counter() - began
                html = render_to_string("timeline/report.html", {"report": report, "font_url": FONT_PATH.as_uri(),
                                                                 "generated_at": end, "show_tools": False})
                pdf = report_pdf(html, base_url=str(FONT_PATH.parent))
                total, total_cpu = time.perf_counter() - began, time.process_time() - began_cpu
                print(f"24-hour situation report ({run}), {len(report['peaks']):,} gauges, {report['events_count']:,} events: "
                      f"{built:.1f} s to gather, {total:.1f} s with the PDF ({len(pdf) / 1e6:.1f} MB, Python CPU "
                      f"{total_cpu:.1f} s) (target ≤ 10 s); load average {os.getloadavg()[0]:.1f}", flush=True)
                if args.profile and run.startswith("second"):
                    import pstats

                    profiler.disable()
                    pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep:
            recreate_database(drop_only=True)


if __name__ == "__main__":
    main()
