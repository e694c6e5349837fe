"""Does the 7-day history read of one station stay as fast when the observation table grows 10×?

    nice .venv/bin/python bench/history_scale.py
    BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres nice .venv/bin/python bench/history_scale.py
    BENCH_HISTORY_DATABASE=mzbench_history_scale nice .venv/bin/python bench/history_scale.py   # another scratch name

Needs PostgreSQL (the only backend with partitions); prints figures, asserts nothing (see
docs/performance.md). It creates the scratch database `mizumori_bench_history` (dropped first if
it exists, and at the end unless --keep), migrates it like production (so the table is the
monthly-partitioned one), and loads readings with COPY: 999 stations every 10 minutes plus one
station every minute (whose 7 days are the 10,080 rows of the target in issue 9).

Stage 1 loads the newest 7 days (~1.0M rows); stage 2 adds the 63 days before them (~10.2M rows
in all, three months of partitions). After each stage the table is ANALYZEd and the history
query the API runs (`sensors.selectors.observation_range`, all rows fetched) is timed on warm
caches: the median over repeated runs, for the one-minute station (10,080 rows) and for
ten-minute stations (1,008 rows). The whole request is timed too, `GET
/api/v1/stations/<code>/observations` (JSON) through Django's test client in this process: the
visibility check, the rows the database writes, middleware and rendering (no network, no ASGI server).
"""

import argparse
import io
import json
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

BENCH_DATABASE = os.environ.get("BENCH_HISTORY_DATABASE", "mizumori_bench_history")
SERVER_URL = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
STATIONS = 1_000  # station 0 reports every minute, the others every 10 minutes
RECENT_DAYS, OLDER_DAYS = 7, 63
WINDOW = timedelta(days=7)
COPY_CHUNK_MINUTES = 6 * 60


def database_url(name: str) -> str:
    parts = urlsplit(SERVER_URL)
    return urlunsplit(parts._replace(path=f"/{name}"))


def recreate_database() -> None:
    with psycopg.connect(SERVER_URL, autocommit=True) as server:
        server.execute(f"DROP DATABASE IF EXISTS {BENCH_DATABASE}")
        server.execute(f"CREATE DATABASE {BENCH_DATABASE}")


def drop_database() -> None:
    with psycopg.connect(SERVER_URL, autocommit=True) as server:
        server.execute(f"DROP DATABASE IF EXISTS {BENCH_DATABASE}")


def setup_django():
    os.environ["DATABASE_URL"] = database_url(BENCH_DATABASE)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import django

    django.setup()
    from django.core.management import call_command
    from django.test.utils import setup_test_environment

    setup_test_environment()  # the test client's host name is allowed

    call_command("migrate", verbosity=0)


def build_stations(count: int) -> list[int]:
    from sensors.models import Station
    from tenancy.models import Municipality

    town = Municipality.objects.create(code="990094", slug="bench-town", name_ja="ベンチ町", name_en="Bench Town")
    stations = Station.objects.bulk_create(
        Station(code=f"H{i:04d}", name_ja=f"観測所{i}", name_en=f"Gauge {i}", kind="river", municipality=town,
                lon=140 + i / 1000, lat=35, unit="m", visibility="public")
        for i in range(count)
    )
    return [station.pk for station in stations]


def copy_readings(station_ids: list[int], start: datetime, end: datetime) -> tuple[int, float]:
    """COPY every reading in [start, end) into the table; returns (rows, seconds)."""
    from django.db import connection

    fast, slow = station_ids[0], station_ids[1:]
    received = end.isoformat()
    rows, began = 0, time.perf_counter()
    with connection.cursor() as cursor:
        copy_sql = "COPY sensors_observation (station_id, observed_at, value, quality, received_at, source) FROM STDIN"
        chunk_start = start
        while chunk_start < end:
            chunk_end = min(chunk_start + timedelta(minutes=COPY_CHUNK_MINUTES), end)
            buffer = io.StringIO()
            minute = chunk_start
            while minute < chunk_end:
                stamp = minute.isoformat()
                value = 1.0 + (minute.minute % 60) / 100
                buffer.write(f"{fast}\t{stamp}\t{value}\tok\t{received}\timport\n")
                rows += 1
                if minute.minute % 10 == 0:
                    buffer.writelines(f"{pk}\t{stamp}\t{value}\tok\t{received}\timport\n" for pk in slow)
                    rows += len(slow)
                minute += timedelta(minutes=1)
            with cursor.cursor.copy(copy_sql) as copy:
                copy.write(buffer.getvalue())
            chunk_start = chunk_end
        cursor.execute("ANALYZE sensors_observation")
    return rows, time.perf_counter() - began


def time_history(station_pk: int, until: datetime, repeats: int) -> tuple[float, float, int, float]:
    """Median milliseconds of the API's history query: round trip with every row fetched into
    Python, and PostgreSQL's own execution time (EXPLAIN ANALYZE); its row count; and the median
    of the whole JSON request through Django's test client."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from sensors.models import Station
    from sensors.selectors import observation_range

    station = Station.objects.get(pk=station_pk)
    sql, params = observation_range(station=station, since=until - WINDOW, until=until).query.sql_with_params()
    timings, server, count = [], [], 0
    with connection.cursor() as cursor:
        for _ in range(repeats + 2):
            began = time.perf_counter()
            cursor.execute(sql, params)
            count = len(cursor.fetchall())
            timings.append((time.perf_counter() - began) * 1000)
            cursor.execute(f"EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) {sql}", params)
            server.append(_json_plan(cursor.fetchone()[0])[0]["Execution Time"])
    client, requests, cpu = Client(), [], []
    query = {"since": (until - WINDOW).isoformat(), "until": until.isoformat()}
    for _ in range(repeats + 2):
        began, began_cpu = time.perf_counter(), time.process_time()
        with CaptureQueriesContext(connection) as captured:
            response = client.get(f"/api/v1/stations/{station.code}/observations", query)
        assert response.status_code == 200 and response.content.count(b'"observed_at"') == count
        requests.append((time.perf_counter() - began) * 1000)
        cpu.append((time.process_time() - began_cpu) * 1000)
    # The request's own rows query (its last), inside PostgreSQL: the load-independent part of the wall time.
    rows_sql, rows_server = captured.captured_queries[-1]["sql"], []
    with connection.cursor() as cursor:
        for _ in range(repeats):
            cursor.execute(f"EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) {rows_sql}")
            rows_server.append(_json_plan(cursor.fetchone()[0])[0]["Execution Time"])
    REQUEST_DETAIL[station_pk] = (statistics.median(cpu[2:]), statistics.median(rows_server))
    # The first two runs warm the cache.
    return statistics.median(timings[2:]), statistics.median(server[2:]), count, statistics.median(requests[2:])


# Per station: (the request's CPU time in this process, its rows query inside PostgreSQL), medians in ms.
REQUEST_DETAIL: dict[int, tuple[float, float]] = {}


def _json_plan(value):
    return json.loads(value) if isinstance(value, str) else value


def measure(label: str, station_ids: list[int], until: datetime, repeats: int) -> dict:
    from django.db import connection

    fast_ms, fast_server_ms, fast_rows, fast_request_ms = time_history(station_ids[0], until, repeats)
    slow = [time_history(pk, until, repeats) for pk in station_ids[1:: len(station_ids) // 10][:10]]
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM sensors_observation")
        total = cursor.fetchone()[0]
    load = os.getloadavg()
    result = {
        "label": label, "rows": total, "fast_ms": fast_ms, "fast_server_ms": fast_server_ms, "fast_rows": fast_rows,
        "slow_ms": statistics.median(ms for ms, _, _, _ in slow), "slow_server_ms": statistics.median(ms for _, ms, _, _ in slow),
        "slow_rows": slow[0][2], "load": load, "fast_request_ms": fast_request_ms,
        "slow_request_ms": statistics.median(ms for _, _, _, ms in slow),
    }
    print(
        f"{label}: table {total:,} rows | 7-day history, 1-min station ({fast_rows:,} rows): {fast_ms:.1f} ms "
        f"fetched, {fast_server_ms:.1f} ms in PostgreSQL, {fast_request_ms:.1f} ms the JSON request | "
        f"10-min stations ({result['slow_rows']:,} rows): {result['slow_ms']:.1f} ms fetched, "
        f"{result['slow_server_ms']:.1f} ms in PostgreSQL, {result['slow_request_ms']:.1f} ms the JSON request | "
        f"the 1-min station's JSON request: CPU here {REQUEST_DETAIL[station_ids[0]][0]:.1f} ms, its rows query "
        f"inside PostgreSQL {REQUEST_DETAIL[station_ids[0]][1]:.1f} ms | "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
        flush=True,
    )
    return result


def plan(station_pk: int, until: datetime) -> str:
    from django.db import connection

    from sensors.models import Station
    from sensors.selectors import observation_range

    station = Station.objects.get(pk=station_pk)
    sql, params = observation_range(station=station, since=until - WINDOW, until=until).query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {sql}", params)
        return "\n".join(row[0] for row in cursor.fetchall())


def measure_kept(args) -> None:
    os.environ["DATABASE_URL"] = database_url(BENCH_DATABASE)
    setup_django()
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT max(observed_at) FROM sensors_observation")
        (newest,) = cursor.fetchone()
        cursor.execute("SELECT id FROM sensors_station ORDER BY code")
        station_ids = [pk for (pk,) in cursor.fetchall()]
    measure("kept", station_ids, newest + timedelta(minutes=1), args.repeats)
    connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=20, help="timed runs per station (median reported)")
    parser.add_argument("--stations", type=int, default=STATIONS, help="stations (a smaller number for a quick try)")
    parser.add_argument("--older-days", type=int, default=OLDER_DAYS, help="days loaded before the newest 7 in stage 2")
    parser.add_argument("--keep", action="store_true", help=f"keep the {BENCH_DATABASE} database afterwards")
    parser.add_argument("--measure-only", action="store_true",
                        help=f"load nothing: measure the {BENCH_DATABASE} an earlier --keep run left, as it is now "
                             "(to compare two versions of the code on the same table)")
    args = parser.parse_args()
    if args.measure_only:
        measure_kept(args)
        return

    recreate_database()
    try:
        setup_django()
        from sensors import partitions

        end = datetime.now(UTC).replace(second=0, microsecond=0)
        recent_start = end - timedelta(days=RECENT_DAYS)
        oldest = recent_start - timedelta(days=args.older_days)
        # Partitions for every loaded month exist, as the daily task leaves them in production.
        span = (end.year - oldest.year) * 12 + end.month - oldest.month
        created = partitions.partitions_ensure_ahead(months_ahead=span, now=oldest).created
        print(f"database {BENCH_DATABASE}: {len(created)} new month partitions from {oldest:%Y-%m}", flush=True)
        station_ids = build_stations(args.stations)

        rows, seconds = copy_readings(station_ids, recent_start, end)
        print(f"stage 1: COPY {rows:,} rows in {seconds:.1f} s ({rows / seconds:,.0f} rows/s)", flush=True)
        small = measure("stage 1", station_ids, end, args.repeats)

        rows, seconds = copy_readings(station_ids, oldest, recent_start)
        print(f"stage 2: COPY {rows:,} rows in {seconds:.1f} s ({rows / seconds:,.0f} rows/s)", flush=True)
        large = measure("stage 2", station_ids, end, args.repeats)

        print(
            f"ratio stage 2 / stage 1, fetched (in PostgreSQL): "
            f"1-min station {large['fast_ms'] / small['fast_ms']:.2f} ({large['fast_server_ms'] / small['fast_server_ms']:.2f}), "
            f"10-min stations {large['slow_ms'] / small['slow_ms']:.2f} ({large['slow_server_ms'] / small['slow_server_ms']:.2f}); "
            f"the JSON request: 1-min station {large['fast_request_ms'] / small['fast_request_ms']:.2f}, "
            f"10-min stations {large['slow_request_ms'] / small['slow_request_ms']:.2f}"
        )
        print("plan at stage 2 (1-min station):")
        print(plan(station_ids[0], end))
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep:
            drop_database()


if __name__ == "__main__":
    main()
