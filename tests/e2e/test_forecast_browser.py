"""The forecast on the station page in Chromium: a town's staff see the band after "now" and the
predicted crossing of 氾濫危険水位 while a storm's flood wave is rising — on a synthetic river, and on
the demo basin during the demo storm (seeded history, models trained by `forecast_train`, the storm
driven by `simulate_storm`)."""

import shutil
from datetime import UTC, datetime, timedelta
from io import StringIO

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.utils import timezone

from forecasts.models import StationForecast
from forecasts.services import forecast_train, forecasts_refresh
from geo.models import Basin, River
from sensors.models import Observation, StationKind, Threshold, Visibility
from tenancy.models import Membership
from tests.conftest import make_station
from tests.forecasts.synthetic import STEP, basin

from .conftest import ARTIFACTS, CHROMIUM, sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

STAFF = ("forecast-viewer", "pw-forecast-12345")
# The forecast's colour (forecasts.charts): the canvas is transparent, so the band's fill keeps the
# colour with a low alpha, the bounds and the dashed median a high one.
BAND_PIXEL = (106, 27, 154)


@pytest.fixture
def rising_river(towns):
    area = Basin.objects.create(
        name_ja="試験流域", name_en="Test basin",
        geometry={"type": "Polygon", "coordinates": [[[139.9, 34.9], [140.3, 34.9], [140.3, 35.1], [139.9, 35.1], [139.9, 34.9]]]},
    )
    River.objects.create(name_ja="試験川", name_en="Test River", basin=area,
                         geometry={"type": "LineString", "coordinates": [[139.95, 35.0], [140.25, 35.0]]})
    times, synthetic = basin(days=14, seed=21)
    level = synthetic.own.values
    # Stop the history on the steepest rise of the last week: the flood wave is on its way.
    ahead = np.r_[level[12:] - level[:-12], np.zeros(12)]
    now_index = len(level) // 2 + int(np.argmax(ahead[len(level) // 2 : -40]))
    shift = datetime.now(UTC).timestamp() - 300 - times[now_index]
    down = make_station(towns[0], "FC-DOWN", visibility=Visibility.PUBLIC, lon=140.2, lat=35.0, river_name="試験川")
    up = make_station(towns[0], "FC-UP", visibility=Visibility.PUBLIC, lon=140.1, lat=35.0, river_name="試験川")
    rain = make_station(towns[0], "FC-RAIN", kind=StationKind.RAIN, lon=140.0, lat=35.0)
    received = datetime.now(UTC)
    for station, series in ((down, synthetic.own), (up, synthetic.upstream[0]), (rain, synthetic.rain[0])):
        Observation.objects.bulk_create(
            Observation(station=station, observed_at=datetime.fromtimestamp(t + shift, UTC), value=float(v),
                        received_at=received, source="import")
            for t, v in zip(series.times[: now_index + 1], series.values[: now_index + 1])
        )
    from sensors.services import station_state_recompute

    station_state_recompute(station=down)
    forecast_train(down)
    forecasts_refresh([down.pk])
    forecast = StationForecast.objects.get(station=down)
    # Thresholds around this storm: 氾濫危険水位 where the median stands an hour ahead.
    now_level = level[now_index]
    danger = forecast.points[int(3600 // STEP) - 1][1]
    assert danger > now_level + 0.02, "the chosen moment must be a rise"
    values = {"standby": now_level - 0.3, "flood_caution": now_level - 0.2, "evacuation_decision": now_level - 0.1,
              "flood_danger": danger, "flooding": danger + 5}
    for name, value in values.items():
        Threshold.objects.filter(station=down, name=name).update(value=round(value, 2))
    forecasts_refresh([down.pk])
    stored = StationForecast.objects.get(station=down)
    assert stored.crossing["name"] == "flood_danger"
    user = get_user_model().objects.create_user(STAFF[0], password=STAFF[1])
    Membership.objects.create(user=user, municipality=towns[0], role=Membership.Role.VIEWER)
    return down


def forecast_pixels(page) -> tuple[int, int]:
    """(pixels of the band's fill, pixels in the forecast's colour at all: fill, bounds and median)."""
    return tuple(page.evaluate(
        """([r, g, b]) => {
            const canvas = document.querySelector('#station-chart canvas');
            const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
            let fill = 0, any = 0;
            for (let i = 0; i < data.length; i += 4) {
                const a = data[i + 3];
                if (a >= 25 && Math.abs(data[i] - r) <= 8 && Math.abs(data[i + 1] - g) <= 8 && Math.abs(data[i + 2] - b) <= 8) {
                    any++;
                    if (a <= 70) fill++;
                }
            }
            return [fill, any];
        }""",
        list(BAND_PIXEL),
    ))


@pytest.mark.skipif(not shutil.which(CHROMIUM), reason=f"{CHROMIUM} is not installed")
def test_staff_see_the_forecast_band_and_the_predicted_crossing(rising_river, asgi_server, browser):
    page = browser.new_page()
    sign_in(page, asgi_server.url, STAFF, "/stations/FC-DOWN/")
    text = page.inner_text("#station-forecast")
    # In the page's language only (this browser asks for English).
    assert "Flood danger level expected around" in text and "氾濫危険水位到達予測" not in text
    page.wait_for_selector("#station-chart canvas")
    fill, drawn = forecast_pixels(page)
    assert fill > 0 and drawn > 300, (fill, drawn)
    page.screenshot(path=str(ARTIFACTS / "forecast-station.png"))
    # The HQ map's popup of the gauge carries the same line.
    page.goto(f"{asgi_server.url}/hq/")
    page.wait_for_function("() => window.Mizumori && Mizumori.stationMarkers && Mizumori.stationMarkers['FC-DOWN']")
    page.evaluate("() => Mizumori.stationMarkers['FC-DOWN'].openPopup()")
    page.wait_for_selector(".mz-popup .mz-popup-forecast")
    assert "Flood danger level expected around" in page.inner_text(".mz-popup .mz-popup-forecast")
    # The public page of the same gauge shows no forecast.
    public = browser.new_page()
    public.goto(f"{asgi_server.url}/stations/FC-DOWN/")
    public.wait_for_selector("#station-chart canvas")
    assert public.query_selector("#station-forecast") is None
    assert forecast_pixels(public) == (0, 0)
    browser.assert_clean()


@pytest.fixture
def demo_storm_forecasts(transactional_db, monkeypatch):
    """The demo region with 40 days of seeded history (three past storms: with fewer, cross-validation
    finds the models no better than persistence and the gauges serve the trend), every gauge's model
    trained on it, and the current (design) storm driven up to now through the ingestion service by
    the storm simulator, as `make demo` does; then the forecasts of the storm's newest readings."""
    from dashboard.demo import storm
    from dashboard.demo.seed import demo_seed
    from forecasts.selectors import FORECAST_KINDS
    from forecasts.services import forecasts_refresh
    from sensors.models import Station
    from tests.dashboard.test_demo import FakeClock

    seed_now = timezone.now() - timedelta(hours=1)
    demo_seed(now=seed_now, history_length=timedelta(days=40))
    call_command("forecast_train", stdout=StringIO())
    monkeypatch.setattr(storm, "WallClock", lambda: FakeClock(timezone.now()))
    call_command("simulate_storm", "--steps", "0", stdout=StringIO(), stderr=StringIO())
    # The server drains the simulator's change log too; refreshed here so the page is ready.
    forecasts_refresh(list(Station.objects.filter(kind__in=FORECAST_KINDS).values_list("pk", flat=True)))
    rising = [
        forecast for forecast in StationForecast.objects.select_related("station__municipality")
        if forecast.method == "arx" and forecast.crossing and forecast.crossing.get("at")
    ]
    assert rising, "no demo gauge is forecast to cross its next threshold during the storm"
    # The highest threshold forecast to be crossed, soonest.
    return max(rising, key=lambda f: (f.crossing["level"], -f.crossing["at"]))


@pytest.mark.skipif(not shutil.which(CHROMIUM), reason=f"{CHROMIUM} is not installed")
def test_during_the_demo_storm_staff_see_the_band_and_the_predicted_crossing(demo_storm_forecasts, asgi_server, browser):
    from dashboard.demo.seed import DEFAULT_PASSWORD, username_for

    forecast = demo_storm_forecasts
    code, crossing = forecast.station.code, forecast.crossing
    page = browser.new_page()
    # Checking the password (PBKDF2) can take longer than the page timeout on a loaded machine.
    credentials = (username_for(forecast.station.municipality.slug, "viewer"), DEFAULT_PASSWORD)
    sign_in(page, asgi_server.url, credentials, f"/stations/{code}/", timeout=60_000)
    text = page.inner_text("#station-forecast")
    # In the page's language only (this browser asks for English).
    assert f"{crossing['label_en']} level expected around" in text, text
    assert f"{crossing['label_ja']}到達予測" not in text, text
    page.wait_for_selector("#station-chart canvas")
    fill, drawn = forecast_pixels(page)
    assert fill > 0 and drawn > 300, (fill, drawn)
    page.screenshot(path=str(ARTIFACTS / "forecast-demo-storm.png"))
    browser.assert_clean()
