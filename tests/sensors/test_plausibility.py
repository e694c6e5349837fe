"""Per-station plausibility limits (sensors.plausibility) and the quality flags ingestion stores:
suspect (implausible jump), range, flatline. Flagged readings are stored and shown, never dropped."""

from datetime import timedelta

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from sensors.catalog import stations_by_code
from sensors.models import Observation, Station, StationKind, StationState
from sensors.plausibility import KIND_DEFAULTS, MIN_HISTORY_READINGS, limits_from_history, station_plausibility
from sensors.services import observation_ingest
from tests.conftest import make_station, response_bytes

NOW = timezone.now().replace(microsecond=0)


def reading(code, minutes_ago, value):
    return {"station": code, "observed_at": NOW - timedelta(minutes=minutes_ago), "value": value}


def ingest(*items):
    return observation_ingest(municipality=None, items=list(items), source="http")


def qualities(code):
    return list(Observation.objects.filter(station__code=code).order_by("observed_at").values_list("quality", flat=True))


def test_the_catalog_carries_each_stations_limits_and_follows_edits(towns):
    make_station(towns[0], "LIM-1")
    assert stations_by_code()["LIM-1"].plausibility == KIND_DEFAULTS[StationKind.RIVER]
    Station.objects.filter(code="LIM-1").update(max_step=3.0, plausible_max=12.0, flatline_readings=0)
    limits = stations_by_code()["LIM-1"].plausibility
    assert (limits.max_step, limits.max_rate, limits.high, limits.flatline_readings) == (3.0, 3.0, 12.0, None)
    assert limits == station_plausibility(Station.objects.get(code="LIM-1"))  # the alert side reads the same


def test_a_stations_own_step_decides_what_is_a_jump(towns):
    make_station(towns[0], "CALM")
    make_station(towns[0], "FLASHY", max_step=3.0)
    for code in ("CALM", "FLASHY"):
        ingest(reading(code, 20, 1.0), reading(code, 10, 3.5))  # +2.5 m in ten minutes
    assert qualities("CALM") == ["ok", "suspect"]
    assert qualities("FLASHY") == ["ok", "ok"]
    assert StationState.objects.get(station__code="FLASHY").level == 3


def test_out_of_range_readings_are_stored_flagged_and_set_no_level(towns, client):
    make_station(towns[0], "RNG", plausible_min=0.0, plausible_max=8.0)
    report = ingest(reading("RNG", 30, 1.0), reading("RNG", 20, -3.0), reading("RNG", 10, 1.02), reading("RNG", 0, 9.0))
    assert (report.accepted, report.rejected) == (4, [])
    assert qualities("RNG") == ["ok", "range", "ok", "range"]
    state = StationState.objects.get(station__code="RNG")
    assert (state.value, state.quality, state.level, state.reference_value) == (9.0, "range", 0, 1.02)
    # QC never silences: the map is told the level the flagged reading would mean.
    props = next(f["properties"] for f in client.get("/api/v1/stations").json()["features"] if f["properties"]["code"] == "RNG")
    assert (props["quality"], props["level"], props["unconfirmed_level"]) == ("range", 0, 5)
    since = (NOW - timedelta(hours=1)).isoformat()
    history = client.get("/api/v1/stations/RNG/observations", {"since": since}).json()["observations"]
    assert [(row["value"], row["quality"]) for row in history] == [(1.0, "ok"), (-3.0, "range"), (1.02, "ok"), (9.0, "range")]
    response = client.get("/api/v1/stations/RNG/observations", {"since": since, "format": "csv"})
    csv = response_bytes(response).decode()
    assert ",-3.0,range\r\n" in csv and ",9.0,range\r\n" in csv


@pytest.mark.parametrize("value", [1e308, -1e308, 123456789.0])
def test_hostile_huge_values_are_kept_flagged_not_lost(towns, value):
    make_station(towns[0], "HUGE")
    report = ingest(reading("HUGE", 10, value))
    assert (report.accepted, report.rejected) == (1, [])
    assert list(Observation.objects.filter(station__code="HUGE").values_list("value", "quality")) == [(value, "range")]
    assert StationState.objects.get(station__code="HUGE").level is None


def test_a_stuck_gauge_is_flagged_flatline_from_the_nth_identical_reading(towns):
    make_station(towns[0], "STUCK", flatline_readings=3)
    ingest(reading("STUCK", 50, 1.2), reading("STUCK", 40, 1.3))
    for minutes_ago in (30, 20, 10):  # one gateway batch each: the run is carried in the latest state
        ingest(reading("STUCK", minutes_ago, 1.3))
    assert qualities("STUCK") == ["ok", "ok", "ok", "flatline", "flatline"]
    state = StationState.objects.get(station__code="STUCK")
    assert (state.quality, state.repeats) == ("flatline", 4)
    ingest(reading("STUCK", 0, 1.31))  # it moves again
    assert qualities("STUCK")[-1] == "ok"
    assert StationState.objects.get(station__code="STUCK").repeats == 1


def test_flatline_is_off_for_reservoirs_and_rain_by_default_and_can_be_turned_off(towns):
    make_station(towns[0], "DAM", kind=StationKind.RESERVOIR)
    make_station(towns[0], "DRY", kind=StationKind.RAIN)
    make_station(towns[0], "WEIR", flatline_readings=0)
    make_station(towns[0], "GAUGE")
    for code, value in (("DAM", 95.0), ("DRY", 0.0), ("WEIR", 0.8), ("GAUGE", 0.8)):
        ingest(*[reading(code, 10 * (150 - i), value) for i in range(150)])
    for code in ("DAM", "DRY", "WEIR"):
        assert set(qualities(code)) == {"ok"}, code
    # A river by default: a day of 10-minute readings (144) without a change is a stuck sensor.
    assert qualities("GAUGE") == ["ok"] * 143 + ["flatline"] * 7


def test_history_widens_step_rate_and_flatline_never_tightens_them():
    times = np.arange(MIN_HISTORY_READINGS) * 600.0
    calm = np.full(MIN_HISTORY_READINGS, 1.0)
    calm[::2] = 1.01
    seeded = limits_from_history("river", times, calm)
    river = KIND_DEFAULTS[StationKind.RIVER]
    assert (seeded["max_step"], seeded["max_rate_per_hour"], seeded["flatline_readings"]) == (
        river.max_step, river.max_rate, river.flatline_readings,
    )
    assert (seeded["plausible_min"], seeded["plausible_max"]) == (0.99, 1.02)
    # flat at 0.5 m, then a rise of 0.4 m per reading (2.4 m per hour)
    wild = 0.5 + 0.4 * np.maximum(np.arange(MIN_HISTORY_READINGS) - 100, 0)
    seeded = limits_from_history("river", times, wild)
    assert seeded["flatline_readings"] == 152  # 101 identical readings seen: room for 1.5 times that
    assert (seeded["max_step"], seeded["max_rate_per_hour"]) == (0.6, 3.6)
    assert limits_from_history("river", times[:10], calm[:10]) is None  # too little history
    assert limits_from_history("rain", times, calm) is None  # a record downpour is not a fault


def test_seed_command_sets_limits_from_history_and_leaves_short_records_alone(towns):
    long = make_station(towns[0], "LONG")
    short = make_station(towns[0], "SHORT")
    start = NOW - timedelta(days=2)
    Observation.objects.bulk_create(
        Observation(station=long, observed_at=start + timedelta(minutes=10 * i), value=2.0 + (i % 5) * 0.1,
                    received_at=NOW, source="import")
        for i in range(200)
    )
    ingest(reading("SHORT", 10, 1.0))
    call_command("seed_plausibility_limits", "--dry-run", stdout=(out := __import__("io").StringIO()))
    assert "LONG: plausible_min=1.6" in out.getvalue() and "SHORT: too little history" in out.getvalue()
    assert Station.objects.get(code="LONG").plausible_min is None  # a dry run changes nothing
    call_command("seed_plausibility_limits", "--station", "LONG", "--station", "SHORT", stdout=__import__("io").StringIO())
    long.refresh_from_db()
    short.refresh_from_db()
    # range 2.0-2.4 with its span as room; the largest step (2.4 → 2.0) with half again as room
    assert (long.plausible_min, long.plausible_max, long.max_step, long.flatline_readings) == (1.6, 2.8, 0.6, 144)
    assert (short.plausible_min, short.max_step) == (None, None)
    assert stations_by_code()["LONG"].plausibility.high == 2.8  # ingestion sees it at once
    with pytest.raises(CommandError, match="No station with code NOPE"):
        call_command("seed_plausibility_limits", "--station", "NOPE")
    with pytest.raises(CommandError, match="--days"):
        call_command("seed_plausibility_limits", "--days", "0")
