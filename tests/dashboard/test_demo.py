"""The fictional demo region (seed_demo) and the storm simulator (simulate_storm)."""

from __future__ import annotations

import itertools
import json
import math
import os
import signal
import socket
import threading
from collections import Counter
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.utils import timezone
from shapely.geometry import Point, shape
from shapely.ops import unary_union

from dashboard.demo import region, storm
from dashboard.demo.seed import DEFAULT_PASSWORD, calm_value, demo_seed, history_times
from geo.models import Basin, River
from sensors.models import PHYSICAL_LIMITS, Observation, Station, StationKind, StationState, Threshold, Visibility
from tenancy.models import IngestToken, Membership, Municipality

RIVER_ORDER = ["standby", "flood_caution", "evacuation_decision", "flood_danger", "flooding"]
RIVER_LABELS = ["水防団待機水位", "氾濫注意水位", "避難判断水位", "氾濫危険水位", "氾濫発生"]
RIVER_LEVELS = [None, 2, 3, 4, 5]
HILL_RAIN_GAUGES = ["KWS-P01", "KWS-P02", "KWS-P03", "KWS-P04"]
LEVEL_4_GAUGE = "KWS-R05"  # the core city's main gauge is the one the storm takes to 氾濫危険水位
AREA_TOLERANCE = 1e-9  # square degrees: about 0.01 m², rounding noise only


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    # The seed hashes ten passwords per run; the production hasher would take seconds.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


class FakeClock:
    """Stands in for storm.WallClock: sleeping moves time on instead of waiting."""

    def __init__(self, start):
        self.current = start.replace(microsecond=0)

    def now(self):
        return self.current

    def sleep(self, seconds):
        self.current += timedelta(seconds=seconds)


@pytest.fixture
def seed_now():
    # Two hours back, so that storm ticks on a fake clock after it are still in the real past.
    return timezone.now() - timedelta(hours=2)


@pytest.fixture
def seeded(db, seed_now):
    return demo_seed(now=seed_now)


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


def sim_values(code):
    return list(
        Observation.objects.filter(station__code=code, source=Observation.Source.SIMULATOR)
        .order_by("observed_at")
        .values_list("value", flat=True)
    )


def max_hourly_total(ten_minute_amounts):
    windows = (ten_minute_amounts[i : i + 6] for i in range(max(len(ten_minute_amounts) - 5, 1)))
    return max(sum(window) for window in windows)


def demo_counts():
    models = (Municipality, Station, Threshold, Membership, Basin, River, Observation, StationState)
    return {model.__name__: model.objects.count() for model in models} | {
        "users": get_user_model().objects.count()
    }


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
        assert {station.kind for station in owned} == set(StationKind.values), slug
    for station in stations:
        assert shapes[station.municipality.slug].contains(Point(station.lon, station.lat)), station.code
        assert station.unit == {"river": "m", "rain": "mm", "reservoir": "%"}[station.kind]
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
            assert all(low < high for low, high in zip(values, values[1:])), station.code
            assert all(t.window is None for t in thresholds)
        elif station.kind == StationKind.RAIN:
            hourly = {t.value: t.level for t in thresholds if t.window == timedelta(hours=1)}
            assert hourly == {20.0: 2, 30.0: 3, 50.0: 4, 80.0: 5}
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


def test_history_times_cover_24_hours_on_the_10_minute_grid_ending_at_or_before_now():
    now = timezone.now()
    times = history_times(now)
    assert len(times) == 144
    assert times[-1] <= now < times[-1] + timedelta(minutes=10)
    assert times[-1] - times[0] == timedelta(hours=23, minutes=50)
    assert all(t.minute % 10 == 0 and t.second == 0 for t in times)


def test_calm_values_are_deterministic_and_physical():
    times = history_times(timezone.now())
    for spec in region.STATIONS:
        first = [calm_value(spec, at) for at in times]
        assert first == [calm_value(spec, at) for at in times]
        low, high = PHYSICAL_LIMITS[StationKind(spec.kind)]
        assert all(low <= value <= high for value in first)
        if spec.kind == StationKind.RAIN:
            assert max_hourly_total(first) < 20  # a light shower, below every rain threshold
        elif spec.kind == StationKind.RIVER:
            assert max(first) < spec.thresholds[0].value  # calm: below the standby level


def test_calm_weather_has_a_light_shower_in_the_hills():
    times = history_times(timezone.now())
    hill_rain = sum(calm_value(region.station(code), at) for code in HILL_RAIN_GAUGES for at in times)
    assert 0 < hill_rain


@pytest.mark.django_db
def test_seed_writes_24_hours_of_history_and_latest_states(seeded, seed_now):
    assert seeded.accepted == sum(144 for s in region.STATIONS if s.expected_interval) and not seeded.rejected
    for spec in region.STATIONS:
        observations = Observation.objects.filter(station__code=spec.code)
        if spec.expected_interval is None:
            assert not observations.exists(), "flood gauges stay silent in calm weather"
            continue
        assert observations.count() == 144
        assert set(observations.values_list("source", flat=True)) == {Observation.Source.SEED}
        oldest = observations.order_by("observed_at").first()
        newest = observations.order_by("observed_at").last()
        assert seed_now - timedelta(hours=24) < oldest.observed_at
        assert seed_now - timedelta(minutes=10) < newest.observed_at <= seed_now
        state = StationState.objects.get(station__code=spec.code)
        assert (state.observed_at, state.value) == (newest.observed_at, newest.value)
        assert newest.value == calm_value(spec, newest.observed_at)
        assert state.level == 0
    for kind, (low, high) in PHYSICAL_LIMITS.items():
        values = Observation.objects.filter(station__kind=kind).values_list("value", flat=True)
        assert all(low <= value <= high for value in values)


@pytest.mark.django_db
def test_seed_twice_is_idempotent(seeded, seed_now):
    before = demo_counts()
    again = demo_seed(now=seed_now)
    assert demo_counts() == before
    assert again.accepted == 0 and again.duplicates == seeded.accepted
    assert again.stations_retuned == 0


@pytest.mark.django_db
def test_reseeding_restores_edited_thresholds_and_recomputes_the_level(seeded, seed_now):
    station = Station.objects.get(code="KWS-R05")
    Threshold.objects.filter(station=station, name="flood_caution").update(value=0.1)
    Threshold.objects.create(station=station, name="made_up", label_ja="x", label_en="x", level=5, value=0.2)
    StationState.objects.filter(station=station).update(level=5)

    again = demo_seed(now=seed_now)

    assert again.stations_retuned == 1
    assert sorted(station.thresholds.values_list("name", flat=True)) == sorted(RIVER_ORDER)
    assert station.thresholds.get(name="flood_caution").value == 2.9
    assert StationState.objects.get(station=station).level == 0


@pytest.mark.django_db
def test_seed_demo_command_prints_summary_and_logins():
    out = StringIO()
    call_command("seed_demo", "--password", "cmd-pass-456", stdout=out)
    text = out.getvalue()
    assert "fictional" in text
    assert "Towns: 3" in text and "stations: 30" in text and "users: 10" in text
    assert "4032 reading(s) accepted" in text
    assert "platform-admin" in text and "midorihama-operator" in text and "cmd-pass-456" in text
    assert get_user_model().objects.get(username="okumidori-admin").check_password("cmd-pass-456")


# --- the storm model ----------------------------------------------------------------------------


def storm_series(spec, minutes_per_tick=10, start_value=None):
    return [
        storm.storm_reading(spec, minute, start_value=start_value, minutes_per_tick=minutes_per_tick)
        for minute in range(0, storm.STORM_MINUTES, minutes_per_tick)
    ]


def test_storm_model_is_deterministic():
    for spec in region.STATIONS:
        assert storm_series(spec) == storm_series(spec)
        assert storm_series(spec, start_value=spec.base + 0.3) == storm_series(spec, start_value=spec.base + 0.3)


def test_storm_continues_from_the_start_value_and_returns_towards_calm():
    spec = region.station("KWS-R08")
    assert storm.storm_value(spec, 0, start_value=1.37) == 1.37
    assert storm.storm_value(spec, 0) == spec.base
    assert abs(storm.storm_value(spec, 10, start_value=2.5) - storm.storm_value(spec, 10)) < 2.5 - spec.base
    dam = region.station("KWS-D01")
    assert storm.storm_value(dam, 0, start_value=70.0) == 70.0


def test_rain_bursts_in_the_hills_first_and_crosses_hourly_thresholds():
    hourly = {code: max_hourly_total(storm_series(region.station(code))) for code in HILL_RAIN_GAUGES}
    assert all(total >= 30 for total in hourly.values()), hourly
    assert max(hourly.values()) >= 50
    assert all(sum(storm_series(spec)) < 80 for spec in region.STATIONS if spec.kind == StationKind.RAIN)
    for code in HILL_RAIN_GAUGES:
        amounts = storm_series(region.station(code))
        assert sum(1 for amount in amounts if 10 <= amount <= 20) >= 2
    hills, coast = storm_series(region.station("KWS-P02")), storm_series(region.station("KWS-P08"))
    assert hills.index(max(hills)) < coast.index(max(coast))


def test_rivers_peak_later_downstream_and_reach_level_4_but_not_5():
    main = [spec for spec in region.STATIONS if spec.river == "kawasemi" and spec.kind == StationKind.RIVER]
    peaks = [storm.river_peak_minute(spec) for spec in sorted(main, key=lambda spec: spec.u)]
    assert peaks == sorted(peaks) and peaks[0] < peaks[-1] - 60
    reached = {}
    for spec in region.STATIONS:
        if spec.kind != StationKind.RIVER:
            continue
        highest = max(storm.storm_value(spec, minute) for minute in range(0, storm.STORM_MINUTES, 10))
        reached[spec.code] = max([t.level or 0 for t in spec.thresholds if highest >= t.value] or [0])
    assert reached[LEVEL_4_GAUGE] == 4
    assert Counter(reached.values())[3] >= 2 and Counter(reached.values())[2] >= 2
    assert 5 not in reached.values()


def test_reservoirs_fill_and_stay_physical():
    for spec in region.STATIONS:
        if spec.kind != StationKind.RESERVOIR:
            continue
        series = storm_series(spec)
        assert max(series) > series[0] + 5
        assert series[-1] < max(series)  # released after the peak
    assert max(storm_series(region.station("KWS-D01"))) >= 100  # the dam reaches 常時満水位


@pytest.mark.parametrize("minutes_per_tick", [5, 7, 10, 30])
def test_spike_is_sent_once_whatever_the_step(minutes_per_tick):
    spec = region.station(storm.SPIKE_GAUGE)
    clean = [storm.storm_value(spec, m) for m in range(0, storm.STORM_MINUTES, minutes_per_tick)]
    sent = storm_series(spec, minutes_per_tick)
    jumps = [s - c for s, c in zip(sent, clean) if s != c]
    assert len(jumps) == 1 and jumps[0] == pytest.approx(storm.SPIKE_JUMP_M)


def test_silent_gauge_and_flood_gauges_send_nothing_when_they_should_not():
    silent = storm_series(region.station(storm.SILENT_GAUGE))
    minutes = range(0, storm.STORM_MINUTES, 10)
    assert [m for m, value in zip(minutes, silent) if value is None] == [
        m for m in minutes if m > storm.SILENT_AFTER_MINUTE
    ]
    for spec in region.STATIONS:
        if spec.start_level is None:
            continue
        series = storm_series(spec)
        assert series[0] is None  # calm: below the start level
        sent = [value for value in series if value is not None]
        assert sent and min(sent) >= spec.start_level


def test_storm_values_stay_within_physical_limits_even_from_odd_start_values():
    for spec in region.STATIONS:
        low, high = PHYSICAL_LIMITS[StationKind(spec.kind)]
        for start in (low, high, None):
            values = [v for v in storm_series(spec, start_value=start) if v is not None]
            assert all(low <= value <= high for value in values), spec.code


# --- simulate_storm, in-process -----------------------------------------------------------------


@pytest.mark.django_db
def test_simulate_storm_in_process_through_the_peak(seeded, storm_clock):
    steps = math.ceil(storm.river_peak_minute(region.station(LEVEL_4_GAUGE)) / 10) + 1
    out = StringIO()
    call_command("simulate_storm", "--steps", str(steps), "--interval", "0", stdout=out, stderr=StringIO())

    minutes = [tick * 10 for tick in range(steps)]
    tick_lines = [line for line in out.getvalue().splitlines() if line.startswith("storm +")]
    assert len(tick_lines) == steps and "levels" in tick_lines[-1] and "L4" in tick_lines[-1]
    assert Observation.objects.filter(source=Observation.Source.SIMULATOR).count() > 25 * steps
    assert all(
        observed_at <= timezone.now()
        for observed_at in Observation.objects.values_list("observed_at", flat=True)
    )

    river_levels = dict(
        StationState.objects.filter(station__kind=StationKind.RIVER).values_list("station__code", "level")
    )
    assert river_levels[LEVEL_4_GAUGE] == 4
    assert sum(1 for level in river_levels.values() if level is not None and level >= 3) >= 2

    hourly = {code: max_hourly_total(sim_values(code)) for code in HILL_RAIN_GAUGES}
    assert all(total >= 30 for total in hourly.values()) and max(hourly.values()) >= 50
    rain_states = StationState.objects.filter(station__code__in=HILL_RAIN_GAUGES)
    assert max(state.accumulations["3600"] for state in rain_states) >= 50
    assert max(state.level for state in rain_states) >= 4

    assert len(sim_values(storm.SILENT_GAUGE)) == sum(1 for m in minutes if m <= storm.SILENT_AFTER_MINUTE)
    assert all(len(sim_values(code)) == steps for code in ("KWS-R05", "KWS-R06", "KWS-D01", "KWS-P01"))

    spike = sim_values(storm.SPIKE_GAUGE)
    jumps = [i for i in range(1, len(spike) - 1) if spike[i] - spike[i - 1] > 3 and spike[i] - spike[i + 1] > 3]
    assert len(jumps) == 1

    assert Observation.objects.filter(station__code="SWI-F01", source=Observation.Source.SIMULATOR).exists()
    for kind, (low, high) in PHYSICAL_LIMITS.items():
        assert not Observation.objects.filter(station__kind=kind).exclude(value__gte=low, value__lte=high).exists()


@pytest.mark.django_db
def test_simulate_storm_never_stamps_two_ticks_with_the_same_second(seeded, storm_clock):
    call_command("simulate_storm", "--steps", "3", "--interval", "0", stdout=StringIO())
    stamps = sorted(
        set(
            Observation.objects.filter(source=Observation.Source.SIMULATOR).values_list("observed_at", flat=True)
        )
    )
    assert len(stamps) == 3
    assert all(later - earlier == timedelta(seconds=1) for earlier, later in zip(stamps, stamps[1:]))
    assert all(stamp.microsecond == 0 for stamp in stamps)


@pytest.mark.django_db
def test_simulate_storm_without_seed_says_so():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="seed_demo"):
        call_command("simulate_storm", "--steps", "1", "--interval", "0", stdout=StringIO())


# --- simulate_storm --api-url -------------------------------------------------------------------


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.django_db(transaction=True)
def test_simulate_storm_through_the_http_api(live_server, storm_clock):
    demo_seed(history=False)  # transactional test: keep what has to be flushed afterwards small
    out, err = StringIO(), StringIO()
    call_command(
        "simulate_storm", "--api-url", live_server.url, "--steps", "2", "--interval", "0", stdout=out, stderr=err
    )
    assert err.getvalue() == ""
    assert Observation.objects.count() >= 2 * 25
    assert Observation.objects.filter(station__code="KWS-R05").count() == 2
    assert "accepted 28" in out.getvalue()
    tokens = IngestToken.objects.filter(label="storm simulator")
    assert tokens.count() == 3 and not tokens.filter(revoked_at__isnull=True).exists()


@pytest.mark.django_db
def test_simulate_storm_survives_an_unreachable_server_and_revokes_its_tokens(seeded_without_history, storm_clock):
    out, err = StringIO(), StringIO()
    url = f"http://127.0.0.1:{free_port()}"
    call_command("simulate_storm", "--api-url", url, "--steps", "2", "--interval", "0", stdout=out, stderr=err)
    assert "cannot reach the server" in err.getvalue()
    assert "kept for the next tick" in err.getvalue()
    assert out.getvalue().count("delivery failed") == 2
    assert not Observation.objects.filter(source__in=["sim", "http"]).exists()
    tokens = IngestToken.objects.filter(label="storm simulator")
    assert tokens.count() == 3 and not tokens.filter(revoked_at__isnull=True).exists()


class FlakyGateway(BaseHTTPRequestHandler):
    """A stand-in server: refuses the first POST with 503, then accepts all but the first item."""

    requests: list = []

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
    call_command("simulate_storm", "--api-url", url + "/", "--steps", "2", "--interval", "0", stdout=out, stderr=err)

    assert "HTTP 503" in err.getvalue() and "restarting" in err.getvalue()
    first, *rest = requests
    assert all(request["auth"].startswith("Bearer mzm_") for request in requests)
    resent = next(r for r in rest if r["auth"] == first["auth"])
    first_items = first["body"]["observations"]
    assert resent["body"]["observations"][: len(first_items)] == first_items  # kept and sent again
    assert len(resent["body"]["observations"]) == 2 * len(first_items)
    assert first_items[0]["observed_at"].endswith("+09:00")
    assert "test says no" in out.getvalue()


@pytest.mark.django_db
def test_tokens_are_revoked_when_the_storm_is_interrupted(seeded_without_history, storm_clock, monkeypatch):
    def interrupt(self, slug, items):
        raise KeyboardInterrupt

    monkeypatch.setattr(storm.HttpDelivery, "send", interrupt)
    out = StringIO()
    call_command("simulate_storm", "--api-url", "http://127.0.0.1:9", "--loop", "--interval", "0", stdout=out)
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
    call_command("simulate_storm", "--api-url", "http://127.0.0.1:9", "--loop", "--interval", "0", stdout=out)
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
