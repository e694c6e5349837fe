"""The public page as a cache sees it: the same bytes for every reader, conditional GET, public
Cache-Control on the public page only, at most one new document per tick, and the mode and live
transport the server names (issue 17 items 1, 3 and 4)."""

from __future__ import annotations

import gzip
import json
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from django.utils.http import http_date

from alerts.models import Alert, AlertEvent, AlertRule
from config.build import front_end_build
from events.services import drain_pending
from alerts.vocabulary import RESERVED_WORDS
from public import load, snapshot
from public.http import public_cache_control, seconds_left
from public.tick_cache import JSON, Built, Encoded, forget_all
from sensors.services import observation_ingest
from tests.geo.test_shelters import make_shelter
from tests.public_page import BASEMAP_URL, SNAPSHOT_URL, basemap_markup, public_document, public_features

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def calm_machine(settings):
    """The machine running the tests is shared and busy: only a test's own limits count."""
    settings.PUBLIC_MINIMAL_CPU_LOAD = 10**6
PUBLIC_URLS = ["/", BASEMAP_URL, SNAPSHOT_URL]


def observe(code, value, *, minutes_ago=1):
    report = observation_ingest(
        municipality=None,
        items=[{"station": code, "observed_at": timezone.now() - timedelta(minutes=minutes_ago), "value": value}],
        source="http",
    )
    assert report.accepted == 1, report.as_dict()


def open_alert(station, level):
    rule = AlertRule.objects.create(station=station, kind="threshold", name=f"{station.code} rule")
    now = timezone.now()
    alert = Alert.objects.create(
        station=station, rule=rule, level=level, peak_level=level, opened_at=now, updated_at=now, last_value=3.6,
    )
    AlertEvent.objects.create(alert=alert, kind="opened", level=level, value=3.6, at=now)
    return alert


# --- the same bytes for everyone ----------------------------------------------------------------------


@pytest.mark.parametrize("url", PUBLIC_URLS)
def test_every_anonymous_reader_and_a_logged_in_one_get_the_same_bytes(stations, user_a, url):
    readers = [Client(), Client(), Client()]
    readers[2].force_login(user_a)
    responses = [reader.get(url, HTTP_ACCEPT_ENCODING="gzip") for reader in readers]

    assert {response.status_code for response in responses} == {200}
    assert len({response.content for response in responses}) == 1  # compressed bytes too: no padding
    assert len({response["ETag"] for response in responses}) == 1
    for response in responses:
        assert not response.cookies  # no session, no CSRF cookie
        assert "Set-Cookie" not in response
    assert b"csrfmiddlewaretoken" not in gzip.decompress(responses[0].content)
    assert b"nonce=" not in gzip.decompress(responses[0].content)


def test_the_shell_holds_no_station_and_no_per_request_data(stations):
    html = Client().get("/", HTTP_ACCEPT_ENCODING="identity").content.decode()

    assert "A-PUBLIC" not in html and "mz-live-snapshot" not in html
    assert "<script>" not in html.replace('<script src=', "")  # no inline script, so no nonce needed
    assert 'data-snapshot-url="/api/v1/public/snapshot"' in html


@pytest.mark.parametrize("url", PUBLIC_URLS)
def test_public_responses_say_how_long_a_cache_may_keep_them(stations, settings, url):
    settings.PUBLIC_SNAPSHOT_TICK_SECONDS = 7
    forget_all()
    response = Client().get(url)

    cache_control = response["Cache-Control"]
    assert cache_control.startswith("public, ")
    period = 60 if url == BASEMAP_URL else 7  # the base map: PUBLIC_BASEMAP_SECONDS
    max_age = int(cache_control.split("max-age=")[1].split(",")[0])
    # What is left of the period: a cache lets the copy go when the next build is due.
    assert 1 <= max_age <= period and f"stale-while-revalidate={period * 60}" in cache_control
    assert response["ETag"].startswith('"') and response.has_header("Last-Modified")
    assert "Accept-Encoding" in response["Vary"]


def test_a_cache_keeps_a_build_until_the_next_one_is_due_not_a_whole_period_past_it():
    built = Built.of(Encoded(b"{}", JSON), tick=100, period=5, previous=None, now=500.0)
    assert seconds_left(built, now=500.0) == 5
    assert seconds_left(built, now=502.2) == 3  # the next build is due at 505
    assert seconds_left(built, now=504.9) == 1
    # A build of a past tick (another process is making this one): ask again soon.
    assert seconds_left(built, now=507.0) == 1
    assert public_cache_control(5, 3).startswith("public, max-age=3, stale-while-revalidate=300,")


@pytest.mark.parametrize("url", PUBLIC_URLS)
def test_a_matching_if_none_match_or_if_modified_since_gets_304(stations, url):
    reader = Client()
    first = reader.get(url)

    again = reader.get(url, HTTP_IF_NONE_MATCH=first["ETag"])
    assert again.status_code == 304 and again.content == b""
    assert again["ETag"] == first["ETag"]
    # The same policy; max-age is what is left of the tick, so it may have counted down meanwhile.
    policy, later = ([part for part in response["Cache-Control"].split(", ") if not part.startswith("max-age=")]
                     for response in (first, again))
    assert later == policy and "max-age=" in again["Cache-Control"]
    assert reader.get(url, HTTP_IF_NONE_MATCH=f'"other", W/{first["ETag"]}').status_code == 304
    assert reader.get(url, HTTP_IF_MODIFIED_SINCE=first["Last-Modified"]).status_code == 304
    assert reader.get(url, HTTP_IF_NONE_MATCH='"something-else"').status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {"HTTP_IF_NONE_MATCH": "x" * 100_000},
        {"HTTP_IF_NONE_MATCH": '"\x00"; DROP TABLE sensors_station; --'},
        {"HTTP_IF_MODIFIED_SINCE": "<script>alert(1)</script>"},
        {"HTTP_IF_MODIFIED_SINCE": "Mon, 01 Jan 99999999 00:00:00 GMT"},
        {"HTTP_ACCEPT_ENCODING": "br;q=1e999, gzip;q=-1, \x00"},
    ],
)
def test_hostile_conditional_headers_get_the_whole_document(stations, headers):
    response = Client().get(SNAPSHOT_URL, **headers)

    assert response.status_code == 200


@pytest.mark.parametrize("query", ["?lang=<script>", "?lang=en%00", "?lang=" + "e" * 10_000, "?x=' OR 1=1 --"])
def test_hostile_queries_do_not_change_the_shell(stations, query):
    plain = Client().get("/", HTTP_ACCEPT_ENCODING="identity")
    odd = Client().get("/" + query, HTTP_ACCEPT_ENCODING="identity")

    assert odd.status_code == 200 and odd.content == plain.content
    assert b"<script>alert" not in odd.content


@pytest.mark.parametrize("query, words, absent", [
    ("", "形は種別", "Shape shows the kind"),
    ("?lang=ja", "形は種別", "Shape shows the kind"),
    ("?lang=en", "Shape shows the kind", "形は種別"),
    ("?lang=<script>", "形は種別", "Shape shows the kind"),  # unknown or hostile: the site's language
    ("?lang=" + "e" * 10_000, "形は種別", "Shape shows the kind"),
])
def test_the_base_maps_legend_speaks_the_asked_language_else_the_sites(stations, query, words, absent):
    forget_all()
    response = Client().get(BASEMAP_URL + query, HTTP_ACCEPT_ENCODING="identity")
    script = response.content.decode()
    markup = basemap_markup(script)
    assert response.status_code == 200 and words in markup and absent not in markup
    assert "<script>" not in script


def test_the_shell_asks_for_the_base_map_in_its_own_language(stations):
    for language in ("ja", "en", "zh-hans"):
        forget_all()
        html = Client().get(f"/?lang={language}").content.decode()
        assert f'data-basemap-url="/public/basemap.js?lang={language}&amp;v={front_end_build()}"' in html


def test_staff_responses_are_private_and_never_stored(client, stations, user_a):
    client.force_login(user_a)
    for url in ("/hq/", "/api/v1/stations", "/hq/alerts/", "/stations/A-PRIVATE/", "/accounts/login/"):
        cache_control = client.get(url)["Cache-Control"]
        assert "private" in cache_control and "no-store" in cache_control, url
    # Also anonymous answers that did not declare themselves public.
    assert Client().get("/api/v1/stations")["Cache-Control"] == "private, no-store"


# --- what the document holds --------------------------------------------------------------------------


def test_the_document_carries_no_private_station_alert_or_staff_detail(stations, user_a):
    open_alert(stations["a-public"], 3)
    open_alert(stations["a-private"], 4)
    open_alert(stations["b-shared"], 5)
    make_shelter(stations["a-public"].municipality, "SH-1")

    document = public_document(Client())
    text = json.dumps(document, ensure_ascii=False)

    assert {f["properties"]["code"] for f in document["features"]} == {"A-PUBLIC", "B-PUBLIC"}
    assert [alert["station"]["code"] for alert in document["alerts"]] == ["A-PUBLIC"]
    assert [f["id"] for f in document["shelters"]] == ["SH-1"]
    for hidden in ("A-PRIVATE", "A-SHARED", "A-REGION", "B-PRIVATE", "B-SHARED", "B-REGION", "visibility\": \"shared"):
        assert hidden not in text, hidden
    assert all("visibility" not in f["properties"] for f in document["features"])
    for word in RESERVED_WORDS:
        assert word not in text


def test_names_cannot_break_out_of_the_document(stations):
    station = stations["a-public"]
    station.name_ja = '</script><img src=x onerror=alert(1)>&'
    station.save()

    body = Client().get(SNAPSHOT_URL, HTTP_ACCEPT_ENCODING="identity").content

    assert b"<" not in body and b">" not in body and b"&" not in body
    assert public_features(Client())["A-PUBLIC"]["properties"]["name_ja"] == station.name_ja


def test_the_document_changes_at_most_once_per_tick(stations, settings):
    settings.PUBLIC_SNAPSHOT_TICK_SECONDS = 5
    start = 1_000_000_000.0  # the start of a tick
    first = snapshot.public_snapshot(now=start)

    observe("A-PUBLIC", 3.6)
    drain_pending()  # the live publisher, whose messages the document follows (a test's commit never comes)
    same_tick = snapshot.public_snapshot(now=start + 4.9)
    next_tick = snapshot.public_snapshot(now=start + 5.0)

    assert same_tick is first
    assert next_tick.etag != first.etag and next_tick.last_modified == start + 5.0
    level = json.loads(next_tick.body)["features"]
    assert {f["properties"]["code"]: f["properties"]["level"] for f in level}["A-PUBLIC"] == 3
    # Rebuilt but unchanged: the same ETag and the time the content first appeared.
    unchanged = snapshot.public_snapshot(now=start + 10.0)
    assert (unchanged.etag, unchanged.last_modified) == (next_tick.etag, next_tick.last_modified)
    assert Client().get(SNAPSHOT_URL).status_code == 200
    assert http_date(int(unchanged.last_modified))


def test_another_process_building_the_tick_is_not_waited_for(stations):
    from django.core.cache import cache

    start = 2_000_000_000.0
    previous = snapshot.public_snapshot(now=start)
    snapshot.SNAPSHOT._local.clear()  # as if this were another process, holding only the shared copy
    key, lock = snapshot.SNAPSHOT._keys(())
    cache.add(lock, 1)
    try:
        assert snapshot.public_snapshot(now=start + 60).etag == previous.etag
    finally:
        cache.delete(lock)


def test_sections_are_registered_by_name(stations):
    with pytest.raises(ValueError):
        snapshot.register_section("features", list)
    snapshot.register_section("orders", lambda: [{"town": "town-a", "words": "test"}])
    try:
        assert public_document(Client())["orders"] == [{"town": "town-a", "words": "test"}]
    finally:
        del snapshot.SECTIONS["orders"]


# --- mode and transport ---------------------------------------------------------------------------------


def test_a_calm_server_offers_the_map_and_websockets(stations):
    document = public_document(Client())

    assert document["mode"] == "map" and document["notice"] is None
    assert document["live"] == {"transport": "websocket", "interval": 5, "websocket": "/ws/live/?view=public"}


@pytest.mark.parametrize(
    "limit, value", [("PUBLIC_MINIMAL_LAG_SECONDS", -1.0), ("PUBLIC_MINIMAL_CPU_LOAD", -1.0)]
)
def test_a_saturated_server_switches_readers_to_the_minimal_page_and_polling(stations, settings, limit, value):
    setattr(settings, limit, value)

    document = public_document(Client())

    assert document["mode"] == "minimal"
    assert document["live"]["transport"] == "poll"
    assert "簡易表示" in document["notice"]["ja"] and "simplified" in document["notice"]["en"]
    assert {f["properties"]["code"] for f in document["features"]} == {"A-PUBLIC", "B-PUBLIC"}


@pytest.mark.parametrize("mode", ["map", "minimal"])
def test_the_shell_preloads_the_map_only_when_the_server_would_answer_in_map_mode(stations, settings, mode):
    """The shell guesses the snapshot's mode (public.js then loads the map beside the snapshot): in
    minimal mode, the page must not fetch the map library at all."""
    if mode == "minimal":
        settings.PUBLIC_MINIMAL_LAG_SECONDS = -1.0  # saturated, as the snapshot would see it
    forget_all()

    html = Client().get("/").content.decode()

    assert f'data-map-hint="{mode}"' in html
    assert public_document(Client())["mode"] == mode
    preloads = [line for line in html.splitlines() if 'rel="preload"' in line]
    if mode == "map":
        hrefs = {line.split('href="')[1].split('"')[0] for line in preloads}
        assert hrefs == {
            "/static/vendor/leaflet/leaflet.css",
            "/static/mizumori/map.css",
            "/static/vendor/leaflet/leaflet.js",
            "/static/mizumori/map.js",
            f"{BASEMAP_URL}?lang=ja&amp;v={front_end_build()}",
        }
    else:
        assert preloads == [] and "leaflet" not in html.split("<body")[0]
    # The first snapshot request starts from <head>, whatever the mode.
    assert f'src="/static/mizumori/public_prefetch.js" data-snapshot-url="{SNAPSHOT_URL}" async' in html


def test_a_database_that_does_not_answer_counts_as_saturated():
    assert load.Load(lag_seconds=None, queue_depth=None, cpu_load=0.0, public_sockets=0).saturated_by == ["lag"]
    assert load.Load(lag_seconds=0.0, queue_depth=10**9, cpu_load=0.0, public_sockets=0).saturated_by == ["queue"]


def test_past_the_websocket_limit_new_readers_poll(stations, settings):
    # The count lives in the shared cache (Redis on the services run): a browser test earlier in the
    # session may have left sockets counted that this test's arithmetic does not know of.
    load.socket_counter().delete(load.PUBLIC_SOCKETS_KEY)
    settings.PUBLIC_WEBSOCKET_READERS_MAX = 2
    load.public_socket_opened()
    assert public_document(Client())["live"]["transport"] == "websocket"
    load.public_socket_opened()
    assert public_document(Client())["live"]["transport"] == "poll"
    load.public_socket_closed()
    load.public_socket_closed()
    load.public_socket_closed()  # never below zero
    assert public_document(Client())["live"]["transport"] == "websocket"


def test_operators_can_force_a_mode_and_a_transport(stations, settings):
    settings.PUBLIC_PAGE_MODE = "minimal"
    settings.PUBLIC_LIVE_TRANSPORT = "poll"
    document = public_document(Client())
    assert (document["mode"], document["live"]["transport"]) == ("minimal", "poll")

    settings.PUBLIC_PAGE_MODE = "map"
    settings.PUBLIC_MINIMAL_LAG_SECONDS = -1.0
    assert public_document(Client())["mode"] == "map"
