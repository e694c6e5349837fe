"""Issue 11: the demo storm never flags a healthy gauge as stuck. A river gauge's default flatline
check (sensors.plausibility: 144 identical readings, a day of 10-minute data) must hold over a long
simulator run in storm time: the seeded calm before the storm (days at base flow), the storm, its
recession and the next storms (`simulate_storm --loop` brings one a day), all through the normal
ingestion path in-process, on a fake clock."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command

from dashboard.demo import hydrology, storm, weather
from dashboard.demo.seed import demo_seed
from sensors.models import Observation, StationKind, StationState
from sensors.plausibility import station_plausibility

from .test_demo import FakeClock, fast_passwords  # noqa: F401

# Two days of storm time after the backfill: the current storm, its recession to base flow and the
# next storm. Longer than the 144-reading flatline window, so a stuck-looking stretch would show.
STORM_STEPS = 2 * 24 * hydrology.STEPS_PER_HOUR
# Enough seeded history to hold the quiet days before the current storm (the longest flat stretch).
HISTORY = weather.QUIET_BEFORE_ANCHOR + timedelta(days=2)


@pytest.mark.django_db
@pytest.mark.timeout(1800)
def test_a_long_demo_run_flags_no_healthy_gauge_flatline(monkeypatch):
    from django.utils import timezone

    # Far enough back that two days of storm time on the fake clock stay in the real past.
    seed_now = timezone.now() - timedelta(days=3)
    seeded = demo_seed(now=seed_now, history_length=HISTORY)
    clock = FakeClock(seed_now + timedelta(minutes=1))
    monkeypatch.setattr(storm, "WallClock", lambda: clock)
    call_command("simulate_storm", "--steps", str(STORM_STEPS), stdout=StringIO(), stderr=StringIO())

    live = Observation.objects.filter(source=Observation.Source.SIMULATOR)
    assert live.filter(observed_at__gt=seeded.weather.anchor + weather.SHOW_LENGTH).exists()  # past the storm
    assert live.filter(station__kind=StationKind.RIVER).count() >= STORM_STEPS * 8
    flagged = sorted(set(live.filter(quality=Observation.Quality.FLATLINE).values_list("station__code", flat=True)))
    assert flagged == [], f"healthy gauges flagged flatline: {flagged}"
    assert not StationState.objects.filter(quality=Observation.Quality.FLATLINE).exists()
    # The check was on, at its default, for every river gauge (not silently off).
    for spec in hydrology.river_gauges():
        state = StationState.objects.select_related("station").get(station__code=spec.code)
        assert station_plausibility(state.station).flatline_readings == 144
    # ...and it still catches a stuck gauge: the same reading a day long is flagged by the 144th.
    gauge = StationState.objects.select_related("station").get(station__code="KWS-R05")
    stuck_at = gauge.observed_at
    from sensors.services import observation_ingest

    stuck = round(gauge.value + 0.01, 2)  # a centimetre from the last reading: no jump, a new run starts
    items = [
        {"station": "KWS-R05", "observed_at": stuck_at + hydrology.STEP * n, "value": stuck} for n in range(1, 145)
    ]
    clock.current = max(clock.current, items[-1]["observed_at"] + timedelta(minutes=1))
    observation_ingest(municipality=None, source="http", items=items, now=clock.current)
    qualities = list(
        Observation.objects.filter(station__code="KWS-R05", observed_at__gt=stuck_at)
        .order_by("observed_at").values_list("quality", flat=True)
    )
    assert qualities[:143] == [Observation.Quality.OK] * 143
    assert qualities[143] == Observation.Quality.FLATLINE


def test_no_demo_river_is_flat_for_a_day_over_the_whole_timeline():
    """The model itself, over the seeded 60 days, the current storm and the next ones: no river gauge
    repeats a reading anywhere near the flatline window (calm rivers still swing over the day)."""
    from datetime import UTC, datetime

    from sensors.plausibility import KIND_DEFAULTS

    anchor = datetime(2026, 6, 15, 3, 0, tzinfo=UTC)
    timeline = weather.Weather(anchor=anchor)
    run = hydrology.BasinRun(timeline.storms_until, timeline.history_start)
    snapshots = list(run.run_until(anchor + timedelta(days=3)))
    window = KIND_DEFAULTS[StationKind.RIVER].flatline_readings
    for spec in hydrology.river_gauges():
        longest, run_length, previous = 0, 0, None
        for snapshot in snapshots:
            value = snapshot.values[spec.code]
            run_length = run_length + 1 if value is not None and value == previous else (1 if value is not None else 0)
            previous = value
            longest = max(longest, run_length)
        assert longest < window / 2, (spec.code, longest)
