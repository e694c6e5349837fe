"""REST, Atom and board reads: who sees which alert, who may act on it."""

import json
from datetime import timedelta
from xml.etree import ElementTree

import pytest
from django.test import Client

from alerts.models import Alert
from alerts.selectors import alert_board, alert_history, station_audiences
from alerts.services import alert_resolve
from alerts.vocabulary import RESERVED_WORDS, gauge_words, order_words
from sensors.models import Visibility
from tenancy.models import Membership
from tenancy.selectors import ANONYMOUS, Viewer, viewer_for_user
from tests.conftest import make_station

from .conftest import ingest_confirmed, make_member, minute_now

ATOM = {"atom": "http://www.w3.org/2005/Atom"}
LEVELS = {"a-private": 4.1, "a-region": 3.6, "a-public": 4.2, "b-private": 3.7, "a-publow": 3.1}


@pytest.fixture
def alerts(stations, towns, django_capture_on_commit_callbacks):
    """One open alert per station: {"a-private": Alert(level 4), ...}; "a-publow" is public at level 2."""
    stations = {**stations, "a-publow": make_station(towns[0], "A-PUBLOW", visibility=Visibility.PUBLIC)}
    at = minute_now() - timedelta(minutes=10)
    for key, value in LEVELS.items():
        with django_capture_on_commit_callbacks(execute=True):
            ingest_confirmed(stations[key].code, at, value)
    return {key: Alert.objects.get(station=stations[key]) for key in LEVELS}


def codes(response):
    assert response.status_code == 200, response.content
    return sorted(item["station"]["code"] for item in response.json()["results"])


def test_anonymous_sees_public_alerts_of_level_3_and_up_only(client, alerts):
    assert codes(client.get("/api/v1/alerts")) == ["A-PUBLIC"]
    assert client.get(f"/api/v1/alerts/{alerts['a-publow'].pk}").status_code == 404
    assert client.get(f"/api/v1/alerts/{alerts['a-region'].pk}/cap").status_code == 404
    assert client.get(f"/api/v1/alerts/{alerts['a-public'].pk}/cap").status_code == 200


def test_members_see_their_own_shared_and_public_alerts(client, alerts, user_a, user_b):
    client.force_login(user_a)
    assert codes(client.get("/api/v1/alerts")) == ["A-PRIVATE", "A-PUBLIC", "A-PUBLOW", "A-REGION"]
    client.force_login(user_b)
    assert codes(client.get("/api/v1/alerts")) == ["A-PUBLIC", "A-PUBLOW", "A-REGION", "B-PRIVATE"]


def test_town_b_never_sees_town_a_private_alert(client, alerts, user_b, operator_b):
    hidden = alerts["a-private"]
    for user in (user_b, operator_b):
        client.force_login(user)
        assert "A-PRIVATE" not in codes(client.get("/api/v1/alerts"))
        assert "A-PRIVATE" not in codes(client.get("/api/v1/alerts", {"municipality": "town-a"}))
        assert client.get(f"/api/v1/alerts/{hidden.pk}").status_code == 404
        assert client.get(f"/api/v1/alerts/{hidden.pk}/cap").status_code == 404
        assert client.post(f"/api/v1/alerts/{hidden.pk}/acknowledge").status_code == 404
        assert client.post(f"/api/v1/alerts/{hidden.pk}/resolve").status_code == 404
    # The same answer as for an alert that does not exist.
    assert client.get("/api/v1/alerts/999999").json() == client.get(f"/api/v1/alerts/{hidden.pk}").json()
    viewer = viewer_for_user(user_b)
    assert hidden not in alert_board(viewer=viewer) and hidden not in alert_history(viewer=viewer)
    assert station_audiences([hidden.station_id], [t.pk for t in (user_b.memberships.get().municipality,)]) == {}


def test_filters(client, alerts, user_a):
    client.force_login(user_a)
    assert codes(client.get("/api/v1/alerts", {"level": 4})) == ["A-PRIVATE", "A-PUBLIC"]
    assert codes(client.get("/api/v1/alerts", {"min_level": 3})) == ["A-PRIVATE", "A-PUBLIC", "A-REGION"]
    assert codes(client.get("/api/v1/alerts", {"kind": "threshold", "state": "open"})) == [
        "A-PRIVATE", "A-PUBLIC", "A-PUBLOW", "A-REGION",
    ]
    assert codes(client.get("/api/v1/alerts", {"kind": "stale"})) == []
    assert codes(client.get("/api/v1/alerts", {"municipality": "town-b"})) == []
    assert codes(client.get("/api/v1/alerts", {"station": "A-REGION"})) == ["A-REGION"]
    page = client.get("/api/v1/alerts", {"limit": 2, "offset": 1}).json()
    assert (page["count"], page["limit"], page["offset"], len(page["results"])) == (4, 2, 1, 2)
    for bad in ({"state": "gone"}, {"level": "high"}, {"level": 9}, {"kind": "x"}, {"limit": 0}):
        assert client.get("/api/v1/alerts", bad).status_code == 400, bad


def test_detail_shows_the_alert_in_the_scheme_words_with_its_trail(client, alerts, user_a):
    client.force_login(user_a)
    body = client.get(f"/api/v1/alerts/{alerts['a-private'].pk}").json()
    assert (body["level"], body["level_name_ja"], body["level_name_en"]) == (4, "警戒レベル4相当", "Level 4 equivalent")
    assert (body["reached_ja"], body["reached_en"]) == ("危険な水位に到達", "Danger level reached")
    assert body["action_ja"] == gauge_words(4).advice_ja != ""
    # A gauge's alert never speaks with the order words, which the scheme keeps for towns' orders.
    text = json.dumps(body, ensure_ascii=False)
    assert [word for word in RESERVED_WORDS if word in text] == []
    assert order_words(4).name_ja == "避難指示"
    assert body["level_scheme"] == "2021-05" and body["state"] == "open" and body["unit"] == "m"
    assert body["observed_at"].endswith("+09:00")
    assert [(e["kind"], e["level"], e["actor"]) for e in body["events"]] == [("opened", 4, None)]
    assert body["cap_url"].endswith(f"/api/v1/alerts/{alerts['a-private'].pk}/cap")


def test_acknowledge_and_resolve_permissions(client, alerts, towns, user_a, operator_a, operator_b):
    region, private = alerts["a-region"], alerts["a-private"]
    assert client.post(f"/api/v1/alerts/{region.pk}/acknowledge").status_code == 401
    client.force_login(user_a)  # a viewer of the owner town
    assert client.post(f"/api/v1/alerts/{private.pk}/acknowledge").status_code == 403
    client.force_login(operator_b)  # an operator of a neighbour that sees the region station: a note, no more
    assert client.post(f"/api/v1/alerts/{region.pk}/acknowledge").status_code == 403
    assert client.post(f"/api/v1/alerts/{region.pk}/resolve").status_code == 403
    client.force_login(operator_a)
    first = client.post(f"/api/v1/alerts/{region.pk}/acknowledge")
    assert first.status_code == 200 and first.json()["recorded"] is True
    assert first.json()["alert"]["state"] == "acknowledged"
    again = client.post(f"/api/v1/alerts/{region.pk}/acknowledge")
    assert again.status_code == 200 and again.json()["recorded"] is False
    resolved = client.post(f"/api/v1/alerts/{private.pk}/resolve")
    assert resolved.status_code == 200 and resolved.json()["alert"]["state"] == "resolved"
    assert client.post(f"/api/v1/alerts/{private.pk}/resolve").json()["recorded"] is False
    assert client.post(f"/api/v1/alerts/{private.pk}/acknowledge").status_code == 409
    admin_b = make_member("b-admin", towns[1], Membership.Role.ADMIN)
    client.force_login(admin_b)
    assert client.post(f"/api/v1/alerts/{alerts['b-private'].pk}/resolve").status_code == 200


def test_gateway_tokens_cannot_act_on_alerts(client, alerts, token_a):
    response = client.post(
        f"/api/v1/alerts/{alerts['a-public'].pk}/acknowledge", HTTP_AUTHORIZATION=f"Bearer {token_a}"
    )
    assert response.status_code == 403


def test_browser_session_needs_the_csrf_token(alerts, operator_a):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(operator_a)
    url = f"/api/v1/alerts/{alerts['a-private'].pk}/acknowledge"
    refused = browser.post(url)
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    browser.get("/accounts/login/")  # any page that sets the cookie
    token = browser.cookies["csrftoken"].value
    assert browser.post(url, HTTP_X_CSRFTOKEN=token).status_code == 200


def test_cap_endpoint_content_negotiation_and_versions(client, alerts):
    url = f"/api/v1/alerts/{alerts['a-public'].pk}/cap"
    assert client.get(url, HTTP_ACCEPT="application/cap+xml").status_code == 200
    assert client.get(url, {"event": 999999}).status_code == 404
    assert client.get(url, {"event": "x"}).status_code == 400
    missing = client.get("/api/v1/alerts/999999/cap", HTTP_ACCEPT="application/cap+xml")
    assert missing.status_code == 404 and b"<error>" in missing.content


def feed_entries(client):
    response = client.get("/alerts/feed.atom")
    assert response.status_code == 200 and response["Content-Type"].startswith("application/atom+xml")
    root = ElementTree.fromstring(response.content)
    return [
        (entry.findtext("atom:title", namespaces=ATOM), entry.find("atom:link", namespaces=ATOM).get("href"))
        for entry in root.findall("atom:entry", namespaces=ATOM)
    ]


def test_atom_feed_lists_public_alerts_of_level_3_and_up_with_cap_links(client, alerts, user_b):
    public = alerts["a-public"]
    entries = feed_entries(client)
    assert len(entries) == 1
    title, link = entries[0]
    assert "A-PUBLIC" in title and "【警戒レベル4相当】" in title and "Level 4 equivalent" in title
    feed = client.get("/alerts/feed.atom").content.decode()
    assert [word for word in RESERVED_WORDS if word in feed] == []
    assert link == f"http://127.0.0.1:8000/api/v1/alerts/{public.pk}/cap"
    client.force_login(user_b)
    assert feed_entries(client) == entries  # a feed is the public view whoever reads it


def test_feed_keeps_a_resolved_public_alert_so_its_end_is_announced(client, alerts, operator_a):
    alert_resolve(alerts["a-public"], operator_a)
    [(title, _)] = feed_entries(client)
    assert "解除" in title and "ended" in title


def test_board_orders_by_level_then_age_without_n_plus_one(alerts, towns, user_a, django_assert_max_num_queries):
    viewer = viewer_for_user(user_a)
    with django_assert_max_num_queries(2):
        board = alert_board(viewer=viewer)
        for alert in board:  # everything a board row shows, already loaded
            assert alert.station.municipality.slug and alert.rule.kind
            assert alert.level_scheme.levels.all()[0].name_ja
    assert [a.station.code for a in board] == ["A-PRIVATE", "A-PUBLIC", "A-REGION", "A-PUBLOW"]
    assert [a.station.code for a in alert_board(viewer=viewer, municipality="town-a", kind="threshold")][:1] == [
        "A-PRIVATE"
    ]
    with django_assert_max_num_queries(3):
        history = alert_history(viewer=viewer)
        assert all(alert.events.all()[0].kind == "opened" for alert in history)
    assert len(history) == 4
    everything = Viewer(is_platform_admin=True)
    with django_assert_max_num_queries(2):
        assert len(alert_board(viewer=everything)) == 5
    assert [a.station.code for a in alert_board(viewer=ANONYMOUS)] == ["A-PUBLIC"]


def test_schema_documents_the_alert_endpoints(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    for path in ("/api/v1/alerts", "/api/v1/alerts/{alert_id}", "/api/v1/alerts/{alert_id}/acknowledge",
                 "/api/v1/alerts/{alert_id}/resolve", "/api/v1/alerts/{alert_id}/cap"):
        assert path in schema["paths"], path
    assert "application/cap+xml" in schema["paths"]["/api/v1/alerts/{alert_id}/cap"]["get"]["responses"]["200"]["content"]


@pytest.mark.parametrize(
    "body, content_type",
    [
        ('{"note": ""}', "application/json"),
        ('{"note": "   "}', "application/json"),
        ('{"note": 42}', "application/json"),
        ('["note"]', "application/json"),
        ('{"note": "' + "水" * 201 + '"}', "application/json"),
        ('{"note": "ok\\u0000<script>"}', "application/json"),
        ('{"note": "ok\\u001b[31m"}', "application/json"),
        ('{"note": "trunc', "application/json"),
        (b"\xff\xfe\x00n", "application/json"),
    ],
)
def test_a_bad_note_is_refused_and_nothing_is_recorded(client, alerts, operator_b, body, content_type):
    from alerts.models import AlertEvent
    from tenancy.models import AuditEvent

    shared = alerts["a-region"]  # B sees it: a note is allowed, so only the body can be wrong
    client.force_login(operator_b)
    before = (AlertEvent.objects.count(), AuditEvent.objects.count())
    response = client.post(f"/api/v1/alerts/{shared.pk}/notes", data=body, content_type=content_type)
    assert response.status_code == 400, response.content
    assert response.json()  # a JSON error saying what is wrong
    assert (AlertEvent.objects.count(), AuditEvent.objects.count()) == before


def test_a_neighbours_note_goes_to_the_owners_audit_log_and_stays_off_the_public_trail(
    client, alerts, towns, operator_b
):
    from tenancy.models import AuditEvent

    public = alerts["a-public"]
    client.force_login(operator_b)
    response = client.post(f"/api/v1/alerts/{public.pk}/notes", {"note": "  下流でも１．２ m 上昇  "},
                           content_type="application/json")
    assert response.status_code == 201
    assert response.json()["event"]["kind"] == "note"
    assert response.json()["event"]["note"] == "下流でも1.2 m 上昇"  # NFKC, trimmed
    logged = AuditEvent.objects.get(action=AuditEvent.Action.ALERT_NOTE_ADDED)
    assert logged.municipality == towns[0] and logged.actor == operator_b
    assert "note" in [event["kind"] for event in client.get(f"/api/v1/alerts/{public.pk}").json()["events"]]
    client.logout()
    assert "note" not in [event["kind"] for event in client.get(f"/api/v1/alerts/{public.pk}").json()["events"]]


def test_atom_feed_names_its_authors_and_types_its_cap_links(client, alerts):
    """RFC 4287 §4.1.1 (atom:author) and §4.2.7.3 (link type): the feed and each entry name an author,
    and an entry's link says it leads to a CAP document."""
    root = ElementTree.fromstring(client.get("/alerts/feed.atom").content)
    assert root.findtext("atom:author/atom:name", namespaces=ATOM) == "Mizumori"
    [entry] = root.findall("atom:entry", namespaces=ATOM)
    assert entry.findtext("atom:author/atom:name", namespaces=ATOM) == alerts["a-public"].station.municipality.name_ja
    [link] = entry.findall("atom:link", namespaces=ATOM)
    assert link.attrib == {"rel": "alternate", "type": "application/cap+xml",
                           "href": f"http://127.0.0.1:8000/api/v1/alerts/{alerts['a-public'].pk}/cap"}
