"""Rain judged by its 1-hour total, in JMA's intensity words, never as a 警戒レベル."""

from datetime import timedelta

import pytest
from django.utils import timezone

from alerts.models import Alert
from sensors.models import StationKind, Visibility
from sensors.rain import rain_intensity
from sensors.services import observation_ingest
from tests.conftest import make_station


@pytest.mark.parametrize(
    "total, key",
    [(None, None), (0, "dry"), (0.4, "dry"), (0.5, "rain"), (19.9, "rain"), (20, "heavy"), (29.9, "heavy"),
     (30, "very_heavy"), (50, "extremely_heavy"), (79.9, "extremely_heavy"), (80, "torrential"), (1e9, "torrential")],
)
def test_jma_categories_by_the_hourly_total(total, key):
    category = rain_intensity(total)
    assert (category.key if category else None) == key


def rain_storm(code, amounts):
    """One 10-minute amount per batch, the last one a minute ago."""
    now = timezone.now().replace(second=0, microsecond=0)
    for index, amount in enumerate(amounts):
        at = now - timedelta(minutes=1 + 10 * (len(amounts) - 1 - index))
        observation_ingest(municipality=None, items=[{"station": code, "observed_at": at, "value": amount}], source="sim")


@pytest.mark.django_db(transaction=True)
def test_a_rain_gauge_shows_its_hourly_total_as_rain_and_its_alerts_go_to_hq_only(client, towns, django_user_model):
    from tenancy.models import Membership

    gauge = make_station(towns[0], "RAIN-1", kind=StationKind.RAIN, visibility=Visibility.PUBLIC)
    rain_storm(gauge.code, [2, 5, 8, 10, 6, 9, 12, 4])
    features = {f["properties"]["code"]: f["properties"] for f in client.get("/api/v1/stations").json()["features"]}
    props = features["RAIN-1"]
    # The last six 10-minute amounts (8, 10, 6, 9, 12, 4) make the 1-hour total: 49 mm, 激しい雨.
    assert (props["rain_hour_total"], props["rain_intensity"], props["value"]) == (49.0, "very_heavy", 4.0)

    page = client.get("/stations/RAIN-1/").content.decode()
    assert "激しい雨" in page and "1 h 49.0 mm (10 min 4.0 mm)" in page
    assert "警戒レベル3相当" not in page.split("mz-station-summary", 1)[1].split("</section>", 1)[0]

    # The hourly thresholds (30 → 3, 50 → 4) opened an alert: for the towns' headquarters only.
    alert = Alert.objects.get(station=gauge, rule__kind="rain_accumulation")
    assert alert.level >= 3
    assert client.get("/api/v1/alerts").json()["count"] == 0
    assert client.get(f"/api/v1/alerts/{alert.pk}").status_code == 404
    assert "RAIN-1" not in client.get("/alerts/feed.atom").content.decode()
    member = django_user_model.objects.create_user("hq-a", password="pw-hq-a-123")
    Membership.objects.create(user=member, municipality=towns[0], role="viewer")
    client.force_login(member)
    assert client.get(f"/api/v1/alerts/{alert.pk}").status_code == 200
    cap = client.get(f"/api/v1/alerts/{alert.pk}/cap").content.decode()
    assert "<scope>Restricted</scope>" in cap
