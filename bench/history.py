"""7-day history of one station (10,080 readings, one a minute): server time against SQL time.

    .venv/bin/python bench/history.py
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/mizumori .venv/bin/python bench/history.py

Prints figures; asserts nothing. "SQL" is the same range query fetched as plain tuples through a
cursor, so "beyond SQL" is what the endpoint adds (visibility check, formatting, rendering).
Runs in a throw-away test database created the way the test suite creates it.

Then the request by stages, each the median of the same number of runs (wall and this process's CPU):
a request refused with 404 (middleware, DRF and the visibility query: what every request pays), the
station lookups, the rows as the endpoint reads them (`observation_history_text`; on PostgreSQL also
its execution time inside PostgreSQL, EXPLAIN ANALYZE), and the whole JSON request with Brotli and
with gzip as browsers ask for it.
"""

import gzip
import json
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

from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402
from django.utils import timezone  # noqa: E402

READINGS = 7 * 24 * 60
ROUNDS = 15


def build_history():
    from sensors.models import Observation, Station
    from tenancy.models import Municipality

    town = Municipality.objects.create(code="990094", slug="bench-town", name_ja="ベンチ町", name_en="Bench Town")
    station = Station.objects.create(code="H-1.0", name_ja="履歴", name_en="History", kind="river", municipality=town,
                                     lon=140, lat=35, unit="m", visibility="public")
    until = timezone.now().replace(second=0, microsecond=0)
    Observation.objects.bulk_create(
        (Observation(station=station, observed_at=until - timedelta(minutes=i), value=1.0 + (i % 500) / 137,
                     quality="ok", received_at=until, source="import") for i in range(READINGS)),
        batch_size=140,
    )
    return station, until


def median_ms(call) -> tuple[float, float]:
    """Median wall time and median CPU time of this process (the shared machine's load inflates the
    first; the second is what the server itself spends, SQL excluded on PostgreSQL)."""
    durations, cpu = [], []
    for _ in range(ROUNDS):
        began, began_cpu = time.perf_counter(), time.process_time()
        call()
        durations.append(time.perf_counter() - began)
        cpu.append(time.process_time() - began_cpu)
    return statistics.median(durations) * 1000, statistics.median(cpu) * 1000


def stages(client, station, since, until, query):
    from django.test.utils import CaptureQueriesContext

    from sensors import selectors
    from tenancy.selectors import ANONYMOUS

    url = f"/api/v1/stations/{station.code}/observations"

    def refused():
        assert client.get("/api/v1/stations/NO-SUCH-STATION/observations", query).status_code == 404

    def rows():
        selectors.observation_history_text(station=station, since=since, until=until)

    def encoded(encoding):
        def get():
            response = client.get(url, query, HTTP_ACCEPT_ENCODING=encoding)
            assert response.status_code == 200 and response["Content-Encoding"] == encoding.split(",")[-1].strip()
        return get

    named = [("404 (middleware, DRF, visibility query)", refused)]
    for lookup in ("station_get", "visible_station_get"):  # the second is this branch's
        if hasattr(selectors, lookup):
            named.append((lookup, lambda lookup=lookup: getattr(selectors, lookup)(viewer=ANONYMOUS, code=station.code)))
    named += [("rows (observation_history_text)", rows), ("JSON, Brotli", encoded("gzip, br")), ("JSON, gzip", encoded("gzip"))]
    print(f"stages, median of {ROUNDS} (load {os.getloadavg()[0]:.2f}):")
    for name, call in named:
        call()
        total, cpu = median_ms(call)
        print(f"  {name}: {total:.1f} ms wall, CPU here {cpu:.1f} ms")
    if connection.vendor == "postgresql":
        with CaptureQueriesContext(connection) as captured:
            rows()
        sql = captured.captured_queries[-1]["sql"]
        executions = []
        with connection.cursor() as cursor:
            for _ in range(ROUNDS):
                cursor.execute(f"EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) {sql}")
                plan = cursor.fetchone()[0]
                plan = json.loads(plan) if isinstance(plan, str) else plan
                executions.append(plan[0]["Execution Time"])
        print(f"  rows: execution inside PostgreSQL {statistics.median(executions):.1f} ms")


def main():
    setup_test_environment()
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        station, until = build_history()
        since = until - timedelta(days=7) + timedelta(minutes=1)
        query = {"since": since.isoformat(), "until": until.isoformat()}
        from django.db.models import TextField
        from django.db.models.functions import Cast

        from sensors.models import Observation

        # The query the endpoint runs (times as text), fetched as raw tuples.
        range_sql, params = (
            Observation.objects.filter(station=station, observed_at__gte=since, observed_at__lte=until)
            .order_by("observed_at").annotate(observed_text=Cast("observed_at", output_field=TextField()))
            .values_list("observed_text", "value", "quality").query.sql_with_params()
        )

        def sql():
            with connection.cursor() as cursor:
                cursor.execute(range_sql, params)
                assert len(cursor.fetchall()) == READINGS

        client = Client()
        print(f"database: {connection.vendor}; {READINGS:,} readings in the window")
        sql_ms, sql_cpu = median_ms(sql)
        print(f"SQL alone: {sql_ms:.1f} ms (CPU here {sql_cpu:.1f} ms)")
        for output in ("json", "csv"):
            def get(output=output):
                response = client.get(f"/api/v1/stations/{station.code}/observations", {**query, "format": output})
                assert response.status_code == 200
                return b"".join(response) if response.streaming else response.content

            body = get()
            total, cpu = median_ms(get)
            print(f"{output}: {total:.1f} ms ({total - sql_ms:.1f} ms beyond SQL; CPU here {cpu:.1f} ms, "
                  f"{cpu - sql_cpu:.1f} beyond SQL), {len(body) / 1024:.0f} KiB, gzip {len(gzip.compress(body)) / 1024:.0f} KiB")
        stages(client, station, since, until, query)
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
