"""One trend rule for every door: a river creeping up 1 cm every 10 minutes is rising everywhere."""

from datetime import timedelta

import pytest
from django.utils import timezone

from dashboard.live import live_feature
from dashboard.selectors import map_stations, station_history
from sensors.selectors import station_list
from sensors.services import observation_ingest
from tenancy.selectors import ANONYMOUS

pytestmark = pytest.mark.django_db


def ingest(code, start, values, step=timedelta(minutes=10)):
    for index, value in enumerate(values):
        observation_ingest(
            municipality=None, items=[{"station": code, "observed_at": start + index * step, "value": value}],
            source="http",
        )


def trends_everywhere(client, code):
    now = timezone.now()
    api = {f["properties"]["code"]: f["properties"]["trend"] for f in client.get("/api/v1/stations").json()["features"]}
    on_map = {item.station.code: item.feature["properties"]["trend"] for item in map_stations(viewer=ANONYMOUS)}
    station = station_list(viewer=ANONYMOUS).get(code=code)
    live = live_feature(station, now=now, show_sharing=False)["properties"]["trend"]
    page = station_history(viewer=ANONYMOUS, code=code, since=now - timedelta(hours=6), until=now).trend
    return {"api": api[code], "map": on_map[code], "live": live, "page": page}


def test_a_slow_rise_within_the_noise_of_each_step_is_rising_on_every_door(client, stations):
    start = timezone.now().replace(microsecond=0) - timedelta(minutes=35)
    # 1.00 → 1.03 m over 30 minutes: each step (1 cm) is within the gauge noise, the half hour is not.
    ingest("A-PUBLIC", start, [1.00, 1.01, 1.02, 1.03])

    assert trends_everywhere(client, "A-PUBLIC") == {"api": "rising", "map": "rising", "live": "rising", "page": "rising"}


def test_a_steady_and_a_falling_river_agree_too(client, stations):
    start = timezone.now().replace(microsecond=0) - timedelta(minutes=35)
    ingest("A-PUBLIC", start, [1.00, 1.01, 1.00, 1.01])
    ingest("B-PUBLIC", start, [2.00, 1.90, 1.80, 1.70])

    assert set(trends_everywhere(client, "A-PUBLIC").values()) == {"steady"}
    assert set(trends_everywhere(client, "B-PUBLIC").values()) == {"falling"}


def test_only_the_readings_of_the_last_half_hour_count(client, stations):
    start = timezone.now().replace(microsecond=0) - timedelta(hours=2)
    # A big rise long ago, then flat for the last 40 minutes.
    ingest("A-PUBLIC", start, [1.0, 2.0, 3.0, 3.0, 3.0, 3.0, 3.0], step=timedelta(minutes=20))

    assert set(trends_everywhere(client, "A-PUBLIC").values()) == {"steady"}
