"""The HQ board as an alarm board: one row per station and concern naming the rule that fired in plain
words with units; acknowledge with a note; resolve only after confirming; the history page's filters
and CSV, through the viewer's selector."""

import csv
import io
import re
from datetime import timedelta

import pytest
from django.utils import timezone

from alerts.models import Alert, AlertEvent, AlertRule
from sensors.models import StationKind, Visibility
from tenancy.models import AuditEvent
from tests.conftest import make_station


def open_alert(station, level, *, kind="threshold", window=None, value=3.6, name=None, opened_ago=0):
    rule, _ = AlertRule.objects.get_or_create(
        station=station, kind=kind, window=window, name=name or f"{kind} {window}"
    )
    opened = timezone.now() - timedelta(minutes=opened_ago)
    alert = Alert.objects.create(
        station=station, rule=rule, level=level, peak_level=level, opened_at=opened, updated_at=opened,
        state="open", last_value=value, last_observed_at=opened,
    )
    AlertEvent.objects.create(alert=alert, kind="opened", level=level, value=value, at=opened)
    return alert


@pytest.fixture
def rain_gauge(towns):
    return make_station(towns[0], "A-RAIN", kind=StationKind.RAIN, visibility=Visibility.PRIVATE)


def rows(html):
    return re.findall(r'data-row-key="([^"]+)"', html)


def test_a_rain_gauges_1_h_and_24_h_rules_are_one_row_naming_the_rule_that_fired(client, rain_gauge, operator_a):
    hour = open_alert(rain_gauge, 4, kind="rain_accumulation", window=timedelta(hours=1), value=52.0)
    day = open_alert(rain_gauge, 3, kind="rain_accumulation", window=timedelta(hours=24), value=181.5)
    client.force_login(operator_a)
    html = client.get("/hq/alerts/").content.decode()
    assert rows(html) == ["A-RAIN:level"]
    assert 'id="row-A-RAIN-level"' in html  # what messages link to (alert_document's board_url)
    row = html[html.index('data-row-key="A-RAIN:level"'):]
    row = row[: row.index("</tr>")]
    # The rule that fired first, in plain words with units and JMA's intensity word, in the page's language.
    assert "1時間雨量 52.0 mm(非常に激しい雨)" in row and "24時間雨量 181.5 mm" in row
    english = client.get("/hq/alerts/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Rainfall over 1 h 52.0 mm (Extremely heavy rain)" in english and "Rainfall over 24 h 181.5 mm" in english
    assert row.index("52.0 mm") < row.index("181.5 mm")
    assert "accumulation (window" not in html  # no developer text
    assert f'name="also" value="{day.pk}"' in row and f'/hq/alerts/{hour.pk}/act' in row
    # Point rain is no evacuation level: the row never says 「警戒レベル4相当」.
    assert "警戒レベル" not in row


def test_a_river_row_speaks_gauge_words_with_the_unit_and_separates_its_rise(client, stations, operator_a):
    open_alert(stations["a-private"], 4, value=3.62)
    open_alert(stations["a-private"], 1, kind="rate_of_rise", window=timedelta(minutes=30), value=0.64)
    client.force_login(operator_a)
    html = client.get("/hq/alerts/").content.decode()
    assert rows(html) == ["A-PRIVATE:level", "A-PRIVATE:rise"]
    assert "警戒レベル4相当" in html and "水位 3.62 m" in html
    assert "Water level 3.62 m" in client.get("/hq/alerts/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "上昇速度(30分) 0.64 m/h" in html
    for word in ("避難指示", "緊急安全確保", "高齢者等避難", "警報"):
        assert word not in html


def test_acknowledging_a_row_acknowledges_its_alerts_with_the_note_stored_shown_and_audited(
    client, rain_gauge, operator_a, towns
):
    hour = open_alert(rain_gauge, 4, kind="rain_accumulation", window=timedelta(hours=1), value=52.0)
    day = open_alert(rain_gauge, 3, kind="rain_accumulation", window=timedelta(hours=24), value=181.5)
    client.force_login(operator_a)
    response = client.post(
        f"/hq/alerts/{hour.pk}/act", {"action": "acknowledge", "note": "消防団に連絡済み", "also": str(day.pk)}
    )
    assert response.status_code == 302
    for alert in (hour, day):
        event = AlertEvent.objects.get(alert=alert, kind="acknowledged")
        assert event.actor == operator_a and event.note == "消防団に連絡済み"
        assert Alert.objects.get(pk=alert.pk).state == "acknowledged"
    audit = AuditEvent.objects.filter(municipality=towns[0], action="alert_acknowledged")
    assert audit.count() == 2 and all(a.detail["note"] == "消防団に連絡済み" for a in audit)
    html = client.get("/hq/alerts/").content.decode()
    assert "a-operator" in html and "消防団に連絡済み" in html and 'data-state="acknowledged"' in html


@pytest.mark.parametrize(
    "note, error",
    [("x" * 201, "at most 200"), ("bad\x07bell", "control characters")],
)
def test_a_bad_acknowledgement_note_is_refused_with_its_reason_and_nothing_changes(
    client, stations, operator_a, note, error
):
    alert = open_alert(stations["a-private"], 3)
    client.force_login(operator_a)
    response = client.post(f"/hq/alerts/{alert.pk}/act", {"action": "acknowledge", "note": note}, follow=True)
    assert error in response.content.decode()
    assert Alert.objects.get(pk=alert.pk).state == "open"
    assert not AlertEvent.objects.filter(alert=alert, kind="acknowledged").exists()


def test_also_never_reaches_another_stations_or_another_towns_alert(client, stations, operator_a):
    mine = open_alert(stations["a-private"], 3)
    other_station = open_alert(stations["a-public"], 3)
    other_town = open_alert(stations["b-private"], 3)
    client.force_login(operator_a)
    client.post(
        f"/hq/alerts/{mine.pk}/act",
        {"action": "acknowledge", "also": f"{other_station.pk},{other_town.pk},junk,-1,<script>"},
    )
    assert Alert.objects.get(pk=mine.pk).state == "acknowledged"
    assert Alert.objects.get(pk=other_station.pk).state == "open"
    assert Alert.objects.get(pk=other_town.pk).state == "open"


def test_resolve_asks_first_on_a_page_of_its_own_and_resolves_only_when_confirmed(client, stations, operator_a):
    alert = open_alert(stations["a-private"], 4, value=3.62)
    client.force_login(operator_a)
    ask = client.post(f"/hq/alerts/{alert.pk}/act", {"action": "resolve", "query": "town=town-a&fragment=1"})
    page = ask.content.decode()
    assert ask.status_code == 200 and "<html" in page and "解除の確認" in page and "水位 3.62 m" in page
    assert 'name="confirm" value="yes"' in page and "fragment" not in page
    assert Alert.objects.get(pk=alert.pk).state == "open"
    done = client.post(f"/hq/alerts/{alert.pk}/act", {"action": "resolve", "confirm": "yes", "query": "town=town-a"})
    assert done["Location"] == "/hq/alerts/?town=town-a"
    assert Alert.objects.get(pk=alert.pk).state == "resolved"


def test_the_board_has_the_cues_dialog_and_one_live_region_for_news_only(client, stations, operator_a):
    open_alert(stations["a-private"], 4)
    client.force_login(operator_a)
    html = client.get("/hq/alerts/").content.decode()
    assert html.count("aria-live") == 1 and 'id="mz-alert-announcer"' in html
    assert '<dialog id="mz-resolve-dialog"' in html and 'id="mz-sound-toggle"' in html
    assert "mizumori/sounds/alert.wav" in html and "mizumori/levels.css" in html
    assert 'href="#mz-alert-board"' in html
    assert "<title>(1) " in html
    fragment = client.get("/hq/alerts/?fragment=1").content.decode()
    assert 'data-live-section="alerts"' in fragment and 'data-open-count="1"' in fragment


def test_the_level_colours_live_in_one_stylesheet_every_page_loads():
    from pathlib import Path

    from django.contrib.staticfiles import finders

    levels = Path(finders.find("mizumori/levels.css")).read_text()
    for level, colour in ((2, "#f2e700"), (3, "#ff2800"), (4, "#aa00aa"), (5, "#0c000c")):
        assert re.search(rf"\.mz-chip\.mz-level-{level} {{[^}}]*background: {colour}", levels)
    for other in ("map.css", "site.css", "board.css"):
        assert not re.search(r"mz-level-\d[^{]*{[^}]*(background|border-left-color)", Path(finders.find(f"mizumori/{other}")).read_text()), other
    base = Path("templates/base.html").read_text()
    assert "mizumori/levels.css" in base


# --- history ---------------------------------------------------------------------------------


@pytest.fixture
def history(stations, rain_gauge, operator_a):
    resolved = open_alert(stations["a-private"], 4, opened_ago=60 * 24 * 3)
    Alert.objects.filter(pk=resolved.pk).update(state="resolved", resolved_at=timezone.now())
    return {
        "resolved-l4": resolved,
        "open-l2": open_alert(stations["a-public"], 2, opened_ago=30),
        "rain-l3": open_alert(rain_gauge, 3, kind="rain_accumulation", window=timedelta(hours=1), value=35.0),
        "b-private": open_alert(stations["b-private"], 5),
        "b-public": open_alert(stations["b-public"], 3),
    }


def history_ids(client, query=""):
    return sorted(int(i) for i in re.findall(r'data-alert-id="(\d+)"', client.get(f"/hq/alerts/history/{query}").content.decode()))


def test_history_filters_by_town_level_kind_state_and_dates(client, history, operator_a):
    client.force_login(operator_a)
    h = {key: alert.pk for key, alert in history.items()}
    assert history_ids(client) == sorted([h["resolved-l4"], h["open-l2"], h["rain-l3"], h["b-public"]])
    assert history_ids(client, "?town=town-b") == [h["b-public"]]
    assert history_ids(client, "?level=4") == [h["resolved-l4"]]
    assert history_ids(client, "?kind=rain_accumulation") == [h["rain-l3"]]
    assert history_ids(client, "?state=resolved") == [h["resolved-l4"]]
    today = timezone.localdate()
    assert h["resolved-l4"] not in history_ids(client, f"?since={today - timedelta(days=1)}&until={today}")
    assert history_ids(client, f"?until={today - timedelta(days=2)}&since={today - timedelta(days=5)}") == [h["resolved-l4"]]


@pytest.mark.parametrize(
    "query, words",
    [
        ("?level=9", "level: 1–5"),
        ("?state=<script>", "state:"),
        ("?since=2026-13-45", "since: a date"),
        ("?since=2026-05-02&until=2026-05-01", "since: must be before until"),
        ("?since=2000-01-01&until=2026-01-01", "at most 366 days"),
    ],
)
def test_history_refuses_bad_filters_saying_which(client, history, operator_a, query, words):
    client.force_login(operator_a)
    # In the page's language (English here; tests/alerts/test_board_i18n.py has the Japanese).
    page = client.get(f"/hq/alerts/history/{query}", HTTP_ACCEPT_LANGUAGE="en")
    assert page.status_code == 400 and words in page.content.decode() and "<script>" not in page.content.decode()
    csv_reply = client.get(f"/hq/alerts/history/{query}&format=csv", HTTP_ACCEPT_LANGUAGE="en")
    assert csv_reply.status_code == 400 and words in csv_reply.content.decode()


def test_history_csv_is_the_viewers_own_view_with_plain_words_and_no_formulas(client, history, operator_a, stations):
    stations["a-public"].name_en = "=HYPERLINK(\"http://evil\")"
    stations["a-public"].save()
    AlertEvent.objects.create(
        alert=history["open-l2"], kind="note", level=2, actor=operator_a, at=timezone.now(), note="+見回り中"
    )
    client.force_login(operator_a)
    reply = client.get("/hq/alerts/history/?format=csv")
    assert reply["Content-Type"].startswith("text/csv") and "attachment" in reply["Content-Disposition"]
    text = reply.content.decode("utf-8-sig")
    table = list(csv.DictReader(io.StringIO(text)))
    ids = sorted(int(row["id"]) for row in table)
    assert ids == sorted(alert.pk for key, alert in history.items() if key != "b-private")
    assert "B-PRIVATE" not in text
    rain = next(row for row in table if row["station"] == "A-RAIN")
    assert rain["rule_ja"] == "1時間雨量 35.0 mm(激しい雨)" and rain["unit"] == "mm"
    public = next(row for row in table if row["station"] == "A-PUBLIC")
    assert public["station_name_en"].startswith("'=") and "'" not in public["notes"][:1]
    assert "+見回り中" in public["notes"]


def test_history_csv_of_town_b_never_lists_town_as_private_station(client, history, operator_b):
    client.force_login(operator_b)
    text = client.get("/hq/alerts/history/?format=csv&town=town-a").content.decode("utf-8-sig")
    assert "A-PRIVATE" not in text and "A-RAIN" not in text
    assert "A-PRIVATE" not in client.get("/hq/alerts/history/?town=town-a").content.decode()
