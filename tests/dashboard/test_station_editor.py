"""The town admin's station editor (/hq/admin/stations/): add, edit, move, retire, reinstate.

Only the admins of the owning town (and the platform operator acting for it) change anything;
another town's station is a 404 like one that does not exist; a bad or hostile form is a 400 that
names each field and writes nothing; a move reaches live maps through the change log.
"""

import pytest
from django.contrib.auth import get_user_model

from livelog.selectors import live_current_seq, live_messages_since
from sensors.models import Observation, Station, Threshold, ThresholdRevision, Visibility
from sensors.services import StationForbidden, observation_ingest, station_save
from tenancy.models import AuditEvent, Membership
from tenancy.selectors import viewer_for_user
from tests.dashboard.test_town_admin import member

LIST = "/hq/admin/stations/"
NEW = "/hq/admin/stations/new/"


@pytest.fixture
def admin_a(towns):
    return member(towns[0], "a-admin", Membership.Role.ADMIN)


def edit_url(code):
    return f"/hq/admin/stations/{code}/edit/"


def river_form(**changes):
    form = {
        "code": "A-NEW-01", "kind": "river", "name_ja": "新橋", "name_en": "Shinbashi", "river_name": "翡翠川",
        "datum": "", "visibility": "public", "interval_minutes": "10", "lat": "35.02", "lon": "140.03",
        "threshold-standby": "1.0", "threshold-flood_caution": "1.5", "threshold-evacuation_decision": "2.0",
        "threshold-flood_danger": "2.5", "threshold-flooding": "3.0",
    }
    form.update(changes)
    return form


def edit_form(station, **changes):
    form = {
        "kind": station.kind, "name_ja": station.name_ja, "name_en": station.name_en, "river_name": station.river_name,
        "datum": station.datum, "visibility": station.visibility, "interval_minutes": "10",
        "lat": str(station.lat), "lon": str(station.lon),
        **{f"threshold-{t.name}": str(t.value) for t in station.thresholds.all()},
    }
    form.update(changes)
    return form


def snapshot():
    """Everything a failed write must leave as it was."""
    return (
        sorted(Station.objects.values_list("code", "name_ja", "lon", "lat", "visibility", "is_active")),
        sorted(Threshold.objects.values_list("station__code", "name", "value")),
        ThresholdRevision.objects.count(),
        AuditEvent.objects.count(),
    )


# --- adding ------------------------------------------------------------------------------------


def test_admin_adds_a_river_gauge_with_the_standard_ladder(client, stations, towns, admin_a):
    client.force_login(admin_a)
    page = client.get(NEW).content.decode()
    # The standard ladders are offered: the river's words, and rain with JMA's national values.
    assert "氾濫危険水位" in page and "警戒レベル4相当" in page and 'value="50"' in page
    response = client.post(NEW, river_form())
    assert response.status_code == 302 and response["Location"] == edit_url("A-NEW-01")
    station = Station.objects.get(code="A-NEW-01")
    assert (station.municipality, station.kind, station.unit, station.visibility) == (towns[0], "river", "m", "public")
    assert (station.lat, station.lon) == (35.02, 140.03)
    ladder = {t.name: (t.level, t.value, t.label_ja) for t in station.thresholds.all()}
    assert ladder["flood_danger"] == (4, 2.5, "氾濫危険水位") and ladder["standby"] == (None, 1.0, "水防団待機水位")
    audit = AuditEvent.objects.get(action=AuditEvent.Action.STATION_ADDED)
    assert (audit.actor, audit.municipality, audit.target) == (admin_a, towns[0], "A-NEW-01")
    assert "A-NEW-01" in client.get(LIST).content.decode()


def test_a_rain_gauge_takes_the_national_values_and_full_width_input(client, stations, admin_a):
    client.force_login(admin_a)
    form = {
        "code": "Ａ－ＲＡＩＮ－９", "kind": "rain", "name_ja": "雨量", "name_en": "Rain", "visibility": "region",
        "lat": "３５．０１", "lon": "１４０．０２", "interval_minutes": "10",
        "threshold-rain_1h_strong": "20", "threshold-rain_1h_intense": "30", "threshold-rain_1h_very_intense": "50",
        "threshold-rain_1h_violent": "80", "threshold-rain_24h_heavy": "150", "threshold-rain_24h_extreme": "250",
        # Another kind's fields are ignored, whatever they hold.
        "threshold-flood_danger": "not a number",
    }
    assert client.post(NEW, form).status_code == 302
    station = Station.objects.get(code="A-RAIN-9")
    assert station.unit == "mm" and (station.lat, station.lon) == (35.01, 140.02)
    assert {t.name for t in station.thresholds.all()} == {
        "rain_1h_strong", "rain_1h_intense", "rain_1h_very_intense", "rain_1h_violent", "rain_24h_heavy",
        "rain_24h_extreme",
    }


@pytest.mark.parametrize(
    "changes, field, words",
    [
        ({"code": "A-PUBLIC"}, "code", "already taken"),
        ({"code": "a-public"}, "code", "already taken"),
        ({"code": "B-PRIVATE"}, "code", "already taken"),  # another town's: the same words, no owner
        ({"code": "<script>"}, "code", "Letters, digits"),
        ({"code": ""}, "code", "letters or digits"),
        ({"code": "X" * 41}, "code", "letters or digits"),
        ({"code": "A\x00B"}, "code", "letters or digits"),
        ({"kind": "volcano"}, "kind", "Choose a kind"),
        ({"name_ja": ""}, "name_ja", "Required"),
        ({"name_en": "x" * 101}, "name_en", "At most 100"),
        ({"name_en": "x" * 1_000_000}, "name_en", "At most 100"),
        ({"name_ja": "bad\u202eone"}, "name_ja", "Control characters"),
        ({"visibility": "everyone"}, "visibility", "Choose who may see it"),
        ({"unit": "ft"}, "unit", "reports in m"),
        ({"interval_minutes": "-5"}, "interval_minutes", "Whole minutes"),
        ({"interval_minutes": "99999"}, "interval_minutes", "Whole minutes"),
        ({"lat": "35,02"}, "lat", "decimal point"),
        ({"lat": "north"}, "lat", "not a number"),
        ({"lon": "nan"}, "lon", "finite"),
        ({"lon": "1e999"}, "lon", "finite"),
        ({"lat": "140.03", "lon": "35.02"}, "location", "swapped"),
        ({"lat": "51.5", "lon": "-0.12"}, "location", "Outside Japan"),
        ({"lat": "35.9", "lon": "140.03"}, "location", "at most 30 km"),
        ({"threshold-flood_danger": "1.2"}, "thresholds", "must be below"),
        ({"threshold-flood_danger": "9999"}, "threshold-flood_danger", "impossible"),
        ({"threshold-flood_danger": "abc"}, "threshold-flood_danger", "not a number"),
        ({f"threshold-{name}": "" for name in ("flood_caution", "evacuation_decision", "flood_danger", "flooding")},
         "thresholds", "at least one threshold with a level"),
    ],
)
def test_a_bad_new_station_is_a_400_naming_the_field_and_nothing_is_stored(
    client, stations, admin_a, changes, field, words
):
    client.force_login(admin_a)
    before = snapshot()
    response = client.post(NEW, river_form(**changes))
    assert response.status_code == 400
    page = response.content.decode()
    assert f'href="#field-{field}"' in page and words in page, page[:3000]
    assert "<script>" not in page.split("</header>", 1)[1].replace("&lt;script&gt;", "")
    assert snapshot() == before
    # A clash with another town's code names neither that town nor anything of its station.
    assert "town b" not in page.lower()


def test_the_echo_of_a_huge_paste_is_bounded(client, stations, admin_a):
    client.force_login(admin_a)
    response = client.post(NEW, river_form(name_en="ｘ" * 50_000))
    assert response.status_code == 400 and len(response.content) < 100_000


def test_a_town_with_a_boundary_checks_distance_from_it(client, stations, towns, admin_a):
    town = towns[0]
    town.boundary = {"type": "Polygon", "coordinates": [[[140, 35], [140.1, 35], [140.1, 35.1], [140, 35.1], [140, 35]]]}
    town.save()
    client.force_login(admin_a)
    assert client.post(NEW, river_form(lat="35.15", lon="140.05")).status_code == 302  # just outside: upstream
    response = client.post(NEW, river_form(code="A-FAR", lat="35.4", lon="140.05"))
    assert response.status_code == 400 and "boundary (at most 15 km)" in response.content.decode()


# --- who may ------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Membership.Role.VIEWER, Membership.Role.OPERATOR])
def test_only_admins_of_the_town_get_in(client, stations, towns, role):
    client.force_login(member(towns[0], f"a-{role}", role))
    before = snapshot()
    for url in (LIST, NEW, edit_url("A-PUBLIC")):
        assert client.get(url).status_code == 403, url
    assert client.post(NEW, river_form()).status_code == 403
    assert client.post(edit_url("A-PUBLIC"), {"action": "retire"}).status_code == 403
    assert snapshot() == before


def test_anonymous_is_sent_to_login_and_nothing_changes(client, stations):
    before = snapshot()
    for url in (LIST, NEW, edit_url("A-PUBLIC")):
        assert client.get(url)["Location"].startswith("/accounts/login/")
    client.post(edit_url("A-PUBLIC"), {"action": "retire"})
    client.post(NEW, river_form())
    assert snapshot() == before


@pytest.mark.parametrize("code", ["B-PRIVATE", "B-SHARED", "B-PUBLIC", "NO-SUCH"])
def test_another_towns_station_is_a_404_like_a_missing_one(client, stations, admin_a, code):
    client.force_login(admin_a)
    before = snapshot()
    responses = [
        client.get(edit_url(code)),
        client.post(edit_url(code), {"action": "retire"}),
        client.post(edit_url(code), edit_form(Station.objects.get(code="A-PUBLIC"), lat="36.0", lon="141.0")),
    ]
    assert [r.status_code for r in responses] == [404, 404, 404]
    for response in responses:
        assert "B-PRIVATE" not in response.content.decode() and "36.0" not in response.content.decode()
    assert snapshot() == before
    listing = client.get(LIST).content.decode()
    assert "A-PRIVATE" in listing and not any(f"B-{v}" in listing for v in ("PRIVATE", "SHARED", "REGION", "PUBLIC"))


def test_the_platform_operator_acting_for_the_town_may_and_the_service_refuses_others(stations, towns):
    operator = get_user_model().objects.create_user("platform-op", password="pw-12345-abc", is_superuser=True)
    Membership.objects.create(user=operator, municipality=towns[0], role=Membership.Role.VIEWER)
    station = station_save(
        viewer=viewer_for_user(operator), town=towns[0], data=river_form(code="A-OP-1"), actor=operator
    )
    assert station.municipality == towns[0]
    b_admin = member(towns[1], "b-admin", Membership.Role.ADMIN)
    with pytest.raises(StationForbidden):
        station_save(viewer=viewer_for_user(b_admin), town=towns[0], data=river_form(code="A-B-1"))
    with pytest.raises(StationForbidden):  # B's admin, on B's page, naming A's station
        station_save(viewer=viewer_for_user(b_admin), town=towns[1], station=station, data=edit_form(station))
    assert not Station.objects.filter(code="A-B-1").exists()


# --- editing, moving, retiring --------------------------------------------------------------------


def test_editing_keeps_threshold_history_and_audits(client, stations, towns, admin_a):
    client.force_login(admin_a)
    station = Station.objects.get(code="A-PUBLIC")
    # Raising the whole ladder at once: each value alone would cross the next, the result is in order.
    form = edit_form(
        station, name_en="Renamed", **{"threshold-standby": "3", "threshold-flood_caution": "4",
                                       "threshold-evacuation_decision": "4.5", "threshold-flood_danger": "5",
                                       "threshold-flooding": "6"},
    )
    assert client.post(edit_url("A-PUBLIC"), form).status_code == 302
    station.refresh_from_db()
    assert station.name_en == "Renamed"
    danger = Threshold.objects.get(station=station, name="flood_danger")
    assert danger.value == 5 and list(danger.revisions.values_list("value", flat=True)) == [4.0]
    edited = AuditEvent.objects.get(action=AuditEvent.Action.STATION_EDITED)
    assert edited.detail == {"name_en": ["A-PUBLIC gauge", "Renamed"]} and edited.actor == admin_a
    assert AuditEvent.objects.filter(action=AuditEvent.Action.THRESHOLD_CHANGED).count() == 5


def test_the_kind_and_code_do_not_change_and_an_existing_threshold_cannot_be_blanked(client, stations, admin_a):
    client.force_login(admin_a)
    station = Station.objects.get(code="A-PUBLIC")
    before = snapshot()
    response = client.post(edit_url("A-PUBLIC"), edit_form(station, kind="rain", code="HIJACK"))
    assert response.status_code == 400 and "kind cannot change" in response.content.decode()
    response = client.post(edit_url("A-PUBLIC"), edit_form(station, **{"threshold-flood_danger": ""}))
    assert response.status_code == 400 and "Enter a value" in response.content.decode()
    assert snapshot() == before


def test_a_move_reaches_live_maps_of_those_who_may_see_it(
    client, stations, admin_a, django_capture_on_commit_callbacks
):
    client.force_login(admin_a)
    seq = live_current_seq()
    for code in ("A-PUBLIC", "A-PRIVATE"):
        station = Station.objects.get(code=code)
        with django_capture_on_commit_callbacks(execute=True):
            assert client.post(edit_url(code), edit_form(station, lat="35.03", lon="140.04")).status_code == 302
    public, _ = live_messages_since(["live.public"], seq, limit=50)
    moved = [f for m in public if m["type"] == "stations" for f in m["features"]]
    assert [(f["id"], f["geometry"]["coordinates"]) for f in moved] == [("A-PUBLIC", [140.04, 35.03])]
    own, _ = live_messages_since([f"live.town.{stations['a-private'].municipality_id}"], seq, limit=50)
    assert any(f["id"] == "A-PRIVATE" for m in own if m["type"] == "stations" for f in m["features"])
    move = AuditEvent.objects.filter(action=AuditEvent.Action.STATION_EDITED, target="A-PUBLIC").get()
    assert move.detail["lat"] == [35.0, 35.03] and move.detail["lon"] == [140.0, 140.04]


def test_narrowing_visibility_in_the_editor_withdraws_it_from_the_public(
    client, stations, admin_a, django_capture_on_commit_callbacks
):
    client.force_login(admin_a)
    seq = live_current_seq()
    station = Station.objects.get(code="A-PUBLIC")
    with django_capture_on_commit_callbacks(execute=True):
        client.post(edit_url("A-PUBLIC"), edit_form(station, visibility=Visibility.PRIVATE))
    public, _ = live_messages_since(["live.public"], seq, limit=50)
    assert {"type": "withdrawn", "stations": ["A-PUBLIC"]}.items() <= public[0].items()
    assert AuditEvent.objects.filter(action=AuditEvent.Action.VISIBILITY_CHANGED, target="A-PUBLIC").exists()


def test_retiring_stops_showing_keeps_history_and_refuses_readings(
    client, stations, towns, admin_a, token_a, django_capture_on_commit_callbacks
):
    from django.utils import timezone

    from alerts.models import Alert, AlertRule

    observation_ingest(
        municipality=None, items=[{"station": "A-PUBLIC", "observed_at": timezone.now(), "value": 1.0}], source="http"
    )
    gauge = Station.objects.get(code="A-PUBLIC")
    rule = AlertRule.objects.create(station=gauge, kind="threshold", name="editor")
    alert = Alert.objects.create(station=gauge, rule=rule, level=3, peak_level=3, opened_at=timezone.now(),
                                 updated_at=timezone.now(), last_value=3.6)
    client.force_login(admin_a)
    seq = live_current_seq()
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(edit_url("A-PUBLIC"), {"action": "retire"}).status_code == 302
    station = Station.objects.get(code="A-PUBLIC")
    assert not station.is_active and Observation.objects.filter(station=station).count() == 1
    assert station.thresholds.count() == 5
    alert.refresh_from_db()
    assert alert.state == Alert.State.RESOLVED  # no row left on the board that nobody can act on
    public, _ = live_messages_since(["live.public"], seq, limit=50)
    assert [m for m in public if m["type"] == "withdrawn"][0]["stations"] == ["A-PUBLIC"]
    assert "A-PUBLIC" not in client.get("/api/v1/stations").content.decode()
    reply = client.post(
        "/api/v1/observations", {"observations": [{"station": "A-PUBLIC", "observed_at": timezone.now().isoformat(),
                                                    "value": 2.0}]},
        content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token_a}",
    ).json()
    assert reply["accepted"] == 0 and "inactive" in reply["rejected"][0]["error"]
    listing = client.get(LIST).content.decode()
    assert "廃止した観測所" in listing and "A-PUBLIC" in listing
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(edit_url("A-PUBLIC"), {"action": "reinstate"}).status_code == 302
    assert Station.objects.get(code="A-PUBLIC").is_active
    assert list(
        AuditEvent.objects.filter(action=AuditEvent.Action.STATION_RETIRED).order_by("at").values_list("detail", flat=True)
    ) == [{"retired": True}, {"retired": False}]
