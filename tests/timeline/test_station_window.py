"""The station page's window control (issue 14 item 2): `/stations/<code>/?at=&range=` shows the
station as it stood then — level, value, chart and readings up to that moment — under a REPLAY
banner, through the same visibility as the live page; bad times are a clear 400."""

import html
import json
import re
from datetime import timedelta
from urllib.parse import quote

import pytest
from django.utils import timezone

from sensors.models import Visibility
from sensors.selectors import local_iso
from tests.conftest import make_station
from tests.timeline.conftest import ingest

pytestmark = pytest.mark.django_db

RISE = [(300, 1.0), (240, 1.6), (180, 2.6), (120, 3.1), (60, 3.6), (10, 4.2)]  # minutes ago, m


@pytest.fixture
def rising(towns):
    make_station(towns[0], "W-PUB", visibility=Visibility.PUBLIC)
    make_station(towns[1], "W-PRIV-B", visibility=Visibility.PRIVATE)
    now = timezone.now().replace(microsecond=0)
    for minutes, value in RISE:
        ingest("W-PUB", now - timedelta(minutes=minutes), value)
        ingest("W-PRIV-B", now - timedelta(minutes=minutes), value)
    return now


def get(client, code, **query):
    text = "&".join(f"{key}={quote(str(value))}" for key, value in query.items())
    return client.get(f"/stations/{code}/?{text}")


def chart_x(text):
    body = re.search(r'<script id="station-chart-data" type="application/json">(.*?)</script>', text, re.S).group(1)
    return json.loads(body)["x"]


def test_live_page_has_the_control_and_no_banner(client, rising):
    text = get(client, "W-PUB").content.decode()
    assert 'id="mz-station-window"' in text and 'id="mz-replay-banner"' not in text
    assert "4.20" in text  # the newest reading


def test_a_past_moment_shows_the_level_value_and_readings_of_then(client, rising):
    at = rising - timedelta(minutes=90)  # after the 3.1 m reading, before 3.6 m
    response = get(client, "W-PUB", at=local_iso(at), range="6h")
    assert response.status_code == 200
    text = response.content.decode()
    assert 'id="mz-replay-banner"' in text and "REPLAY" in text
    assert timezone.localtime(at).strftime("%H:%M") in text
    summary = text.split('class="mz-section mz-station-summary', 1)[1].split("</section>", 1)[0]
    assert "3.10" in summary and "4.20" not in summary
    # 3.1 m is past the 3.0 m 氾濫注意水位 of tests.conftest's ladder: level 2, as the live page said then.
    assert "mz-level-2" in summary
    readings = text.split('id="readings-heading"', 1)[1]
    assert "3.10" in readings and "3.60" not in readings and "4.20" not in readings
    assert max(chart_x(text)) <= at.timestamp()
    # The window links keep the moment; LIVE leaves it.
    assert html.escape(f"?range=24h&at={quote(local_iso(at))}") in text
    assert 'id="mz-station-live" href="/stations/W-PUB/?range=6h"' in text


def test_the_form_sends_local_time_without_an_offset(client, rising):
    at = timezone.localtime(rising - timedelta(minutes=90))
    text = get(client, "W-PUB", at=at.strftime("%Y-%m-%dT%H:%M"), range="24h").content.decode()
    summary = text.split('class="mz-section mz-station-summary', 1)[1].split("</section>", 1)[0]
    assert "REPLAY" in text and "3.10" in summary and "4.20" not in summary


def test_stepping_later_past_now_is_live(client, rising):
    at = rising - timedelta(hours=2)
    text = get(client, "W-PUB", at=local_iso(at), range="6h").content.decode()
    assert 'id="mz-station-later" href="/stations/W-PUB/?range=6h"' in text
    # Within the clock-skew allowance a moment at or after now is now.
    text = get(client, "W-PUB", at=local_iso(timezone.now() + timedelta(minutes=1))).content.decode()
    assert 'id="mz-replay-banner"' not in text


@pytest.mark.parametrize(
    "raw", ["yesterday", "<script>alert(1)</script>", "2026-13-40T99:99", "1200-01-01T00:00:00+00:00", "x" * 500,
            "2999-01-01T00:00:00+09:00"],
)
def test_bad_times_are_a_plain_400_naming_at(client, rising, raw):
    response = get(client, "W-PUB", at=raw)
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/plain")
    assert response.content.decode().startswith("at: ")


def test_another_towns_private_station_stays_a_404_in_the_past(client, rising, user_a, user_b):
    at = local_iso(rising - timedelta(hours=2))
    assert get(client, "W-PRIV-B", at=at).status_code == 404
    client.force_login(user_a)
    assert get(client, "W-PRIV-B", at=at).status_code == 404
    client.force_login(user_b)
    assert get(client, "W-PRIV-B", at=at).status_code == 200
