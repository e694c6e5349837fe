"""The fictional demo region (seed_demo), its basin model and weather, and the storm simulator (simulate_storm)."""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO
from typing import ClassVar

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from shapely.geometry import Point, shape
from shapely.ops import unary_union

from dashboard.demo import hydrology, region, storm, weather
from dashboard.demo.seed import DEFAULT_PASSWORD, demo_seed
from geo.models import Basin, River
from sensors.models import (
    PHYSICAL_LIMITS,
    Observation,
    Station,
    StationKind,
    StationState,
    Threshold,
    Visibility,
)
from sensors.selectors import station_is_stale, tide_harmonics_of
from sensors.tide import predict as tide_predict
from tenancy.models import IngestToken, Membership, Municipality

RIVER_ORDER = ["standby", "flood_caution", "evacuation_decision", "flood_danger", "flooding"]
RIVER_LABELS = ["水防団待機水位", "氾濫注意水位", "避難判断水位", "氾濫危険水位", "氾濫発生"]
RIVER_LEVELS = [None, 2, 3, 4, 5]
HILL_RAIN_GAUGES = ["KWS-P01", "KWS-P02", "KWS-P03", "KWS-P04"]
LEVEL_4_GAUGE = "KWS-R05"  # the core city's main gauge is the one the design storm takes to 氾濫危険水位
MAIN_RIVER = [f"KWS-R{n:02d}" for n in range(1, 11)]
AREA_TOLERANCE = 1e-9  # square degrees: about 0.01 m², rounding noise only
ONE_HOUR_STEPS = 6
MAX_HOURLY_RAIN_MM = 120
MAX_RISE_M_PER_HOUR = 2.0
# A fixed timeline for the pure model tests: no clock involved.
ANCHOR = datetime(2026, 6, 15, 3, 0, tzinfo=UTC)
SHORT_HISTORY = timedelta(days=1)


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    # The seed hashes ten passwords per run; the production hasher would take seconds.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


class FakeClock:
    """Stands in for storm.WallClock: sleeping moves time on instead of waiting."""

    def __init__(self, start):
        self.current = start.replace(microsecond=0)
        self.slept = []

    def now(self):
        return self.current

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.current += timedelta(seconds=seconds)


@pytest.fixture
def seed_now():
    # Two hours back, so that live readings on a fake clock after it are still in the real past.
    return timezone.now() - timedelta(hours=2)


@pytest.fixture
def seeded(db, seed_now):
    return demo_seed(now=seed_now, history_length=SHORT_HISTORY)


@pytest.fixture
def seeded_without_history(db):
    return demo_seed(history=False)


@pytest.fixture
def storm_clock(monkeypatch, seed_now):
    clock = FakeClock(seed_now + timedelta(minutes=1))
    monkeypatch.setattr(storm, "WallClock", lambda: clock)
    return clock


def town_shapes():
    return {town.slug: shape(town.boundary) for town in Municipality.objects.filter(slug__in=region.TOWN_SLUGS)}


def demo_counts():
    models = (Municipality, Station, Threshold, Membership, Basin, River, Observation, StationState)
    return {model.__name__: model.objects.count() for model in models} | {
        "users": get_user_model().objects.count()
    }


def hourly_totals(amounts):
    return [sum(amounts[i : i + ONE_HOUR_STEPS]) for i in range(max(len(amounts) - ONE_HOUR_STEPS + 1, 1))]


def level_of(code, value):
    spec = region.station(code)
    return max([t.level or 0 for t in spec.thresholds if t.window is None and value >= t.value] or [0])


# --- the region ---------------------------------------------------------------------------------


def test_local_government_codes_are_fictional_with_valid_check_digits():
    codes = [town.code for town in region.TOWNS]
    assert len(set(codes)) == 3
    for code in codes:
        assert len(code) == 6 and code.isdigit() and code.startswith("99")
        assert region.local_government_code(code[:5]) == code
    # Known real codes, to prove the check-digit rule itself: 新宿区 131041, 札幌市 011002.
    assert region.local_government_code("13104") == "131041"
    assert region.local_government_code("01100") == "011002"


@pytest.mark.django_db
def test_seed_creates_three_fictional_towns_with_valid_adjacent_boundaries():
    demo_seed(history=False)
    towns = Municipality.objects.filter(slug__in=region.TOWN_SLUGS)
    assert towns.count() == 3
    for town in towns:
        assert "架空" in town.name_ja and "(fictional)" in town.name_en
        ring = town.boundary["coordinates"][0]
        assert town.boundary["type"] == "Polygon" and ring[0] == ring[-1] and len(ring) >= 20
        polygon = shape(town.boundary)
        assert polygon.is_valid and polygon.exterior.is_ccw
    shapes = town_shapes()
    for a, b in itertools.combinations(shapes, 2):
        assert shapes[a].intersection(shapes[b]).area < AREA_TOLERANCE, (a, b)
    upstream, core, coast = (shapes[slug] for slug in region.TOWN_SLUGS)
    assert upstream.intersection(core).length > 0.05  # a shared border, not a corner
    assert core.intersection(coast).length > 0.05
    assert upstream.distance(coast) > 0


@pytest.mark.django_db
def test_seed_creates_basin_covering_the_towns_and_rivers_from_hills_to_sea():
    demo_seed(history=False)
    basin = Basin.objects.get(name_en=region.BASIN_NAME_EN)
    basin_shape = shape(basin.geometry)
    assert basin_shape.is_valid
    assert basin_shape.symmetric_difference(unary_union(list(town_shapes().values()))).area < AREA_TOLERANCE
    rivers = River.objects.filter(basin=basin)
    assert rivers.count() == 3
    for river in rivers:
        line = shape(river.geometry)
        assert river.geometry["type"] == "LineString" and line.is_valid
        assert basin_shape.buffer(0.002).contains(line), river.name_en  # the mouth sits on the coastline
    main = shape(River.objects.get(name_en=region.RIVERS_BY_KEY["kawasemi"].name_en).geometry)
    source, mouth = Point(main.coords[0]), Point(main.coords[-1])
    shapes = town_shapes()
    assert shapes["okumidori"].contains(source)
    assert shapes["midorihama"].buffer(0.002).contains(mouth)


@pytest.mark.django_db
def test_stations_mix_kinds_and_visibility_in_every_town_and_sit_inside_it():
    demo_seed(history=False)
    stations = list(Station.objects.filter(code__in=region.STATIONS_BY_CODE).select_related("municipality"))
    assert len(stations) >= 30
    shapes = town_shapes()
    for slug in region.TOWN_SLUGS:
        owned = [station for station in stations if station.municipality.slug == slug]
        assert {station.visibility for station in owned} == set(Visibility.values), slug
        # Every town has the inland kinds; only the coast has a tide gauge (below).
        assert {station.kind for station in owned} - {StationKind.TIDE} == set(StationKind.values) - {StationKind.TIDE}, slug
    tide_gauges = [station for station in stations if station.kind == StationKind.TIDE]
    assert [(s.code, s.municipality.slug, s.datum, s.visibility) for s in tide_gauges] == [
        ("KWS-H01", region.COAST, "T.P.", Visibility.PUBLIC)
    ]
    assert [t.label_ja for t in tide_gauges[0].thresholds.order_by("value")] == ["高潮注意潮位", "高潮警戒潮位", "高潮危険潮位"]
    for station in stations:
        assert shapes[station.municipality.slug].contains(Point(station.lon, station.lat)), station.code
        assert station.unit == {"river": "m", "rain": "mm", "reservoir": "%", "tide": "m"}[station.kind]
    flood_gauges = [station.code for station in stations if station.expected_interval is None]
    assert 1 <= len(flood_gauges) <= 2 and all(Station.objects.get(code=c).kind == "river" for c in flood_gauges)
    assert Counter(station.expected_interval for station in stations)[timedelta(minutes=10)] == len(stations) - len(
        flood_gauges
    )


@pytest.mark.django_db
def test_thresholds_follow_the_japanese_scales():
    demo_seed(history=False)
    for station in Station.objects.filter(code__in=region.STATIONS_BY_CODE).prefetch_related("thresholds"):
        thresholds = sorted(station.thresholds.all(), key=lambda t: t.value)
        if station.kind == StationKind.RIVER:
            assert [t.name for t in thresholds] == RIVER_ORDER, station.code
            assert [t.label_ja for t in thresholds] == RIVER_LABELS
            assert [t.level for t in thresholds] == RIVER_LEVELS
            values = [t.value for t in thresholds]
            assert all(low < high for low, high in itertools.pairwise(values)), station.code
            assert all(t.window is None for t in thresholds)
        elif station.kind == StationKind.RAIN:
            hourly = {t.value: t.level for t in thresholds if t.window == timedelta(hours=1)}
            assert hourly == {20.0: 2, 30.0: 3, 50.0: 4, 80.0: 5}
        elif station.kind == StationKind.TIDE:
            assert [(t.level, t.label_ja) for t in thresholds] == [(2, "高潮注意潮位"), (3, "高潮警戒潮位"), (4, "高潮危険潮位")]
            # Its astronomical baseline is stored with it: the anomaly is readable from the start.
            assert tide_harmonics_of(station).as_document() == region.tide_harmonics(region.station(station.code)).as_document()
        else:
            assert [t.level for t in thresholds] == [2, 3, 4]
            assert [t.label_ja for t in thresholds] == ["常時満水位", "洪水時満水位", "堤頂越流"]


@pytest.mark.django_db
def test_seed_creates_town_users_and_platform_admin_with_the_password():
    demo_seed(history=False, password="first-pass-123")
    User = get_user_model()
    for slug in region.TOWN_SLUGS:
        for role in ("admin", "operator", "viewer"):
            user = User.objects.get(username=f"{slug}-{role}")
            assert user.check_password("first-pass-123")
            assert not user.is_superuser
            assert list(user.memberships.values_list("municipality__slug", "role")) == [(slug, role)]
    admin = User.objects.get(username="platform-admin")
    assert admin.is_superuser and admin.is_staff and admin.check_password("first-pass-123")
    assert User.objects.filter(username__in=[f"{s}-{r}" for s in region.TOWN_SLUGS for r in ("admin", "operator", "viewer")]).count() == 9

    demo_seed(history=False)  # an existing user gets the (default) password again
    assert User.objects.get(username="midorigahara-viewer").check_password(DEFAULT_PASSWORD)
    assert User.objects.get(username="platform-admin").check_password(DEFAULT_PASSWORD)


# --- the basin model and the weather (pure) -----------------------------------------------------


@pytest.fixture(scope="module")
def design_run():
    """The design storm alone over a calm basin: 30 hours of snapshots."""
    storm_alone = hydrology.design_storm(ANCHOR)
    run = hydrology.BasinRun(lambda at: [storm_alone] if storm_alone.start < at else [], ANCHOR)
    return list(run.run_until(ANCHOR + timedelta(hours=30)))


@pytest.fixture(scope="module")
def timeline():
    """The whole demo timeline: 60 days of history, the current storm and two later ones (--loop)."""
    demo_weather = weather.Weather(anchor=ANCHOR)
    run = hydrology.BasinRun(demo_weather.storms_until, demo_weather.history_start)
    return demo_weather, list(run.run_until(ANCHOR + timedelta(days=3)))


def series(snapshots, code):
    return [snapshot.values[code] for snapshot in snapshots]


def test_the_model_is_deterministic_given_the_seed(design_run):
    storm_alone = hydrology.design_storm(ANCHOR)
    again = hydrology.BasinRun(lambda at: [storm_alone], ANCHOR)
    assert [snapshot.values for snapshot in again.run_until(ANCHOR + timedelta(hours=30))] == [
        snapshot.values for snapshot in design_run
    ]
    assert weather.Weather(ANCHOR).past_storms == weather.Weather(ANCHOR).past_storms
    assert weather.Weather(ANCHOR).later_storm(3) == weather.Weather(ANCHOR).later_storm(3)
    assert weather.Weather(ANCHOR, seed=7).past_storms != weather.Weather(ANCHOR).past_storms


def test_the_anchor_must_be_on_the_10_minute_grid():
    with pytest.raises(ValueError, match="10-minute grid"):
        weather.Weather(anchor=ANCHOR + timedelta(minutes=3))


def test_rain_readings_add_up_to_the_hyetographs(timeline):
    demo_weather, snapshots = timeline
    storms = demo_weather.storms_until(snapshots[-1].at)
    start = demo_weather.history_start
    for spec in hydrology.rain_gauges():
        total = 0.0
        for snapshot in snapshots:
            total += snapshot.values[spec.code]
        expected = hydrology.cumulative_rain(spec, storms, snapshots[-1].at) - hydrology.cumulative_rain(
            spec, storms, start
        )
        assert abs(total - expected) < hydrology.TIP_MM, spec.code
        # Any window: the readings in it equal the hyetograph's integral over it, to within one tip.
        amounts = series(snapshots, spec.code)
        peak = max(range(len(amounts)), key=amounts.__getitem__)
        window_start, window_end = snapshots[peak - 3].at, snapshots[peak + 2].at
        in_window = sum(amounts[peak - 2 : peak + 3])
        integral = hydrology.cumulative_rain(spec, storms, window_end) - hydrology.cumulative_rain(
            spec, storms, window_start
        )
        assert abs(in_window - integral) < hydrology.TIP_MM * 2, spec.code
        assert all(amount >= 0 and (amount / hydrology.TIP_MM).is_integer() for amount in amounts)


def test_rain_stays_physical_and_the_design_storm_is_a_heavy_one(timeline, design_run):
    _, snapshots = timeline
    for spec in hydrology.rain_gauges():
        assert max(hourly_totals(series(snapshots, spec.code))) <= MAX_HOURLY_RAIN_MM, spec.code
    design_hourly = {code: max(hourly_totals(series(design_run, code))) for code in HILL_RAIN_GAUGES}
    assert all(30 <= total <= 80 for total in design_hourly.values()), design_hourly  # 激しい / 非常に激しい雨
    hills, coast = series(design_run, "KWS-P02"), series(design_run, "KWS-P08")
    assert hills.index(max(hills)) < coast.index(max(coast))  # the cell drifts towards the sea
    assert max(hourly_totals(coast)) < max(hourly_totals(hills))


def test_runoff_tanks_and_reservoirs_balance_their_water():
    storm_alone = hydrology.design_storm(ANCHOR)
    basin = hydrology.Basin(hydrology.calibration())
    stored_before = {code: tank.stored for code, tank in basin.state.tanks.items()}
    volume_before = {code: r.volume for code, r in basin.state.reservoirs.items()}
    rained = Counter()
    ran_off = Counter()
    evaporated = Counter()
    net_inflow = Counter()
    for at in hydrology.grid(ANCHOR + hydrology.STEP, ANCHOR + timedelta(hours=48)):
        rain = {spec.code: hydrology.rain_reading(spec, [storm_alone], at) for spec in hydrology.rain_gauges()}
        basin.step(rain)
        for code in basin.state.tanks:
            rained[code] += basin.catchment_rain(code, rain)
            ran_off[code] += basin.runoff_mm[code]
            evaporated[code] += basin.evaporated_mm[code]
        for code in basin.state.reservoirs:
            net_inflow[code] += (basin.inflows[code] - basin.outflows[code]) * hydrology.STEP_SECONDS
    for code, tank in basin.state.tanks.items():
        assert rained[code] > 40
        balance = rained[code] - ran_off[code] - evaporated[code] - (tank.stored - stored_before[code])
        assert abs(balance) < 1e-6, code
    for code, reservoir in basin.state.reservoirs.items():
        assert abs(reservoir.volume - volume_before[code] - net_inflow[code]) < 1e-3 * reservoir.full_volume, code


def test_a_reach_delays_and_flattens_a_flood_wave_but_loses_no_water():
    reach = hydrology.Reach(lag=timedelta(minutes=35), k=timedelta(minutes=20), initial_flow=0.0)
    inflow = [0.0, 50.0, 100.0, 50.0] + [0.0] * 200
    outflow = [reach.step(q) for q in inflow]
    assert abs(sum(outflow) - sum(inflow)) < 1e-6 * sum(inflow)
    assert outflow.index(max(outflow)) > inflow.index(max(inflow)) + 2
    assert max(outflow) < max(inflow)


def test_a_rating_curve_passes_through_its_two_survey_points():
    curve = hydrology.RatingCurve.through((3.0, 0.95), (420.0, 4.15))
    assert curve.stage(3.0) == pytest.approx(0.95)
    assert curve.stage(420.0) == pytest.approx(4.15)
    assert curve.stage(100.0) < curve.stage(200.0)


def test_rivers_rise_at_most_2_m_an_hour(timeline):
    _, snapshots = timeline
    for spec in hydrology.river_gauges():
        values = series(snapshots, spec.code)
        rises = [
            later - earlier
            for earlier, later in zip(values, values[ONE_HOUR_STEPS:])
            if earlier is not None and later is not None
        ]
        steps = [later - earlier for earlier, later in itertools.pairwise(values) if None not in (earlier, later)]
        assert max(rises) <= MAX_RISE_M_PER_HOUR, spec.code
        assert max(steps) <= MAX_RISE_M_PER_HOUR / ONE_HOUR_STEPS + 0.02, spec.code


def test_downstream_peaks_lag_upstream_peaks(design_run, timeline):
    def peak_time(snapshots, code):
        return max(snapshots, key=lambda snapshot: snapshot.flows[code]).at

    main = [peak_time(design_run, code) for code in MAIN_RIVER]
    assert main == sorted(main) and main[-1] - main[0] >= timedelta(hours=2)
    assert peak_time(design_run, "SWI-R01") < peak_time(design_run, "SWI-F01")
    assert peak_time(design_run, "KTK-R01") < peak_time(design_run, "KTK-R02") < peak_time(design_run, "KTK-F01")
    # The same in every past storm: the wave at the core city comes after the one in the hills.
    demo_weather, snapshots = timeline
    for past in demo_weather.past_storms:
        window = [s for s in snapshots if past.start <= s.at < past.start + timedelta(hours=24)]
        assert peak_time(window, "KWS-R02") < peak_time(window, "KWS-R05") < peak_time(window, "KWS-R09")


def test_the_design_storm_takes_gauges_to_levels_2_3_and_4_but_not_5(design_run):
    reached = {
        spec.code: max(level_of(spec.code, v) for v in series(design_run, spec.code) if v is not None)
        for spec in hydrology.river_gauges()
    }
    assert reached[LEVEL_4_GAUGE] == 4
    assert Counter(reached.values())[3] >= 2 and Counter(reached.values())[2] >= 2
    assert 5 not in reached.values()


def test_the_demo_opens_with_river_gauges_at_levels_2_3_and_4(design_run):
    opening = ANCHOR + weather.SHOW_LEAD
    for snapshot in design_run:
        if opening <= snapshot.at <= opening + timedelta(minutes=30):
            levels = {level_of(code, value) for code, value in snapshot.values.items()
                      if region.station(code).kind == StationKind.RIVER and value is not None}
            assert {2, 3, 4} <= levels, snapshot.at


def test_the_design_storm_drives_a_storm_surge_at_the_harbour_over_the_astronomical_tide(design_run, timeline):
    spec = region.station("KWS-H01")
    harmonics = region.tide_harmonics(spec)
    caution, _, danger = (t.value for t in spec.thresholds)
    # Calm weather (the dry spells of the history): the tide alone stays below 高潮注意潮位 …
    demo_weather, snapshots = timeline
    calm = [s for s in snapshots if hydrology.surge_m(spec, demo_weather.storms_until(s.at), s.at) < 0.01]
    assert len(calm) > 1000 and max(s.values["KWS-H01"] for s in calm) < caution
    # … and the anomaly (observed − the astronomical tide) is noise there; the design storm's surge
    # lifts the sea past 高潮注意潮位 with an anomaly of about a metre.
    calm_anomaly = [s.values["KWS-H01"] - tide_predict(harmonics, [s.at])[0] for s in calm[::50]]
    assert max(abs(a) for a in calm_anomaly) < 0.05
    anomaly = [s.values["KWS-H01"] - tide_predict(harmonics, [s.at])[0] for s in design_run]
    assert 1.3 < max(anomaly) < 1.8
    assert caution <= max(series(design_run, "KWS-H01")) < danger
    # Whatever the hour the demo starts: the surge over the highest water stays below 高潮危険潮位 …
    assert harmonics.mean_level + sum(c.amplitude for c in harmonics.constituents) + spec.storm_response < danger
    # … and over the lowest tide around its peak reaches 高潮注意潮位 (the storm shifted through a day).
    storm_alone = hydrology.design_storm(ANCHOR)
    for hours in range(0, 25, 2):
        at = [storm_alone.start + timedelta(hours=hours, minutes=10 * i) for i in range(6 * 12)]
        moved = [t - timedelta(hours=hours) for t in at]
        levels = [tide + hydrology.surge_m(spec, [storm_alone], when)
                  for tide, when in zip(tide_predict(harmonics, at), moved)]
        assert caution <= max(levels) < danger, hours


def test_reservoirs_fill_from_inflow_and_release_afterwards(design_run):
    for spec in hydrology.reservoirs():
        values = series(design_run, spec.code)
        assert values[0] == spec.base
        assert max(values) > spec.base + 5, spec.code
        assert values[-1] < max(values), spec.code
    assert max(series(design_run, "KWS-D01")) >= 100  # the dam reaches 常時満水位


def test_flood_gauges_send_only_above_their_start_level(design_run):
    for spec in region.STATIONS:
        if spec.start_level is None:
            continue
        values = series(design_run, spec.code)
        assert values[0] is None
        sent = [value for value in values if value is not None]
        assert sent and min(sent) >= spec.start_level


def test_history_holds_several_storms_with_dry_spells_between(timeline):
    demo_weather, snapshots = timeline
    storms = demo_weather.past_storms
    assert 4 <= len(storms) <= 6
    starts = [past.start for past in storms]
    assert starts == sorted(starts) and starts[0] >= demo_weather.history_start
    assert all(later - earlier >= timedelta(days=5) for earlier, later in itertools.pairwise(starts))
    assert starts[-1] <= ANCHOR - weather.QUIET_BEFORE_ANCHOR
    assert len({round(past.scale, 3) for past in storms}) == len(storms)  # storms of different sizes
    history = [s for s in snapshots if s.at <= ANCHOR]
    wet_days = {s.at.date() for s in history if any(s.rain_mm.values())}
    assert 5 <= len(wet_days) <= 20
    before_anchor = [s for s in history if s.at > ANCHOR - timedelta(days=2)]
    assert all(level_of(code, s.values[code]) == 0 for s in before_anchor for code in MAIN_RIVER)


def test_the_loop_brings_new_storms_after_the_current_one(timeline):
    demo_weather, snapshots = timeline
    later = [demo_weather.later_storm(n) for n in (1, 2)]
    assert ANCHOR + weather.SHOW_LENGTH < later[0].start < later[1].start
    assert [s for s in demo_weather.storms_until(ANCHOR + timedelta(days=3)) if s.start > ANCHOR] == later
    after_show = [s for s in snapshots if s.at > later[1].start]
    assert max(s.values["KWS-R05"] for s in after_show) > region.station("KWS-R05").base + 0.3


def test_the_script_silences_one_gauge_and_spikes_another_once():
    demo_weather = weather.Weather(ANCHOR)
    script = storm.Script.for_run(demo_weather, ANCHOR + weather.SHOW_LEAD + timedelta(minutes=4))
    assert script.spike_at == ANCHOR + weather.SHOW_LEAD
    times = list(hydrology.grid(ANCHOR, ANCHOR + timedelta(hours=14)))
    spiked = [at for at in times if script.reading(storm.SPIKE_GAUGE, at, 1.0) != 1.0]
    assert spiked == [script.spike_at] and script.reading(storm.SPIKE_GAUGE, script.spike_at, 1.0) == 5.0
    silent = [at for at in times if script.reading(storm.SILENT_GAUGE, at, 1.0) is None]
    assert silent[0] == ANCHOR + storm.SILENT_FROM and silent[-1] < demo_weather.show_end
    last_reading = silent[0] - hydrology.STEP
    stale_after = last_reading + 2 * region.station(storm.SILENT_GAUGE).expected_interval
    assert stale_after < ANCHOR + weather.SHOW_LEAD  # stale when the demo opens
    assert script.reading("KWS-R05", script.spike_at, 1.0) == 1.0
    # A run that starts before the current storm or after it has passed spikes nothing.
    assert storm.Script.for_run(demo_weather, ANCHOR - timedelta(hours=1)).spike_at is None
    assert storm.Script.for_run(demo_weather, demo_weather.show_end + timedelta(hours=1)).spike_at is None


# --- seed_demo: history -------------------------------------------------------------------------


@pytest.mark.django_db
def test_seed_demo_command_writes_60_days_of_past_storms_up_to_the_current_storm():
    before = timezone.now()
    out = StringIO()
    call_command("seed_demo", "--password", "cmd-pass-456", stdout=out)
    text = out.getvalue()
    assert "fictional" in text and "Towns: 3" in text and "stations: 31" in text and "users: 10" in text
    assert "5 past storms" in text and "platform-admin" in text and "cmd-pass-456" in text
    assert get_user_model().objects.get(username="okumidori-admin").check_password("cmd-pass-456")

    anchor = hydrology.grid_floor(before) - weather.SHOW_LEAD
    assert anchor <= hydrology.grid_floor(timezone.now()) - weather.SHOW_LEAD
    steps = int(weather.HISTORY / hydrology.STEP)
    for spec in region.STATIONS:
        observations = Observation.objects.filter(station__code=spec.code)
        times = observations.order_by("observed_at").values_list("observed_at", flat=True)
        if spec.expected_interval is None:
            assert 0 < len(times) < steps // 10, "a flood gauge reports only in storms"
        else:
            assert len(times) == steps, spec.code
            assert times[0] == anchor - weather.HISTORY + hydrology.STEP
        assert set(observations.values_list("source", flat=True)) == {Observation.Source.SEED}
    assert Observation.objects.filter(observed_at__gt=anchor).count() == 0
    states = StationState.objects.filter(station__code__in=region.STATIONS_BY_CODE)
    regular = states.exclude(station__expected_interval=None)
    assert {state.observed_at for state in regular} == {anchor}
    assert {state.level for state in regular} == {0}  # the dry spell before the current storm
    # The past storms are in the data: rivers crossed thresholds, rain piled up.
    r05 = list(Observation.objects.filter(station__code="KWS-R05").values_list("value", flat=True))
    assert max(r05) >= region.station("KWS-R05").thresholds[1].value
    p02 = list(Observation.objects.filter(station__code="KWS-P02").order_by("observed_at").values_list("value", flat=True))
    assert max(hourly_totals(p02)) >= 30
    for kind, (low, high) in PHYSICAL_LIMITS.items():
        assert not Observation.objects.filter(station__kind=kind).exclude(value__gte=low, value__lte=high).exists()


@pytest.mark.django_db
def test_seeding_again_rewrites_the_same_history(seeded, seed_now):
    before = demo_counts()
    values_before = list(Observation.objects.order_by("station_id", "observed_at").values_list("value", flat=True))
    again = demo_seed(now=seed_now, history_length=SHORT_HISTORY)
    assert demo_counts() == before
    assert again.replaced == seeded.written == again.written
    assert values_before == list(
        Observation.objects.order_by("station_id", "observed_at").values_list("value", flat=True)
    )
    assert again.stations_retuned == 0


@pytest.mark.django_db
def test_seeding_again_replaces_readings_from_an_earlier_demo_run(seeded, seed_now):
    stray = Station.objects.get(code="KWS-R05")
    Observation.objects.create(
        station=stray, observed_at=seed_now, value=3.3, received_at=seed_now, source=Observation.Source.HTTP
    )
    demo_seed(now=seed_now, history_length=SHORT_HISTORY)
    assert not Observation.objects.filter(station=stray, observed_at__gt=seeded.weather.anchor).exists()
    assert StationState.objects.get(station=stray).observed_at == seeded.weather.anchor


@pytest.mark.django_db
def test_reseeding_restores_edited_thresholds_and_recomputes_the_level(seeded, seed_now):
    station = Station.objects.get(code="KWS-R05")
    Threshold.objects.filter(station=station, name="flood_caution").update(value=0.1)
    Threshold.objects.create(station=station, name="made_up", label_ja="x", label_en="x", level=5, value=0.2)
    StationState.objects.filter(station=station).update(level=5)

    again = demo_seed(now=seed_now, history=False)

    assert again.stations_retuned == 1
    assert sorted(station.thresholds.values_list("name", flat=True)) == sorted(RIVER_ORDER)
    assert station.thresholds.get(name="flood_caution").value == 2.9
    assert StationState.objects.get(station=station).level == 0


# --- simulate_storm, in-process -----------------------------------------------------------------


def readings(code, source=Observation.Source.SIMULATOR):
    return list(
        Observation.objects.filter(station__code=code, source=source)
        .order_by("observed_at")
        .values_list("observed_at", "value", "quality")
    )


@pytest.mark.django_db
def test_simulate_storm_backfills_the_storm_then_reads_every_10_minutes(seeded, storm_clock):
    anchor = seeded.weather.anchor
    started = storm_clock.now()
    out = StringIO()
    call_command("simulate_storm", "--steps", "0", stdout=out, stderr=StringIO())
    assert "backfilled up to" in out.getvalue()
    last_backfilled = hydrology.grid_floor(started)
    assert last_backfilled - anchor >= weather.SHOW_LEAD
    r05 = readings("KWS-R05")
    assert [at for at, _, _ in r05] == list(hydrology.grid(anchor + hydrology.STEP, last_backfilled))

    # The map as the demo opens: levels 2, 3 and 4 among river gauges, a stale gauge, a flagged spike.
    now = storm_clock.now()
    states = {s.station.code: s for s in StationState.objects.select_related("station")}
    river_levels = {states[spec.code].level for spec in hydrology.river_gauges() if spec.code in states}
    assert {2, 3, 4} <= river_levels
    assert states[LEVEL_4_GAUGE].level == 4
    assert station_is_stale(states[storm.SILENT_GAUGE].station, now=now)
    assert [code for code, s in states.items() if station_is_stale(s.station, now=now)] == [storm.SILENT_GAUGE]
    spike = states[storm.SPIKE_GAUGE]
    assert spike.quality == Observation.Quality.SUSPECT and spike.observed_at == last_backfilled
    assert spike.value - spike.previous_value > 3

    # Ten minutes on: one more reading each, the spike withdrawn by the next reading.
    out = StringIO()
    call_command("simulate_storm", "--steps", "1", stdout=out, stderr=StringIO())
    assert storm_clock.now() >= last_backfilled + hydrology.STEP
    assert all(0 < pause <= 60 for pause in storm_clock.slept)
    spike_series = readings(storm.SPIKE_GAUGE)
    assert [quality for _, _, quality in spike_series[-2:]] == [Observation.Quality.SUSPECT, Observation.Quality.OK]
    assert [q for _, _, q in spike_series].count(Observation.Quality.SUSPECT) == 1
    spike = StationState.objects.get(station__code=storm.SPIKE_GAUGE)
    assert spike.quality == Observation.Quality.OK and abs(spike.value - spike_series[-3][1]) < 0.5
    levels = set(StationState.objects.filter(station__kind=StationKind.RIVER).values_list("level", flat=True))
    assert {2, 3, 4} <= levels
    assert readings("KWS-R05")[-1][0] == last_backfilled + hydrology.STEP
    assert "accepted 30" in out.getvalue() and "duplicates 0" in out.getvalue()

    # Every reading's time is the time it represents: on the grid, never ahead of the clock.
    stamps = Observation.objects.values_list("observed_at", flat=True)
    assert all(stamp <= storm_clock.now() and stamp <= timezone.now() for stamp in stamps)
    assert all(stamp.minute % 10 == 0 and stamp.second == 0 and stamp.microsecond == 0 for stamp in stamps)


@pytest.mark.django_db
def test_rain_totals_on_the_map_are_the_sums_of_the_10_minute_amounts(seeded, storm_clock):
    call_command("simulate_storm", "--steps", "2", stdout=StringIO())
    for spec in hydrology.rain_gauges():
        state = StationState.objects.get(station__code=spec.code)
        last_hour = Observation.objects.filter(
            station__code=spec.code,
            observed_at__gt=state.observed_at - timedelta(hours=1),
            observed_at__lte=state.observed_at,
        ).values_list("value", flat=True)
        assert len(last_hour) == ONE_HOUR_STEPS
        assert state.accumulations["3600"] == pytest.approx(sum(last_hour))
        stored = Observation.objects.filter(station__code=spec.code, observed_at__gt=seeded.weather.anchor)
        storm_total = sum(stored.values_list("value", flat=True))
        storms = seeded.weather.storms_until(state.observed_at)
        expected = hydrology.cumulative_rain(spec, storms, state.observed_at) - hydrology.cumulative_rain(
            spec, storms, seeded.weather.anchor
        )
        assert abs(storm_total - expected) < hydrology.TIP_MM, spec.code
    hill_hourly = max(
        StationState.objects.get(station__code=code).accumulations["3600"] for code in HILL_RAIN_GAUGES
    )
    assert hill_hourly <= MAX_HOURLY_RAIN_MM


@pytest.mark.django_db
def test_simulate_storm_runs_until_the_storm_has_passed_and_continues_from_where_it_stopped(seeded, storm_clock, monkeypatch):
    monkeypatch.setattr(weather, "SHOW_LENGTH", weather.SHOW_LEAD + timedelta(minutes=30))
    call_command("simulate_storm", stdout=StringIO())
    r05 = readings("KWS-R05")
    assert r05[-1][0] == seeded.weather.anchor + weather.SHOW_LEAD + timedelta(minutes=30)
    sent_before = Observation.objects.count()
    out = StringIO()
    call_command("simulate_storm", "--steps", "1", stdout=out)
    assert Observation.objects.count() > sent_before
    assert "duplicates 0" in out.getvalue()


@pytest.mark.django_db
def test_simulate_storm_without_seed_says_so():
    with pytest.raises(CommandError, match="seed_demo"):
        call_command("simulate_storm", "--steps", "0", stdout=StringIO())


@pytest.mark.django_db
def test_simulate_storm_on_a_long_stale_history_asks_for_a_new_seed(db):
    demo_seed(now=timezone.now() - timedelta(days=9), history_length=SHORT_HISTORY)
    with pytest.raises(CommandError, match="seed_demo` again"):
        call_command("simulate_storm", "--steps", "0", stdout=StringIO())
    assert not Observation.objects.filter(source=Observation.Source.SIMULATOR).exists()


@pytest.mark.django_db
def test_negative_steps_are_refused(seeded):
    with pytest.raises(CommandError, match="negative"):
        call_command("simulate_storm", "--steps", "-1", stdout=StringIO())


# --- simulate_storm --api-url -------------------------------------------------------------------


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.django_db(transaction=True)
def test_simulate_storm_through_the_http_api(live_server, storm_clock):
    demo_seed(history=False)  # transactional test: keep what has to be flushed afterwards small
    out, err = StringIO(), StringIO()
    call_command("simulate_storm", "--api-url", live_server.url, "--steps", "1", stdout=out, stderr=err)
    assert err.getvalue() == ""
    backfill_steps = int(weather.SHOW_LEAD / hydrology.STEP)
    assert Observation.objects.filter(station__code="KWS-R05").count() == backfill_steps + 1
    assert set(Observation.objects.values_list("source", flat=True)) == {Observation.Source.HTTP}
    assert StationState.objects.get(station__code=LEVEL_4_GAUGE).level == 4
    tokens = IngestToken.objects.filter(label="storm simulator")
    assert tokens.count() == 3 and not tokens.filter(revoked_at__isnull=True).exists()


@pytest.mark.django_db
def test_simulate_storm_survives_an_unreachable_server_and_revokes_its_tokens(seeded_without_history, storm_clock):
    out, err = StringIO(), StringIO()
    url = f"http://127.0.0.1:{free_port()}"
    call_command("simulate_storm", "--api-url", url, "--steps", "1", stdout=out, stderr=err)
    assert "cannot reach the server" in err.getvalue()
    assert "kept for the next tick" in err.getvalue()
    assert out.getvalue().count("delivery failed") == 2
    assert not Observation.objects.filter(source__in=["sim", "http"]).exists()
    tokens = IngestToken.objects.filter(label="storm simulator")
    assert tokens.count() == 3 and not tokens.filter(revoked_at__isnull=True).exists()


class FlakyGateway(BaseHTTPRequestHandler):
    """A stand-in server: refuses the first POST with 503, then accepts all but the first item."""

    requests: ClassVar[list] = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.requests.append({"auth": self.headers["Authorization"], "body": body})
        if len(self.requests) == 1:
            self.send_response(503)
            self.end_headers()
            self.wfile.write(b"restarting")
            return
        count = len(body["observations"])
        reply = {"accepted": count - 1, "duplicates": 0, "rejected": [{"index": 0, "error": "test says no"}]}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def flaky_gateway():
    FlakyGateway.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FlakyGateway)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", FlakyGateway.requests
    server.shutdown()
    server.server_close()


@pytest.mark.django_db
def test_http_mode_resends_after_a_server_error_and_reports_rejections(seeded_without_history, storm_clock, flaky_gateway):
    url, requests = flaky_gateway
    out, err = StringIO(), StringIO()
    call_command("simulate_storm", "--api-url", url + "/", "--steps", "1", stdout=out, stderr=err)

    assert "HTTP 503" in err.getvalue() and "restarting" in err.getvalue()
    first, *rest = requests
    assert all(request["auth"].startswith("Bearer mzm_") for request in requests)
    resent = next(r for r in rest if r["auth"] == first["auth"])
    first_items = first["body"]["observations"]
    assert resent["body"]["observations"][: len(first_items)] == first_items  # kept and sent again
    newer = resent["body"]["observations"][len(first_items) :]
    assert newer and min(item["observed_at"] for item in newer) > max(item["observed_at"] for item in first_items)
    assert first_items[0]["observed_at"].endswith("+09:00")
    assert "test says no" in out.getvalue()


@pytest.mark.django_db
def test_tokens_are_revoked_when_the_storm_is_interrupted(seeded_without_history, storm_clock, monkeypatch):
    def interrupt(self, slug, items):
        raise KeyboardInterrupt

    monkeypatch.setattr(storm.HttpDelivery, "send", interrupt)
    out = StringIO()
    call_command("simulate_storm", "--api-url", "http://127.0.0.1:9", "--loop", stdout=out)
    assert "Storm stopped." in out.getvalue()
    tokens = IngestToken.objects.filter(label="storm simulator")
    assert tokens.count() == 3 and not tokens.filter(revoked_at__isnull=True).exists()


@pytest.mark.django_db
def test_sigterm_stops_the_storm_and_revokes_its_tokens(seeded_without_history, storm_clock, monkeypatch):
    # bin/demo stops the simulator with SIGTERM, not Ctrl-C.
    def terminated(self, slug, items):
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("SIGTERM should have interrupted the storm")

    monkeypatch.setattr(storm.HttpDelivery, "send", terminated)
    handler_before = signal.getsignal(signal.SIGTERM)
    out = StringIO()
    call_command("simulate_storm", "--api-url", "http://127.0.0.1:9", "--loop", stdout=out)
    assert "Storm stopped." in out.getvalue()
    assert not IngestToken.objects.filter(label="storm simulator", revoked_at__isnull=True).exists()
    assert signal.getsignal(signal.SIGTERM) is handler_before


@pytest.mark.django_db
def test_shared_stations_are_seen_by_their_grantees_only():
    from sensors.models import SharingGrant
    from tenancy.models import Municipality
    from tenancy.selectors import Viewer

    demo_seed(history=False)
    demo_seed(history=False)  # idempotent: still one active grant each
    assert SharingGrant.objects.active().count() == len(region.SHARING)
    towns = {town.slug: town for town in Municipality.objects.all()}
    for code, grantee in region.SHARING:
        for slug, town in towns.items():
            viewer = Viewer(municipality_ids=frozenset({town.pk}), acting_municipality_id=town.pk)
            visible = Station.objects.visible_to(viewer).filter(code=code).exists()
            owner = Station.objects.get(code=code).municipality.slug
            assert visible == (slug in (owner, grantee)), (code, slug)
