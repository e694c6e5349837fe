"""Station lists at 2,000 stations: the station list API and the HQ board's full build.

    .venv/bin/python bench/station_lists.py
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/mizumori .venv/bin/python bench/station_lists.py --stations 2000

Every station list (`sensors.selectors.station_list`) loads the readings each station's trend is
judged on (the trend's look-back, `sensors.trends.trend_readings_prefetch`). This times what that
costs at scale. Runs in a throw-away test database created the way the test suite creates it; seeds
public stations as bench/snapshot.py does, then a reading every 5 minutes over the last hour (12 per
station: the look-back of a 10-minute gauge holds 6–12), drains the change log, and times:

- "GET /api/v1/stations": anonymous, every station, through Django's test client;
- "map_stations": the HQ board's full build of its features (`dashboard.selectors.map_stations` for
  a member of the stations' town), which a process's first `/hq/` and every catalog change run;
- "GET /hq/, first load": the board page with its per-audience features forgotten first;
- "trend look-back alone": the prefetch on its own, for the same stations.

Each figure is the median of --rounds: this process's CPU time (`time.process_time`: PostgreSQL's
own work is not in it), wall time and queries, with the 1-minute load average beside it. Prints
figures; asserts nothing (docs/performance.md).
"""

import argparse
import os
import sys
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from snapshot import VALUES, run_in_test_database, seed, timed  # noqa: E402 (sets Django up)

from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.utils import timezone  # noqa: E402

LOOKBACK_STEP = timedelta(minutes=5)


def measure(args):
    from django.contrib.auth import get_user_model
    from django.db.models import prefetch_related_objects

    from dashboard.features import forget_audiences
    from dashboard.selectors import map_stations
    from events.services import drain_pending
    from sensors.models import Station
    from sensors.services import observation_ingest
    from sensors.trends import trend_readings_prefetch
    from tenancy.models import Membership, Municipality
    from tenancy.selectors import viewer_for_user

    now = timezone.now().replace(microsecond=0)
    stations = seed(args.stations, now - timedelta(hours=1))
    for step in range(12):
        at = now - timedelta(hours=1) + (step + 1) * LOOKBACK_STEP
        items = [{"station": s.code, "observed_at": at, "value": VALUES[s.kind] + 0.01 * step} for s in stations]
        for start in range(0, len(items), 1000):
            observation_ingest(municipality=None, items=items[start : start + 1000], source="http")
    drain_pending()
    town = Municipality.objects.get(slug="bench-town")
    user = get_user_model().objects.create_user("bench-viewer", password="bench-viewer-pw-123")
    Membership.objects.create(user=user, municipality=town, role=Membership.Role.VIEWER)
    viewer = viewer_for_user(user, town.pk)
    anonymous, member = Client(), Client()
    member.force_login(user)
    print(f"database: {connection.vendor}; {len(stations)} public stations, "
          f"{len(stations) * 12:,} readings in the trend look-back")

    def api():
        response = anonymous.get("/api/v1/stations")
        assert response.status_code == 200 and len(response.json()["features"]) == len(stations)

    def board():
        assert len(map_stations(viewer=viewer)) == len(stations)

    def hq_page():
        assert member.get("/hq/").status_code == 200

    def lookback():
        listed = list(Station.objects.all())
        prefetch_related_objects(listed, trend_readings_prefetch())

    for label, call, before in (
        ("GET /api/v1/stations", api, None),
        ("map_stations (HQ board build)", board, None),
        ("GET /hq/, first load", hq_page, lambda _: forget_audiences()),
        ("trend look-back alone", lookback, None),
    ):
        call()
        cpu, wall, queries = timed(call, args.rounds, before=before)
        print(f"  {label:32s} CPU {cpu:8.1f} ms  wall {wall:8.1f} ms  {queries:3d} queries  "
              f"loadavg {os.getloadavg()[0]:.2f}", flush=True)
    connection.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stations", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    run_in_test_database(measure, parser.parse_args())


if __name__ == "__main__":
    main()
