"""The public map `/` and the HQ map `/hq/`: who sees which station, no CDN, escaping, legend, queries."""

import json
import re
from datetime import timedelta
from html.parser import HTMLParser

import pytest
from django.conf import settings as django_settings
from django.contrib.staticfiles import finders
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from config.build import front_end_build
from dashboard.live import live_feature
from dashboard.maps import SHAPES, level_style, marker_svg, station_notices
from dashboard.selectors import features_needing_notice, map_stations
from sensors.models import Station, StationKind, Visibility
from sensors.services import observation_ingest
from tenancy.models import Municipality
from tenancy.selectors import ANONYMOUS
from tests.conftest import make_station
from public.tick_cache import forget_all
from tests.public_page import (
    basemap_markup,
    public_basemap,
    public_document,
    public_features,
    public_page_text,
    public_shell,
)

PUBLIC_CODES = {"A-PUBLIC", "B-PUBLIC"}
HIDDEN_FROM_PUBLIC = {"A-PRIVATE", "A-SHARED", "A-REGION", "B-PRIVATE", "B-SHARED", "B-REGION"}


def served_scripts() -> tuple[str, str]:
    """The page scripts' catalog of the default language (Japanese): a view of this site, not a static
    file; and the base map the public shell preloads in map mode. Both with the front-end build
    (config/build.py), their URLs being fixed."""
    return f"/i18n/catalog/ja.js?v={front_end_build()}", f"/public/basemap.js?lang=ja&v={front_end_build()}"


# --- helpers ----------------------------------------------------------------------------------------


def observe(code, value, *, minutes_ago=1):
    report = observation_ingest(
        municipality=None,
        items=[{"station": code, "observed_at": timezone.now() - timedelta(minutes=minutes_ago), "value": value}],
        source="http",
    )
    assert report.accepted == 1, report.as_dict()


class AssetCollector(HTMLParser):
    """Every <script src>, <link href>, inline <script> body and JSON data block of a page."""

    def __init__(self):
        super().__init__()
        self.script_srcs, self.link_hrefs, self.inline_scripts = [], [], []
        self.map_assets: list[str] = []
        self.data_blocks: dict[str, str] = {}
        self._current: tuple[str, str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script":
            if attrs.get("src") is not None:
                self.script_srcs.append(attrs["src"])
            elif attrs.get("type") == "application/json":
                self._current = ("data", attrs.get("id") or "")
                self.data_blocks[attrs.get("id") or ""] = ""
            else:
                self._current = ("code", "")
                self.inline_scripts.append("")
        elif tag == "link" and attrs.get("href") is not None:
            self.link_hrefs.append(attrs["href"])
        for name in ("data-map-js", "data-map-css"):
            self.map_assets.extend((attrs.get(name) or "").split())

    def handle_endtag(self, tag):
        if tag == "script":
            self._current = None

    def handle_data(self, data):
        if self._current is None:
            return
        if self._current[0] == "code":
            self.inline_scripts[-1] += data
        else:
            self.data_blocks[self._current[1]] += data


def assets_of(html: str) -> AssetCollector:
    collector = AssetCollector()
    collector.feed(html)
    return collector


def page_data(html: str, element_id: str):
    """A JSON block of the page (<script type="application/json" id=...>), decoded."""
    return json.loads(assets_of(html).data_blocks[element_id])


def station_features(html: str) -> dict[str, dict]:
    """The stations of the page's first snapshot, which the browser draws."""
    return {f["properties"]["code"]: f for f in page_data(html, "mz-live-snapshot")["features"]}


def page(client, url="/"):
    response = client.get(url)
    assert response.status_code == 200
    return response.content.decode()


# --- who sees what ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_public_page_shows_only_public_stations_to_anonymous(client, stations):
    text = public_page_text(client)

    assert set(public_features(client)) == PUBLIC_CODES
    for code in HIDDEN_FROM_PUBLIC:
        assert code not in text


@pytest.mark.django_db
def test_public_page_stays_public_for_logged_in_town_user(client, stations, user_a):
    client.force_login(user_a)

    text = public_page_text(client)

    assert set(public_features(client)) == PUBLIC_CODES
    for code in HIDDEN_FROM_PUBLIC:
        assert code not in text


@pytest.mark.django_db
def test_public_list_names_only_public_stations_at_level_two_or_more(client, stations):
    observe("A-PUBLIC", 3.6)  # 避難判断水位 3.5 -> level 3
    observe("A-PRIVATE", 4.5)  # level 4, but not public
    observe("B-PUBLIC", 1.0)  # below every threshold

    features = public_features(client)
    vocabulary = page_data(public_shell(client), "mz-map-vocabulary")

    # The browser lists the document's stations at vocabulary["notice_level"] and up
    # (static/mizumori/stations.js drawNotices; tests/e2e/test_public_browser.py draws it).
    raised = {code for code, f in features.items() if (f["properties"]["level"] or 0) >= vocabulary["notice_level"]}
    assert raised == {"A-PUBLIC"} and features["A-PUBLIC"]["properties"]["level"] == 3
    assert vocabulary["levels"]["3"]["name"] == ["警戒レベル3相当", "Level 3 equivalent"]
    assert "A-PRIVATE" not in public_page_text(client)


@pytest.mark.django_db
def test_public_list_says_so_when_nothing_is_raised(client, stations):
    html = page(client)

    assert "現在、警戒レベル2以上の観測所はありません。" in html
    # One language per page (gettext), not side-by-side pairs.
    assert "No station is at alert level 2 or above now." not in html
    english = page(client, "/?lang=en")
    assert "No station is at alert level 2 or above now." in english and "現在、警戒レベル2以上" not in english


@pytest.mark.django_db
def test_hq_redirects_anonymous_to_login(client, stations):
    response = client.get("/hq/")

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=/hq/")


@pytest.mark.django_db
def test_login_page_renders(client):
    response = client.get("/accounts/login/?next=/hq/")

    assert response.status_code == 200
    assert 'name="password"' in response.content.decode()


@pytest.mark.django_db
def test_hq_shows_every_station_the_user_may_see(client, stations, user_a):
    client.force_login(user_a)

    html = page(client, "/hq/")

    assert set(station_features(html)) == {
        "A-PRIVATE", "A-SHARED", "A-REGION", "B-REGION", "B-SHARED", "A-PUBLIC", "B-PUBLIC",
    }
    assert "B-PRIVATE" not in html


@pytest.mark.django_db
def test_hq_shows_a_platform_admin_every_station(client, stations, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("operator", password="pw-operator-123"))

    html = page(client, "/hq/")

    assert set(station_features(html)) == PUBLIC_CODES | HIDDEN_FROM_PUBLIC
    assert "プラットフォーム管理者" in html.split("</header>", 1)[0]


@pytest.mark.django_db
def test_hq_header_names_the_users_town(client, stations, user_a):
    client.force_login(user_a)

    header = page(client, "/hq/").split("</header>", 1)[0]

    assert "town a" in header  # the name in the page's language
    assert "Town B" not in header and "town b" not in header
    english = client.get("/hq/", HTTP_ACCEPT_LANGUAGE="en").content.decode().split("</header>", 1)[0]
    assert "Town A" in english and "Town B" not in english


@pytest.mark.django_db
def test_hq_popup_says_who_the_station_is_shared_with(client, stations, user_a):
    client.force_login(user_a)

    html = page(client, "/hq/")

    assert station_features(html)["A-PRIVATE"]["properties"]["visibility"] == "private"
    assert page_data(html, "mz-map-vocabulary")["sharing"]["private"] == "自治体内のみ"  # in the page's language


@pytest.mark.django_db
def test_public_page_carries_no_sharing_information(client, stations):
    assert all("visibility" not in f["properties"] for f in public_features(client).values())
    assert page_data(public_shell(client), "mz-map-vocabulary")["sharing"] == {}


@pytest.mark.django_db
def test_the_page_snapshot_has_the_live_number_and_stream(client, stations):
    from dashboard.live import live_store, publish_stations

    publish_stations([Station.objects.get(code="A-PUBLIC").pk])
    store = live_store()

    snapshot = public_document(client)

    assert snapshot["seq"] == store.current_seq() > 0
    assert snapshot["stream"] == store.stream_id()
    assert snapshot["layers"] == ["river", "rain", "reservoir", "tide"]


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/", "/hq/"])
def test_no_station_html_is_built_on_the_server(client, stations, user_a, url):
    client.force_login(user_a)
    observe("A-PUBLIC", 4.1)

    if url == "/":
        features, script = public_features(client), public_basemap(client)
    else:
        html = page(client, url)
        features = station_features(html)
        (script,) = assets_of(html).inline_scripts
    for feature in features.values():
        assert "display" not in feature["properties"]
        assert not any("<" in str(value) for value in feature["properties"].values())
    # The map script only registers the (empty) station layers; no marker is built in it.
    assert "A-PUBLIC" not in script and "L.marker" not in script


# --- no CDN, every asset present ----------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/", "/hq/", "/accounts/login/"])
def test_pages_load_no_external_assets(client, stations, user_a, settings, url):
    settings.MAP_TILES_URL = ""
    client.force_login(user_a)

    html = page(client, url)
    assets = assets_of(html)

    assert assets.script_srcs or url == "/accounts/login/"
    for src in assets.script_srcs + assets.link_hrefs:
        # Static files, the page scripts' translations served by this site (dashboard/js_catalog.py),
        # or the public shell's own base map (preloaded in map mode: templates/public/shell.html).
        assert src.startswith(django_settings.STATIC_URL) or src in served_scripts(), src
    # Without tiles there is no reason for any absolute URL in the page at all.
    assert "http://" not in html and "https://" not in html


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/", "/hq/"])
def test_every_static_file_the_page_references_exists(client, stations, user_a, url):
    client.force_login(user_a)

    assets = assets_of(page(client, url))

    # The public shell loads the map's assets itself, in map mode only (static/mizumori/public.js).
    referenced = assets.script_srcs + assets.link_hrefs + assets.map_assets
    assert any(src.endswith("leaflet.js") for src in referenced)
    for served in served_scripts():
        if served in referenced:
            referenced.remove(served)
            assert client.get(served).status_code == 200
    for url_path in referenced:
        relative = url_path.removeprefix(django_settings.STATIC_URL)
        assert finders.find(relative), f"{url_path} is referenced but not in any static directory"


@pytest.mark.django_db
def test_map_script_is_one_file_and_needs_no_jquery(client, stations):
    assert assets_of(public_shell(client)).inline_scripts == []  # the same bytes for everyone: no nonce

    script = public_basemap(client)
    assert "L.map(" in script
    assert "$(" not in script and "jQuery" not in script


@pytest.mark.django_db
def test_tile_layer_only_when_configured(client, stations, settings):
    settings.MAP_TILES_URL = ""
    assert "L.tileLayer" not in public_basemap(client)

    settings.MAP_TILES_URL = "https://tiles.example.test/std/{z}/{x}/{y}.png"
    html = public_basemap(client)
    assert "L.tileLayer" in html
    assert "https://tiles.example.test/std/{z}/{x}/{y}.png" in html
    # The tile server is the only outside host the page mentions (besides the attribution link).
    hosts = set(re.findall(r"https?://([^/\"'\\]+)", html))
    assert hosts <= {"tiles.example.test", "maps.gsi.go.jp"}


# --- escaping -----------------------------------------------------------------------------------------

HOSTILE_NAME = '<script>alert("ja")</script>`${alert(1)}`'
HOSTILE_NAME_EN = '</script><img src=x onerror=alert(2)>'


@pytest.mark.django_db
def test_station_names_are_escaped_everywhere(client, towns):
    station = make_station(towns[0], "EVIL")
    station.name_ja, station.name_en = HOSTILE_NAME, HOSTILE_NAME_EN
    station.save()
    observe("EVIL", 4.2)  # level 4: also listed under the map

    html = public_shell(client)
    script = public_basemap(client)
    assets = assets_of(html)

    for text in (html, script, basemap_markup(script)):
        assert "<script>alert" not in text
        assert "<img src=x" not in text
    assert assets.inline_scripts == []
    assert set(assets.data_blocks) == {"mz-map-vocabulary", "mz-releases-data", "mz-orders-data"}
    # The document holds the names as they are: the browser sets them as text (see
    # tests/e2e/test_map_browser.py and test_public_browser.py).
    properties = public_features(client)["EVIL"]["properties"]
    assert (properties["name_ja"], properties["name_en"]) == (HOSTILE_NAME, HOSTILE_NAME_EN)


# --- legend, levels, stale ------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("language", ["ja", "en"])
def test_legend_speaks_the_language_of_its_page(client, stations, language):
    forget_all()
    script = client.get(f"/public/basemap.js?lang={language}", HTTP_ACCEPT_ENCODING="identity").content.decode()
    html = basemap_markup(script)
    legend = html[html.index('class="mz-legend"') :]
    legend = legend[: legend.index("</details>")]

    pairs = [
        ("凡例", "Legend"),
        ("警戒レベル5相当", "Level 5 equivalent"),
        ("警戒レベル4相当", "Level 4 equivalent"),
        ("警戒レベル3相当", "Level 3 equivalent"),
        ("警戒レベル2相当", "Level 2 equivalent"),
        ("データなし", "No data"),
        ("欠測", "Stale"),
        ("河川水位", "River level"),
        ("雨量", "Rainfall"),
    ]
    for ja, en in pairs:
        shown, other = (ja, en) if language == "ja" else (en, ja)
        assert shown in legend and other not in legend, shown
    for badge in ("L5", "L4", "L3", "L2"):
        assert f">{badge}</text>" in legend


@pytest.mark.django_db
def test_the_page_carries_the_level_words_and_colours_for_the_browser(client, stations):
    vocabulary = page_data(public_shell(client), "mz-map-vocabulary")

    assert vocabulary["levels"]["4"]["fill"] == level_style(4).fill
    assert vocabulary["levels"]["4"]["badge"] == "L4"
    assert vocabulary["levels"]["3"]["title"] == [level_style(3).title_ja, level_style(3).title_en]
    # The words are the active scheme's gauge words (alerts.vocabulary), not a copy.
    assert vocabulary["levels"]["4"]["name"] == ["警戒レベル4相当", "Level 4 equivalent"]
    assert vocabulary["levels"]["none"]["badge"] == "–"
    assert vocabulary["kinds"]["rain"] == {"shape": "diamond", "name": ["雨量", "Rainfall"]}
    assert vocabulary["towns"]["town-a"] == ["town a", "Town A"]
    assert vocabulary["station_url"] == "/stations/__code__/"


@pytest.mark.django_db
def test_stale_and_level_arrive_as_data(client, stations):
    observe("A-PUBLIC", 4.1, minutes_ago=120)  # level 4, and stale: expected every 10 minutes

    properties = public_features(client)["A-PUBLIC"]["properties"]

    assert properties["level"] == 4 and properties["stale"] is True and properties["value"] == 4.1


@pytest.mark.django_db
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_legend_marker_draws_each_kind_shape(shape):
    tag, _ = SHAPES[shape]

    drawing = marker_svg(shape=shape, level=level_style(3), stale=True)

    assert f"<{tag} " in drawing and ">L3</text>" in drawing and "stroke-dasharray" in drawing


@pytest.mark.django_db
def test_notices_sorted_most_severe_first(stations):
    observe("A-PUBLIC", 3.1)  # level 2
    observe("B-PUBLIC", 5.2)  # level 5

    features = [item.feature for item in map_stations(viewer=ANONYMOUS)]
    notices = station_notices(features_needing_notice(features), Municipality.objects.all())

    assert [(n.code, n.level.badge) for n in notices] == [("B-PUBLIC", "L5"), ("A-PUBLIC", "L2")]


@pytest.mark.django_db
def test_live_features_are_data_and_sharing_only_for_staff(stations):
    station = Station.objects.get(code="A-SHARED")
    now = timezone.now()

    for_staff = live_feature(station, now=now, show_sharing=True)
    for_public = live_feature(station, now=now, show_sharing=False)

    assert for_staff["properties"]["visibility"] == "shared"
    assert "visibility" not in for_public["properties"]
    assert {**for_public["properties"], "visibility": "shared"} == for_staff["properties"]
    assert "display" not in for_staff["properties"]


# --- page chrome ------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_public_page_is_mobile_ready(client, stations):
    html = page(client)

    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    assert "user-scalable=no" not in html  # residents must be able to zoom the page


@pytest.mark.django_db
def test_language_switch_changes_the_page_language(client, stations):
    assert '<html lang="ja">' in public_shell(client)
    assert 'href="/?lang=en"' in public_shell(client)  # links: a form would need a CSRF token
    assert 'action="/i18n/setlang/"' in page(client, "/accounts/login/")

    html = public_shell(client, "/?lang=en")
    assert '<html lang="en">' in html
    assert "Stations at alert level 2 or above" in html
    # Not by Accept-Language: a cache in front would keep a copy per spelling of it.
    assert '<html lang="ja">' in public_shell(client, HTTP_ACCEPT_LANGUAGE="en")

    response = client.post("/i18n/setlang/", {"language": "en", "next": "/"})
    assert response.status_code == 302
    assert '<html lang="en">' in public_shell(client)


@pytest.mark.django_db
def test_demo_banner_only_when_enabled(client, stations, settings):
    assert "FICTIONAL DEMO DATA" not in public_shell(client)

    settings.MIZUMORI_DEMO_BANNER = True
    html = public_shell(client)
    assert "FICTIONAL DEMO DATA" in html and "架空のデモデータ" in html


# --- queries ----------------------------------------------------------------------------------------------


def add_observed_stations(town, prefix, count, visibility):
    kinds = [StationKind.RIVER, StationKind.RAIN, StationKind.RESERVOIR]
    for index in range(count):
        code = f"{prefix}-{index}"
        make_station(town, code, kind=kinds[index % 3], visibility=visibility, lon=140 + index / 100)
        observe(code, 3.2 if kinds[index % 3] == StationKind.RIVER else 12.0)


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/", "/hq/"])
def test_query_count_does_not_grow_with_stations(client, stations, user_a, django_assert_max_num_queries, url):
    client.force_login(user_a)
    observe("A-PUBLIC", 3.6)
    # The public page's stations come with its snapshot document.
    load = public_features if url == "/" else (lambda client: station_features(page(client, url)))
    with CaptureQueriesContext(connection) as few_stations:
        load(client)

    add_observed_stations(stations["a-public"].municipality, "MORE-PUB", 15, Visibility.PUBLIC)
    add_observed_stations(stations["a-public"].municipality, "MORE-PRIV", 15, Visibility.PRIVATE)

    with django_assert_max_num_queries(len(few_stations)):
        features = load(client)
    assert len(features) >= 17


def fictional_town(n: int) -> Municipality:
    """Town n of prefecture 99 (none exists), with a valid check digit."""
    from tenancy.models import local_government_check_digit

    five = f"99{n:03d}"
    return Municipality.objects.create(code=f"{five}{local_government_check_digit(five)}", slug=f"more-{n}",
                                       name_ja=f"町{n}", name_en=f"Town {n}")


@pytest.mark.django_db
def test_hq_query_count_does_not_grow_with_towns(client, stations, towns, user_a, django_user_model,
                                                 django_assert_max_num_queries):
    """More towns, each with stations of every kind (some above a threshold, so with open alerts),
    a shelter and a station shared with town A: the same number of queries for an operator who sees
    every town and for a member of town A."""
    from geo.models import Shelter
    from sensors.models import SharingGrant

    operator = django_user_model.objects.create_superuser("operator", password="pw-operator-123")
    observe("A-PUBLIC", 4.2)
    counts = {}
    for user in (operator, user_a):
        client.force_login(user)
        with CaptureQueriesContext(connection) as queries:
            page(client, "/hq/")
        counts[user.pk] = len(queries)

    for n in range(3):
        town = fictional_town(100 + n)
        add_observed_stations(town, f"T{n}", 6, Visibility.SHARED)
        for index in range(0, 6, 3):
            observe(f"T{n}-{index}", 4.2)
            SharingGrant.objects.create(station=Station.objects.get(code=f"T{n}-{index}"), grantor=town, grantee=towns[0])
        Shelter.objects.create(code=f"SH{n}", name_ja=f"避難所{n}", name_en=f"Shelter {n}", municipality=town,
                               lon=140.1, lat=35.1, status="open")

    for user, sees in ((operator, 3 * 6), (user_a, 3 * 2)):
        client.force_login(user)
        with django_assert_max_num_queries(counts[user.pk]):
            html = page(client, "/hq/")
        assert len([code for code in station_features(html) if code.startswith("T")]) == sees


def test_station_popup_links_to_the_station_page_with_a_trend(client, towns):
    from datetime import timedelta

    from django.utils import timezone

    from sensors.services import observation_ingest
    from tests.conftest import make_station

    make_station(towns[0], "POP-1", visibility="public")
    now = timezone.now()
    observation_ingest(
        municipality=None,
        items=[{"station": "POP-1", "observed_at": now - timedelta(minutes=m), "value": 2.0 - m / 100} for m in (20, 10)],
        source="http",
    )
    assert public_features(client)["POP-1"]["properties"]["trend"] == "rising"
    vocabulary = page_data(public_shell(client), "mz-map-vocabulary")
    assert vocabulary["station_url"] == "/stations/__code__/"
    assert vocabulary["trends"]["rising"] == ["↑", "上昇"]  # arrow and word in the page's language


@pytest.mark.django_db
def test_a_gauge_never_speaks_with_a_towns_order_or_the_weather_agencys_words(client, stations):
    """Gauges say 「警戒レベルN相当」; 高齢者等避難 / 避難指示 / 緊急安全確保 are orders only a town
    issues, 警報 is the weather agency's. Not on the page, in its legend or in the words the browser
    draws popups with, whatever level the gauges are at."""
    from alerts.vocabulary import RESERVED_WORDS

    observe("A-PUBLIC", 5.2)  # 氾濫発生: level 5 equivalent
    observe("B-PUBLIC", 4.1)  # 氾濫危険水位: level 4 equivalent
    html = public_page_text(client)
    assert "警戒レベル5相当" in html and "警戒レベル4相当" in html
    for word in RESERVED_WORDS:
        assert word not in html, word
    # Nor through the other doors that describe a gauge: the station API, NGSI, the station page.
    for path in ("/api/v1/stations", "/ngsi/v2/entities?limit=1000", "/stations/A-PUBLIC/"):
        response = client.get(path)
        assert response.status_code == 200, path
        text = response.content.decode()
        assert [word for word in RESERVED_WORDS if word in text] == [], path


@pytest.mark.django_db
def test_a_suspect_reading_above_a_threshold_shows_as_unconfirmed_never_as_normal(client, stations):
    """QC flags, never silences: a lone jump to 氾濫危険水位 is held back from the level until the next
    reading, but the map, the station page and the API say "unconfirmed", not "normal"."""
    observe("A-PUBLIC", 1.0, minutes_ago=20)
    observe("A-PUBLIC", 4.2, minutes_ago=10)  # 3.2 m in 10 minutes: flagged suspect
    html = public_shell(client)
    props = public_features(client)["A-PUBLIC"]["properties"]
    assert (props["quality"], props["level"], props["unconfirmed_level"]) == ("suspect", 0, 4)
    vocabulary = page_data(html, "mz-map-vocabulary")
    assert vocabulary["levels"]["unconfirmed"]["name"] == ["未確認の値", "Unconfirmed reading"]
    api = {f["properties"]["code"]: f["properties"] for f in client.get("/api/v1/stations").json()["features"]}
    assert api["A-PUBLIC"]["unconfirmed_level"] == 4
    detail = client.get("/stations/A-PUBLIC/").content.decode()
    assert "未確認の値" in detail and "mz-level-unconfirmed" in detail

    observe("A-PUBLIC", 4.25, minutes_ago=1)  # the next reading confirms it: a level, not a question
    props = public_features(client)["A-PUBLIC"]["properties"]
    assert (props["quality"], props["level"], props["unconfirmed_level"]) == ("ok", 4, None)
    assert "未確認の値" not in client.get("/stations/A-PUBLIC/").content.decode()
