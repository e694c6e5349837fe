"""One trend rule for every door: a river creeping up 1 cm every 10 minutes is rising everywhere."""

from datetime import timedelta

import pytest
from django.db import connection
from django.db.models import Prefetch
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from dashboard.live import live_feature
from dashboard.selectors import map_stations, station_history
from sensors.selectors import station_list
from sensors.services import observation_ingest
from sensors.trends import station_trend
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


def test_station_lists_attach_the_look_back_as_plain_readings_without_model_instances(client, stations):
    from django.db.models import prefetch_related_objects
    from django.db.models.signals import pre_init

    from sensors.models import Observation, Station
    from sensors.trends import TREND_READINGS_ATTR, Reading, trend_readings_prefetch

    start = timezone.now().replace(microsecond=0) - timedelta(minutes=35)
    ingest("A-PUBLIC", start, [1.00, 1.01, 1.02, 1.03])
    Observation.objects.filter(station__code="A-PUBLIC", value=1.00).update(quality="suspect")
    built = []

    def count(sender, **kwargs):
        built.append(sender)

    pre_init.connect(count, sender=Observation)
    try:
        assert len(client.get("/api/v1/stations").json()["features"]) == 2
        listed = {station.code: station for station in station_list(viewer=ANONYMOUS)}
        assert len(map_stations(viewer=ANONYMOUS)) == 2
    finally:
        pre_init.disconnect(count, sender=Observation)
    assert built == []
    readings = getattr(listed["A-PUBLIC"], TREND_READINGS_ATTR)
    # Quality-flagged readings are left out, as reading_trend would drop them; times in microseconds.
    # A river gauge's rule reads only the window's oldest and newest reading, so on PostgreSQL only
    # those come (two index probes); SQLite reads the whole look-back, which the rule judges alike.
    expected = [1.01, 1.03] if connection.vendor == "postgresql" else [1.01, 1.02, 1.03]
    assert [reading.value for reading in readings] == expected
    assert all(isinstance(r, Reading) and isinstance(r.observed_at, int) for r in readings)
    assert getattr(listed["B-PUBLIC"], TREND_READINGS_ATTR) == []  # no reading: no trend

    # A plain list of stations gets it the same way, in one query, and a second prefetch is free.
    plain = list(Station.objects.filter(code__in=["A-PUBLIC", "B-PUBLIC"]).order_by("code"))
    with CaptureQueriesContext(connection) as captured:
        prefetch_related_objects(plain, trend_readings_prefetch())
        prefetch_related_objects(plain, trend_readings_prefetch())
    assert len(captured) == 1
    assert [station_trend(station) for station in plain] == ["steady", None]  # 1.01 → 1.03: within the band

    with pytest.raises(ValueError, match="takes no queryset"):
        prefetch_related_objects(plain[:1], Prefetch("trend_lookback", queryset=Observation.objects.all(), to_attr="x"))


def test_station_list_reads_the_look_back_in_one_query_whatever_the_number_of_stations(towns, django_assert_num_queries):
    from tests.conftest import make_station

    start = timezone.now().replace(microsecond=0) - timedelta(minutes=35)
    for i in range(25):
        make_station(towns[0], f"N{i:02d}")
        ingest(f"N{i:02d}", start, [1.0, 1.0 + i / 100, 1.0 + i / 50])
    with django_assert_num_queries(3):  # stations with owner and state, thresholds, look-backs
        trends = {station.code: station_trend(station) for station in station_list(viewer=ANONYMOUS)}
    assert trends["N00"] == "steady" and trends["N24"] == "rising"
