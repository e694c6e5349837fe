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

from dashboard.maps import LEVELS, map_feature, station_notices, station_popup_html
from dashboard.selectors import map_stations, stations_needing_notice
from sensors.models import StationKind, Visibility
from sensors.services import observation_ingest
from tenancy.selectors import ANONYMOUS
from tests.conftest import make_station

PUBLIC_CODES = {"A-PUBLIC", "B-PUBLIC"}
HIDDEN_FROM_PUBLIC = {"A-PRIVATE", "A-SHARED", "A-REGION", "B-PRIVATE", "B-SHARED", "B-REGION"}


# --- helpers ----------------------------------------------------------------------------------------


def observe(code, value, *, minutes_ago=1):
    report = observation_ingest(
        municipality=None,
        items=[{"station": code, "observed_at": timezone.now() - timedelta(minutes=minutes_ago), "value": value}],
        source="http",
    )
    assert report.accepted == 1, report.as_dict()


class AssetCollector(HTMLParser):
    """Every <script src>, <link href> and inline <script> body of a page."""

    def __init__(self):
        super().__init__()
        self.script_srcs, self.link_hrefs, self.inline_scripts = [], [], []
        self._in_inline_script = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script":
            if attrs.get("src") is not None:
                self.script_srcs.append(attrs["src"])
            else:
                self._in_inline_script = True
                self.inline_scripts.append("")
        elif tag == "link" and attrs.get("href") is not None:
            self.link_hrefs.append(attrs["href"])

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_inline_script = False

    def handle_data(self, data):
        if self._in_inline_script:
            self.inline_scripts[-1] += data


def assets_of(html: str) -> AssetCollector:
    collector = AssetCollector()
    collector.feed(html)
    return collector


def map_features(html: str) -> list[dict]:
    """The GeoJSON features folium embedded in the page script (each layer's `..._add({...});`)."""
    features = []
    for match in re.finditer(r"geo_json_[0-9a-f]+_add\((\{.*\})\);", html):
        features.extend(json.loads(match.group(1))["features"])
    return features


def station_features(html: str) -> dict[str, dict]:
    return {f["properties"]["code"]: f for f in map_features(html) if "code" in f.get("properties", {})}


def notices_section(html: str) -> str:
    """The list under the map (the map script, which mentions every station, comes after it)."""
    return html.split('id="notices-heading"', 1)[1].split("</section>", 1)[0]


def page(client, url="/"):
    response = client.get(url)
    assert response.status_code == 200
    return response.content.decode()


# --- who sees what ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_public_page_shows_only_public_stations_to_anonymous(client, stations):
    html = page(client)

    assert set(station_features(html)) == PUBLIC_CODES
    for code in HIDDEN_FROM_PUBLIC:
        assert code not in html


@pytest.mark.django_db
def test_public_page_stays_public_for_logged_in_town_user(client, stations, user_a):
    client.force_login(user_a)

    html = page(client)

    assert set(station_features(html)) == PUBLIC_CODES
    for code in HIDDEN_FROM_PUBLIC:
        assert code not in html


@pytest.mark.django_db
def test_public_list_names_only_public_stations_at_level_two_or_more(client, stations):
    observe("A-PUBLIC", 3.6)  # 避難判断水位 3.5 -> level 3
    observe("A-PRIVATE", 4.5)  # level 4, but not public
    observe("B-PUBLIC", 1.0)  # below every threshold

    html = page(client)
    notices = notices_section(html)

    assert "A-PUBLIC 観測所" in notices
    assert "高齢者等避難" in notices and "Older people evacuate" in notices
    assert "B-PUBLIC" not in notices
    assert "A-PRIVATE" not in html


@pytest.mark.django_db
def test_public_list_says_so_when_nothing_is_raised(client, stations):
    html = page(client)

    assert "現在、警戒レベル2以上の観測所はありません。" in html
    assert "No station is at alert level 2 or above now." in html


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
    assert "Platform administrator" in html.split("</header>", 1)[0]


@pytest.mark.django_db
def test_hq_header_names_the_users_town(client, stations, user_a):
    client.force_login(user_a)

    header = page(client, "/hq/").split("</header>", 1)[0]

    assert "Town A" in header and "town a" in header
    assert "Town B" not in header


@pytest.mark.django_db
def test_hq_popup_says_who_the_station_is_shared_with(client, stations, user_a):
    client.force_login(user_a)

    popup = station_features(page(client, "/hq/"))["A-PRIVATE"]["properties"]["display"]["popup"]

    assert "Own town only" in popup


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
        assert src.startswith(django_settings.STATIC_URL), src
    # Without tiles there is no reason for any absolute URL in the page at all.
    assert "http://" not in html and "https://" not in html


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/", "/hq/"])
def test_every_static_file_the_page_references_exists(client, stations, user_a, url):
    client.force_login(user_a)

    assets = assets_of(page(client, url))

    referenced = assets.script_srcs + assets.link_hrefs
    assert any(src.endswith("leaflet.js") for src in referenced)
    for url_path in referenced:
        relative = url_path.removeprefix(django_settings.STATIC_URL)
        assert finders.find(relative), f"{url_path} is referenced but not in any static directory"


@pytest.mark.django_db
def test_map_script_is_inline_once_and_needs_no_jquery(client, stations):
    assets = assets_of(page(client))

    assert len(assets.inline_scripts) == 1
    script = assets.inline_scripts[0]
    assert "L.map(" in script
    assert "$(" not in script and "jQuery" not in script


@pytest.mark.django_db
def test_tile_layer_only_when_configured(client, stations, settings):
    settings.MAP_TILES_URL = ""
    assert "L.tileLayer" not in page(client)

    settings.MAP_TILES_URL = "https://tiles.example.test/std/{z}/{x}/{y}.png"
    html = page(client)
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

    html = page(client)
    assets = assets_of(html)

    assert "<script>alert" not in html
    assert "<img src=x" not in html
    assert len(assets.inline_scripts) == 1  # no </script> broke out of the map script
    display = station_features(html)["EVIL"]["properties"]["display"]
    for fragment in (display["icon"], display["tooltip"], display["popup"]):
        assert "<script" not in fragment and "<img" not in fragment
    assert "&lt;script&gt;alert(&quot;ja&quot;)&lt;/script&gt;" in display["popup"]
    assert "&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;" in display["popup"]
    assert "&lt;script&gt;alert(&quot;ja&quot;)&lt;/script&gt;" in notices_section(html)


# --- legend, levels, stale ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_legend_is_in_japanese_and_english(client, stations):
    html = page(client)
    legend = html[html.index('class="mz-legend"') :]
    legend = legend[: legend.index("</details>")]

    for words in [
        ("凡例", "Legend"),
        ("緊急安全確保", "Emergency safety"),
        ("避難指示", "Evacuate"),
        ("高齢者等避難", "Older people evacuate"),
        ("避難行動の確認", "Check how to evacuate"),
        ("データなし", "No data"),
        ("欠測", "Stale"),
        ("河川水位", "River level"),
        ("雨量", "Rainfall"),
    ]:
        for word in words:
            assert word in legend, word
    for badge in ("L5", "L4", "L3", "L2"):
        assert f">{badge}</text>" in legend


@pytest.mark.django_db
def test_marker_shows_level_as_text_and_colour(client, stations):
    observe("A-PUBLIC", 4.1)  # 氾濫危険水位 4.0 -> level 4

    icon = station_features(page(client))["A-PUBLIC"]["properties"]["display"]["icon"]

    assert ">L4</text>" in icon
    assert LEVELS[4].fill in icon
    assert "mz-kind-river" in icon


@pytest.mark.django_db
def test_station_without_data_is_grey_and_hollow(client, stations):
    icon = station_features(page(client))["A-PUBLIC"]["properties"]["display"]["icon"]

    assert "mz-level-none" in icon
    assert 'fill="#ffffff"' in icon and ">–</text>" in icon


@pytest.mark.django_db
def test_stale_station_is_dashed_and_says_so(client, stations):
    observe("A-PUBLIC", 3.1, minutes_ago=120)  # expected every 10 minutes

    display = station_features(page(client))["A-PUBLIC"]["properties"]["display"]

    assert "stroke-dasharray" in display["icon"]
    assert "欠測" in display["icon"]
    assert "欠測" in display["tooltip"] and "stale" in display["tooltip"]


@pytest.mark.django_db
def test_popup_has_both_languages_reading_local_time_and_owner(client, stations):
    observe("A-PUBLIC", 3.6, minutes_ago=5)

    popup = station_features(page(client))["A-PUBLIC"]["properties"]["display"]["popup"]

    local = timezone.localtime(timezone.now() - timedelta(minutes=5))
    assert "A-PUBLIC 観測所" in popup and "A-PUBLIC gauge" in popup
    assert "河川水位" in popup and "River level" in popup
    assert "3.60 m" in popup
    assert "警戒レベル3" in popup and "高齢者等避難" in popup and "Older people evacuate" in popup
    assert local.strftime("%Y-%m-%d %H:%M") in popup and "JST" in popup
    assert "town a / Town A" in popup
    assert "避難判断水位" in popup


@pytest.mark.django_db
def test_kind_changes_the_marker_shape(towns):
    for kind in (StationKind.RIVER, StationKind.RAIN, StationKind.RESERVOIR):
        make_station(towns[0], f"K-{kind}", kind=kind)

    icons = {
        item.station.kind: map_feature(item, show_sharing=False)["properties"]["display"]["icon"]
        for item in map_stations(viewer=ANONYMOUS)
    }

    assert "<circle" in icons["river"]
    assert "<path" in icons["rain"]
    assert "<rect" in icons["reservoir"]


@pytest.mark.django_db
def test_notices_sorted_most_severe_first(stations):
    observe("A-PUBLIC", 3.1)  # level 2
    observe("B-PUBLIC", 5.2)  # level 5

    notices = station_notices(stations_needing_notice(map_stations(viewer=ANONYMOUS)))

    assert [(n.code, n.level.badge) for n in notices] == [("B-PUBLIC", "L5"), ("A-PUBLIC", "L2")]


@pytest.mark.django_db
def test_popup_leaves_out_sharing_on_the_public_map(stations):
    item = map_stations(viewer=ANONYMOUS)[0]

    assert "Shared with" not in station_popup_html(item, show_sharing=False)


# --- page chrome ------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_public_page_is_mobile_ready(client, stations):
    html = page(client)

    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    assert "user-scalable=no" not in html  # residents must be able to zoom the page


@pytest.mark.django_db
def test_language_switch_changes_the_page_language(client, stations):
    assert '<html lang="ja">' in page(client)
    assert 'action="/i18n/setlang/"' in page(client)

    response = client.post("/i18n/setlang/", {"language": "en", "next": "/"})
    assert response.status_code == 302

    html = page(client)
    assert '<html lang="en">' in html
    assert "Stations at alert level 2 or above" in html


@pytest.mark.django_db
def test_demo_banner_only_when_enabled(client, stations, settings):
    assert "FICTIONAL DEMO DATA" not in page(client)

    settings.MIZUMORI_DEMO_BANNER = True
    html = page(client)
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
    with CaptureQueriesContext(connection) as few_stations:
        page(client, url)

    add_observed_stations(stations["a-public"].municipality, "MORE-PUB", 15, Visibility.PUBLIC)
    add_observed_stations(stations["a-public"].municipality, "MORE-PRIV", 15, Visibility.PRIVATE)

    with django_assert_max_num_queries(len(few_stations)):
        html = page(client, url)
    assert len(station_features(html)) >= 17


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
    html = client.get("/").content.decode()
    assert "/stations/POP-1/" in html
    assert "rising" in html and ("↑" in html or "\\u2191" in html)  # JSON-escaped in the map script
