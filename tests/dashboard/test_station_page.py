"""The station page `/stations/<code>/`: who sees it, the embedded chart data, span, CSV link, escaping,
queries, chart kind per station kind, no inline script."""

import csv
import html
import io
import json
import re
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from dashboard.selectors import rain_bins, thin_series
from sensors.trends import Reading, reading_trend
from sensors.models import Observation, StationKind, Threshold, Visibility
from sensors.services import observation_ingest
from tests.conftest import make_station, response_bytes

# --- helpers ----------------------------------------------------------------------------------------


def ingest(code, readings):
    """readings: [(minutes_ago, value), ...]"""
    now = timezone.now()
    report = observation_ingest(
        municipality=None,
        items=[
            {"station": code, "observed_at": now - timedelta(minutes=minutes_ago), "value": value}
            for minutes_ago, value in readings
        ],
        source="http",
    )
    assert not report.rejected, report.as_dict()
    return report


def page(client, code, query=""):
    response = client.get(f"/stations/{code}/{query}")
    assert response.status_code == 200, response.status_code
    return response.content.decode()


class ScriptCollector(HTMLParser):
    """Every <script> tag: its attributes and body."""

    def __init__(self):
        super().__init__()
        self.scripts: list[dict] = []
        self._current = None

    def handle_starttag(self, tag, attrs):
        if tag == "script":
            self._current = {"attrs": dict(attrs), "body": ""}
            self.scripts.append(self._current)

    def handle_endtag(self, tag):
        if tag == "script":
            self._current = None

    def handle_data(self, data):
        if self._current is not None:
            self._current["body"] += data


def scripts_of(text: str) -> list[dict]:
    collector = ScriptCollector()
    collector.feed(text)
    return collector.scripts


def chart_data(text: str) -> dict:
    (script,) = [s for s in scripts_of(text) if s["attrs"].get("id") == "station-chart-data"]
    assert script["attrs"].get("type") == "application/json"
    return json.loads(script["body"])


def csv_link(text: str) -> str:
    match = re.search(r'<a class="mz-csv-link" href="([^"]+)"', text)
    assert match, "no CSV link"
    return html.unescape(match.group(1))


def series_values(chart: dict, key: str) -> list:
    (series,) = [s for s in chart["series"] if s["key"] == key]
    return series["values"]


# --- who sees what --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_anonymous_sees_a_public_station(client, stations):
    text = page(client, "A-PUBLIC")

    assert "A-PUBLIC 観測所" in text and "A-PUBLIC gauge" not in text  # the page's language only
    assert "A-PUBLIC gauge" in client.get("/stations/A-PUBLIC/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert 'href="/"' in text  # back to the public map


@pytest.mark.django_db
def test_hidden_and_missing_stations_are_the_same_404(client, stations):
    bodies = {}
    for code in ("A-PRIVATE", "A-REGION", "B-PRIVATE", "NO-SUCH-STATION"):
        response = client.get(f"/stations/{code}/")
        assert response.status_code == 404, code
        bodies[code] = response.content
        assert code.encode() not in response.content

    assert len(set(bodies.values())) == 1


@pytest.mark.django_db
def test_town_user_sees_own_private_and_shared_region_stations_only(client, stations, user_a):
    client.force_login(user_a)

    for code in ("A-PRIVATE", "A-REGION", "B-REGION", "B-PUBLIC"):
        text = page(client, code)
        assert 'href="/hq/"' in text  # back to the HQ map
    assert client.get("/stations/B-PRIVATE/").status_code == 404
    assert client.get("/stations/B-PRIVATE/").content == client.get("/stations/NOPE/").content


# --- the chart data ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_embedded_chart_has_the_readings_of_the_last_24_hours_and_labelled_thresholds(client, stations):
    ingest("A-PUBLIC", [(60 * 30, 9.99), (60 * 23, 1.25), (60, 2.5), (10, 3.2)])

    chart = chart_data(page(client, "A-PUBLIC"))

    assert chart["chart"] == "hydrograph"
    assert chart["unit"] == "m"
    assert chart["time_zone"] == "Asia/Tokyo"
    assert series_values(chart, "value") == [1.25, 2.5, 3.2]  # not the reading from 30 hours ago
    since, until = chart["x_range"]
    assert until - since == pytest.approx(24 * 3600)
    assert all(since <= x <= until for x in chart["x"])
    thresholds = {line["label_ja"]: line for line in chart["thresholds"]}
    assert set(thresholds) == {"水防団待機水位", "氾濫注意水位", "避難判断水位", "氾濫危険水位", "氾濫発生"}
    decision = thresholds["避難判断水位"]
    assert decision["label_en"] == "Evacuation decision"
    assert decision["value"] == 3.5 and decision["value_text"] == "3.50 m"
    assert decision["badge"] == "L3" and decision["colour"] == "#ff2800"
    # Told apart without colour too: every level has its own dash pattern.
    dashes = [tuple(line["dash"]) for line in chart["thresholds"]]
    assert len(set(dashes)) == len(dashes)


@pytest.mark.django_db
def test_page_header_shows_level_words_value_trend_and_observed_time(client, stations):
    ingest("A-PUBLIC", [(30, 3.0), (20, 3.3), (1, 3.6)])  # 避難判断水位 3.5 -> level 3, rising

    text = page(client, "A-PUBLIC")

    assert '<span class="mz-chip mz-level-3">L3</span>' in text
    assert "警戒レベル3相当" in text and "Level 3 equivalent" not in text
    assert "3.60 m" in text
    assert "↑" in text and "上昇" in text and "rising" not in text
    english = client.get("/stations/A-PUBLIC/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Level 3 equivalent" in english and "rising" in english and "警戒レベル3相当" not in english
    assert "JST" in text
    assert "欠測" not in text


@pytest.mark.django_db
def test_stale_station_says_so(client, stations):
    ingest("A-PUBLIC", [(180, 1.0)])  # expected every 10 minutes

    text = page(client, "A-PUBLIC")

    assert "欠測" in text
    assert "Stale" in client.get("/stations/A-PUBLIC/", HTTP_ACCEPT_LANGUAGE="en").content.decode()


@pytest.mark.django_db
def test_seven_day_span_includes_older_readings_and_other_values_fall_back_to_24_hours(client, stations):
    ingest("A-PUBLIC", [(60 * 24 * 8, 0.5), (60 * 24 * 3, 1.5), (30, 2.5)])

    week = chart_data(page(client, "A-PUBLIC", "?range=7d"))
    bogus = chart_data(page(client, "A-PUBLIC", "?range=bogus"))
    huge = chart_data(page(client, "A-PUBLIC", "?range=3650d"))

    assert series_values(week, "value") == [1.5, 2.5]
    assert week["x_range"][1] - week["x_range"][0] == pytest.approx(7 * 24 * 3600)
    for fallback in (bogus, huge):
        assert series_values(fallback, "value") == [2.5]
        assert fallback["x_range"][1] - fallback["x_range"][0] == pytest.approx(24 * 3600)


@pytest.mark.django_db
def test_span_links_switch_between_24_hours_and_7_days(client, stations):
    text = page(client, "A-PUBLIC", "?range=7d")

    assert 'href="/stations/A-PUBLIC/?range=24h"' in text
    assert re.search(r'href="/stations/A-PUBLIC/\?range=7d" aria-current="page"', text)


# --- readings table and CSV ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_csv_link_names_the_shown_range_with_encoded_times_and_returns_its_rows(client, stations):
    ingest("A-PUBLIC", [(60 * 24 * 3, 0.9), (60 * 5, 1.1), (20, 1.2)])

    text = page(client, "A-PUBLIC")
    link = csv_link(text)

    assert link.startswith("/api/v1/stations/A-PUBLIC/observations?")
    assert "%2B09%3A00" in link and "+" not in link  # '+' of the offset encoded, not a space
    query = parse_qs(urlsplit(link).query)
    since, until = datetime.fromisoformat(query["since"][0]), datetime.fromisoformat(query["until"][0])
    assert until - since == timedelta(hours=24)
    assert since.utcoffset() == timedelta(hours=9)
    assert query["format"] == ["csv"]
    chart = chart_data(text)
    assert [since.timestamp(), until.timestamp()] == chart["x_range"]

    response = client.get(link)
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(response_bytes(response).decode())))
    assert [float(row["value"]) for row in rows] == [1.1, 1.2]
    assert {row["station"] for row in rows} == {"A-PUBLIC"}


@pytest.mark.django_db
def test_readings_table_is_newest_first_with_quality(client, stations):
    ingest("A-PUBLIC", [(30, 1.11), (20, 1.22), (10, 1.33)])
    Observation.objects.filter(station__code="A-PUBLIC", value=1.22).update(quality=Observation.Quality.SUSPECT)

    text = page(client, "A-PUBLIC")
    table = text.split('class="mz-readings"', 1)[1].split("</table>", 1)[0]

    assert table.index("1.33 m") < table.index("1.22 m") < table.index("1.11 m")
    assert table.count("要確認") == 1 and table.count("正常") == 2


@pytest.mark.django_db
def test_readings_table_is_capped_for_a_week_of_a_one_minute_gauge(client, stations):
    ingest("A-PUBLIC", [(minute, 1.0 + minute / 10_000) for minute in range(1, 1201)])

    text = page(client, "A-PUBLIC", "?range=7d")
    table = text.split('class="mz-readings"', 1)[1].split("</table>", 1)[0]

    assert table.count("<tr") == 500 + 1  # header row
    assert "1200" in text  # "the newest 500 of 1200 readings"
    assert len(series_values(chart_data(text), "value")) == 1200


def test_thinning_keeps_the_peak():
    points = [(float(t), 1.0) for t in range(10_000)]
    points[7_777] = (7_777.0, 9.5)

    thinned = thin_series(points, limit=2000)

    assert len(thinned) <= 2000
    assert (7_777.0, 9.5) in thinned
    assert [t for t, _ in thinned] == sorted(t for t, _ in thinned)


# --- escaping and scripts -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_hostile_names_are_escaped_in_the_html_and_in_the_json(client, towns):
    hostile = "<script>alert(1)</script>"
    station = make_station(towns[0], "X-HOSTILE", visibility=Visibility.PUBLIC)
    station.name_ja = station.name_en = hostile
    station.river_name = hostile
    station.save()
    Threshold.objects.filter(station=station, name="flood_caution").update(label_ja=hostile, label_en=hostile)
    ingest("X-HOSTILE", [(5, 1.0)])

    text = page(client, "X-HOSTILE")

    assert hostile not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    raw_json = text.split('id="station-chart-data" type="application/json">', 1)[1].split("</script>", 1)[0]
    assert "<" not in raw_json  # json_script escapes <, > and & as \u003C ...
    labels = [line["label_ja"] for line in chart_data(text)["thresholds"]]
    assert hostile in labels  # the data is intact once parsed; station.js inserts it as text


@pytest.mark.django_db
def test_page_has_no_inline_script_code(client, stations):
    ingest("A-PUBLIC", [(5, 1.0)])

    scripts = scripts_of(page(client, "A-PUBLIC"))

    assert scripts
    for script in scripts:
        attrs = script["attrs"]
        if attrs.get("type") == "application/json":
            continue
        assert attrs.get("src", "").startswith("/static/"), attrs
        assert not script["body"].strip()
    sources = [s["attrs"]["src"] for s in scripts if "src" in s["attrs"]]
    assert sources == [
        "/static/mizumori/fonts.js",  # every page (base.html): redraws measured text when the web font arrives
        "/static/vendor/uplot/uPlot.iife.min.js",
        "/static/mizumori/i18n.js",
        "/static/mizumori/station.js",
    ]


@pytest.mark.django_db
def test_page_loads_nothing_from_outside(client, stations):
    text = page(client, "A-PUBLIC")

    for url in re.findall(r'<(?:link|script)[^>]+(?:href|src)="([^"]+)"', text):
        assert url.startswith("/static/"), url


# --- queries ---------------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("logged_in", [False, True])
def test_query_count_does_not_grow_with_readings(client, stations, user_a, logged_in, django_assert_max_num_queries):
    if logged_in:
        client.force_login(user_a)
    code = "A-PRIVATE" if logged_in else "A-PUBLIC"
    ingest(code, [(minute, 1.0) for minute in range(1, 6)])
    with CaptureQueriesContext(connection) as few:
        page(client, code, "?range=7d")

    ingest(code, [(minute, 1.0) for minute in range(6, 3000)])
    # station + owner + state, thresholds, the last hour for the trend, readings, the level words of
    # the active scheme; for a user also session, user, memberships and the gauge's forecast (staff only).
    with django_assert_max_num_queries(9 if logged_in else 5):
        page(client, code, "?range=7d")

    with CaptureQueriesContext(connection) as many:
        page(client, code, "?range=7d")
    assert len(many) == len(few)


# --- chart per station kind -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_rain_station_gets_a_hyetograph_of_ten_minute_bars_and_the_hourly_total(client, towns):
    make_station(towns[0], "R-RAIN", kind=StationKind.RAIN, visibility=Visibility.PUBLIC)
    # Exactly ten minutes apart, so each reading lands in its own 10-minute interval.
    ingest("R-RAIN", [(71, 9.0), (51, 2.0), (41, 4.0), (31, 6.0), (21, 8.0), (11, 10.0), (1, 12.0)])

    text = page(client, "R-RAIN")
    chart = chart_data(text)

    assert chart["chart"] == "hyetograph"
    kinds = {series["key"]: (series["type"], series["scale"]) for series in chart["series"]}
    assert kinds == {"amount_10min": ("bars", "amount"), "total_1h": ("line", "total")}
    amounts = [value for value in series_values(chart, "amount_10min") if value is not None]
    assert amounts[-6:] == [2.0, 4.0, 6.0, 8.0, 10.0, 12.0]
    totals = [value for value in series_values(chart, "total_1h") if value is not None]
    assert totals[-1] == 42.0  # the last hour: 2 + 4 + 6 + 8 + 10 + 12 (9.0 is 70 minutes old)
    assert len(chart["x"]) in (144, 145)  # every 10-minute interval of the 24 hours
    # The 1-hour thresholds are drawn against the 1-hour total.
    assert {line["scale"] for line in chart["thresholds"]} == {"total"}
    assert {line["label_en"] for line in chart["thresholds"]} == {"Heavy rain (1 h)", "Violent rain (1 h)"}
    assert "↑" in text  # 30 mm in the last half hour against 12 mm before


@pytest.mark.django_db
def test_rain_station_names_its_thresholds_in_rain_words_never_alert_levels(client, towns):
    station = make_station(towns[0], "R-WORDS", kind=StationKind.RAIN, visibility=Visibility.PUBLIC)
    Threshold.objects.create(station=station, name="rain_3h", label_ja="大雨注意(3時間)", label_en="Rain watch (3 h)",
                             level=2, value=80, window=timedelta(hours=3))
    ingest("R-WORDS", [(31, 12.0), (21, 14.0), (11, 13.0), (1, 15.0)])  # 54 mm in the hour: level 4 by data

    text = page(client, "R-WORDS")
    thresholds = text.split('class="mz-threshold-list"')[1].split("</ul>")[0]
    # The 1-hour thresholds (30 and 50 mm) by JMA's word for that hourly amount, in its colour.
    assert 'mz-level-rain-very_heavy">激</span>' in thresholds and "大雨(1時間)" in thresholds
    assert 'mz-level-rain-extremely_heavy">非</span>' in thresholds and "猛烈な雨(1時間)" in thresholds
    # A 3-hour total has no JMA intensity: the town's own name beside a neutral rain chip.
    assert 'mz-level-rain-rain">雨量</span>' in thresholds and "大雨注意(3時間)" in thresholds
    assert "警戒レベル" not in text and "レベル4" not in text
    chart = chart_data(text)
    assert {(line["label_en"], line["badge"]) for line in chart["thresholds"]} == {
        ("Heavy rain (1 h)", "激"), ("Violent rain (1 h)", "非"),
    }
    assert "非常に激しい雨" in text  # the state: 54 mm in the last hour


@pytest.mark.django_db
def test_reservoir_station_gets_a_storage_line(client, towns):
    make_station(towns[0], "D-DAM", kind=StationKind.RESERVOIR, visibility=Visibility.PUBLIC)
    ingest("D-DAM", [(40, 81.0), (20, 80.2), (1, 79.0)])

    text = page(client, "D-DAM")
    chart = chart_data(text)

    assert chart["chart"] == "storage"
    assert [(s["type"], s["scale"]) for s in chart["series"]] == [("line", "value")]
    assert chart["scales"][0]["from_zero"] is True
    assert series_values(chart, "value") == [81.0, 80.2, 79.0]
    assert "↓" in text and "下降" in text


# --- selectors --------------------------------------------------------------------------------------------


def at(minute: int) -> datetime:
    return datetime(2026, 9, 1, 3, 0, tzinfo=dt_timezone.utc) + timedelta(minutes=minute)


def test_rain_readings_go_to_the_interval_that_ends_at_or_after_them():
    readings = [Reading(at(m), v, "ok") for m, v in [(10, 1.0), (11, 2.0), (19, 3.0), (20, 4.0), (75, 5.0)]]

    bins = rain_bins(readings, since=at(0), until=at(80))

    by_end = {b.end: b for b in bins}
    assert by_end[at(10)].amount == 1.0
    assert by_end[at(20)].amount == 9.0  # 10:11, 10:19, 10:20
    assert by_end[at(30)].amount is None and by_end[at(30)].running_total is None
    assert by_end[at(80)].amount == 5.0
    assert by_end[at(80)].running_total == 5.0  # the hour (03:20, 04:20] holds only the 04:15 reading
    assert by_end[at(20)].running_total == 10.0


@pytest.mark.parametrize(
    ("kind", "values", "expected"),
    [
        (StationKind.RIVER, [1.0, 1.1, 1.3], "rising"),
        (StationKind.RIVER, [1.3, 1.31, 1.3], "steady"),
        (StationKind.RIVER, [1.3, 1.2, 1.0], "falling"),
        (StationKind.RIVER, [1.0], None),
        (StationKind.RAIN, [0.0, 0.0, 0.0], None),
    ],
)
def test_trend_over_the_last_half_hour(kind, values, expected):
    readings = [Reading(at(15 * index), value, "ok") for index, value in enumerate(values)]

    assert reading_trend(kind, readings) == expected
