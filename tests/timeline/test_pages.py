"""The HQ overview on /hq/ (and its fragment), the timeline page, and the replay bar on both maps."""

from __future__ import annotations

import re
from datetime import timedelta

from alerts.models import Alert

from .conftest import ingest


def overview_row(html: str, slug: str) -> str:
    match = re.search(rf'<tr data-overview-town="{slug}">(.*?)</tr>', html, re.S)
    assert match, slug
    return match.group(1)


def cell(row: str, name: str) -> str:
    return re.sub(r"<[^>]+>", "", re.search(rf'data-overview="{name}">(.*?)</td>', row, re.S).group(1)).strip()


def test_hq_overview_counts_per_town_what_the_viewer_may_see(client, stations, user_a, clock, django_capture_on_commit_callbacks):
    for code, value in (("A-PUBLIC", 3.6), ("A-PRIVATE", 4.2), ("B-PRIVATE", 5.5), ("B-REGION", 3.1)):
        for minutes in (3, 2):  # levels below 4 are raised once a second reading confirms them
            ingest(code, clock.now - timedelta(minutes=minutes), value, django_capture_on_commit_callbacks)
    client.force_login(user_a)
    html = client.get("/hq/").content.decode()
    assert 'id="mz-overview"' in html and 'id="mz-replay"' in html
    own = overview_row(html, "town-a")
    assert cell(own, "levels").replace(" ", "") == "0/1/1/0/0/0/2"  # L4 A-PRIVATE, L3 A-PUBLIC, 2 without data
    assert cell(own, "alerts").replace(" ", "") == "0/1/1/0/0"
    assert cell(own, "unacknowledged") == "2"
    neighbour = overview_row(html, "town-b")
    # B's private L5 gauge is not A's to see: B counts its shared, region and public stations only.
    assert cell(neighbour, "levels").replace(" ", "") == "0/0/0/1/0/0/2"
    assert "B-PRIVATE" not in html
    # The last hour's changes name what A may see.
    recent = re.search(r'data-overview="recent">(.*?)</ol>', html, re.S).group(1)
    assert "A-PUBLIC 観測所" in recent and "B-PRIVATE" not in recent
    # The fragment the page refreshes after live messages is the same section.
    Alert.objects.filter(station__code="A-PUBLIC").update(state="acknowledged")
    fragment = client.get("/hq/overview/")
    assert fragment["Cache-Control"] == "private, no-store"
    assert cell(overview_row(fragment.content.decode(), "town-a"), "unacknowledged") == "1"


def test_overview_and_timeline_need_a_login(client, stations):
    for url in ("/hq/overview/", "/hq/timeline/"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_timeline_page_lists_events_linking_to_the_map_then(client, stations, user_a, clock, django_capture_on_commit_callbacks):
    for minutes, value in ((40, 2.0), (30, 2.9), (20, 3.8), (10, 4.1)):  # steps a gauge can make
        for code in ("A-PUBLIC", "B-PRIVATE"):
            ingest(code, clock.now - timedelta(minutes=minutes), value, django_capture_on_commit_callbacks)
    client.force_login(user_a)
    html = client.get("/hq/timeline/").content.decode()
    assert "警戒レベル4相当に上昇" in html
    assert re.search(r'href="/hq/\?at=[^"]+"', html)
    assert "B-PRIVATE" not in html
    bad = client.get("/hq/timeline/", {"since": "<script>alert(1)</script>"})
    assert bad.status_code == 400
    assert "<script>alert(1)" not in bad.content.decode()
    assert "is not an ISO 8601 time" in bad.content.decode()


def test_the_timeline_kind_filter_names_every_kind_in_the_readers_language(client, stations, user_a):
    from timeline.selectors import KIND_GROUPS, KINDS
    from timeline.views import KIND_GROUP_WORDS, KIND_WORDS

    assert set(KIND_WORDS) == set(KINDS) and set(KIND_GROUP_WORDS) == set(KIND_GROUPS)
    client.force_login(user_a)
    expected = {"ja": ("アラート発生", "アラート"), "en": ("Alert raised", "Alerts")}
    for language, (kind_words, group_words) in expected.items():
        html = client.get("/hq/timeline/", HTTP_ACCEPT_LANGUAGE=language).content.decode()
        select = re.search(r'<select name="kind">(.*?)</select>', html, re.S).group(1)
        options = dict(re.findall(r'<option value="([^"]*)"[^>]*>([^<]*)</option>', select))
        # The values are the API's codes; no code is shown to the reader as the option's words.
        assert set(options) == {"", *KINDS, *KIND_GROUPS}
        assert all(words.strip() and words != value for value, words in options.items() if value)
        assert options["alert.opened"] == kind_words and f'label="{group_words}"' in select
    picked = client.get("/hq/timeline/", {"kind": "order.lifted"}, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert '<option value="order.lifted" selected>Order lifted</option>' in picked


def test_public_map_replays_public_data(client, stations):
    html = client.get("/").content.decode()
    assert 'data-view="public"' in html and "mizumori/replay.js" in html
    assert 'id="mz-overview"' not in html


def test_shelters_as_of_follow_their_audit_trail(client, towns, user_a, clock):
    from django.contrib.auth import get_user_model

    from geo.models import Shelter
    from geo.services import shelter_status_set
    from tenancy.models import Membership

    operator = get_user_model().objects.create_user("a-op", password="pw-a-op-123")
    Membership.objects.create(user=operator, municipality=towns[0], role=Membership.Role.OPERATOR)
    shelter = Shelter.objects.create(code="SH-1", name_ja="公民館", name_en="Hall", municipality=towns[0], lon=140, lat=35)
    before = clock.now
    clock.advance(minutes=10)
    shelter_status_set(shelter=shelter, status="open", actor=operator)
    opened = clock.advance(minutes=5)
    clock.advance(minutes=5)
    shelter_status_set(shelter=shelter, status="full", actor=operator)
    clock.advance(minutes=10)

    def status_at(moment):
        response = client.get("/api/v1/shelters", {"at": moment.isoformat()})
        assert response.status_code == 200
        return response.json()["features"][0]["properties"]["status"]

    assert (status_at(before), status_at(opened), status_at(clock.now)) == ("closed", "open", "full")
    assert client.get("/api/v1/shelters").json()["features"][0]["properties"]["status"] == "full"
    assert client.get("/api/v1/shelters", {"at": "nonsense"}).status_code == 400


def test_the_overview_counts_stations_without_loading_what_a_map_feature_needs(
    client, stations, user_a, clock, django_capture_on_commit_callbacks
):
    """At 2,000 stations, loading every station's thresholds and trend readings for the overview's
    counts took seconds per /hq/ load; the counts need the town, the latest level and the interval."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    ingest("A-PUBLIC", clock.now - timedelta(minutes=2), 1.0, django_capture_on_commit_callbacks)
    client.force_login(user_a)
    client.get("/hq/overview/")  # the as-of catalog copy and the level scheme are read once per process
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/hq/overview/").status_code == 200
    sql = [q["sql"] for q in queries.captured_queries]
    assert [text for text in sql if 'FROM "sensors_station"' in text]
    # What the trend-readings prefetch of a map feature would add for the stations read (the
    # overview's recent level changes read their window's readings in their own way):
    assert not [text for text in sql if '"sensors_observation"."station_id" IN' in text]
