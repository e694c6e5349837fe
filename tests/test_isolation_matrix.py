"""Who sees what, through every door: each role of town A and town B, and anonymous, against the
private, shared, region and public stations of each town.

Allowed cells return the station; denied cells behave exactly as for a station that does not exist
(404 where a door names the station, absence where it lists stations), never a 403 that would tell
the caller the station is there.
"""

import csv
import io
import json
import re
from datetime import timedelta

import pytest
import shapely
import shapely.geometry
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.utils import timezone

from dashboard import features as feature_store
from dashboard.consumers import LiveConsumer
from public.snapshot import encoded_snapshot
from sensors.services import observation_ingest
from tenancy.models import Membership
from tests.public_page import public_basemap, public_page_text

STATION_CODES = [f"{town}-{vis}" for town in "AB" for vis in ("PRIVATE", "SHARED", "REGION", "PUBLIC")]
SHARED_WITH = {"A": "B", "B": "A"}  # the `stations` fixture's grants
PRINCIPALS = ["anonymous"] + [f"{town}-{role}" for town in "ab" for role in Membership.Role.values]


def may_see(principal: str, code: str) -> bool:
    """The rule, written out independently of the code under test."""
    owner, visibility = code.split("-")
    if visibility == "PUBLIC":
        return True
    if principal == "anonymous":
        return False
    town = principal.split("-")[0].upper()
    if visibility == "REGION":
        return True
    if visibility == "SHARED":
        return town == owner or SHARED_WITH[owner] == town
    return town == owner


@pytest.fixture
def world(stations, towns):
    now = timezone.now()
    observation_ingest(
        municipality=None,
        items=[{"station": code, "observed_at": now - timedelta(minutes=5), "value": 1.0} for code in STATION_CODES],
        source="http",
    )
    users = {}
    for town, prefix in zip(towns, "ab"):
        for role in Membership.Role.values:
            user = get_user_model().objects.create_user(f"{prefix}-{role}", password="pw-12345-abc")
            Membership.objects.create(user=user, municipality=town, role=role)
            users[f"{prefix}-{role}"] = user
    return users


def client_as(client, world, principal):
    if principal != "anonymous":
        client.force_login(world[principal])
    return client


def listed_codes(text: str) -> set[str]:
    return {code for code in STATION_CODES if re.search(rf"\b{code}\b", text)}


# Transactional: the websocket consumer closes the thread's connection after each database call,
# which would end the test's wrapping transaction.
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("principal", PRINCIPALS)
def test_every_door_agrees_with_the_rule(client, world, principal):
    client = client_as(client, world, principal)
    expected = {code for code in STATION_CODES if may_see(principal, code)}
    public = {code for code in STATION_CODES if code.endswith("PUBLIC")}

    # REST list and its exports
    geojson = client.get("/api/v1/stations").json()
    assert {f["properties"]["code"] for f in geojson["features"]} == expected
    rows = list(csv.reader(io.StringIO(client.get("/api/v1/stations?format=csv").content.decode())))
    assert {row[0] for row in rows[1:]} == expected

    # Doors that name a station: allowed is 200, denied is the same 404 as a missing code.
    missing = client.get("/api/v1/stations/NO-SUCH-CODE/observations")
    for code in STATION_CODES:
        for url in (
            f"/api/v1/stations/{code}/observations",
            f"/api/v1/stations/{code}/observations?format=csv",
            f"/api/v1/stations/{code}/forecast",
            f"/stations/{code}/",
        ):
            response = client.get(url)
            if code in expected:
                assert response.status_code == 200, (principal, url)
            else:
                assert response.status_code == 404, (principal, url)
                if url.startswith("/api/"):
                    assert response.json() == missing.json(), (principal, url)
        # The HQ page of a gauge's backtest: staff only, and a hidden gauge is a missing one.
        backtest_page = client.get(f"/hq/forecasts/{code}/")
        if principal == "anonymous":
            assert backtest_page.status_code == 302, code
        else:
            assert backtest_page.status_code == (200 if code in expected else 404), (principal, code)
        # The tide door (these are river gauges): a visible one is "not a tide gauge", a hidden one
        # is answered exactly like a missing code.
        tide = client.get(f"/api/v1/stations/{code}/tide")
        assert tide.status_code == 404, (principal, code)
        assert tide.json() == ({"detail": f"{code} is not a tide gauge."} if code in expected else missing.json()), (principal, code)

    # Pages: the public map is the public view for everyone; HQ shows what the viewer may see.
    assert listed_codes(public_page_text(client)) == public  # the shell, its base map and its snapshot
    hq = client.get("/hq/")
    if principal == "anonymous":
        assert hq.status_code == 302
    else:
        assert listed_codes(hq.content.decode()) == expected

    # Websocket: the HQ view's snapshot, and the public view's, which ignores the login.
    user = world.get(principal)
    assert snapshot_codes(user, "/ws/live/") == expected
    assert snapshot_codes(user, "/ws/live/?view=public") == public
    # And what the replay log gives back (on resume, and after an outage's "restored": one path).
    assert replayed_codes(user, "/ws/live/") == expected
    assert replayed_codes(user, "/ws/live/?view=public") == public

    # The past (timeline/): the map as of a moment and the event timeline, by today's visibility.
    # Every station rises through 氾濫注意水位 (3.0 m, level 2), so each leaves a crossing behind.
    now = timezone.now()
    for minutes, value in ((4, 1.45), (3, 1.9), (2, 2.35), (1, 2.8), (0.5, 3.25)):
        observation_ingest(
            municipality=None, source="http",
            items=[{"station": code, "observed_at": now - timedelta(minutes=minutes), "value": value} for code in STATION_CODES],
        )
    moment = {"at": timezone.now().isoformat()}
    as_of = client.get("/api/v1/stations", moment).json()
    assert {f["properties"]["code"] for f in as_of["features"]} == expected
    window = {"since": (now - timedelta(minutes=5)).isoformat(), "until": moment["at"], "step": 60}
    frames = client.get("/api/v1/replay/frames", window).json()["frames"]
    assert {code for frame in frames for code in frame["stations"]} == expected, principal
    events = client.get("/api/v1/events", {"kind": "level"}).json()["results"]
    assert {e["subject"] for e in events} == expected, principal
    if principal != "anonymous":
        timeline = client.get("/hq/timeline/").content.decode()
        assert listed_codes(timeline) == expected
        assert listed_codes(client.get("/hq/overview/").content.decode()) <= expected

    # The map pages again, after those readings: their station features now come from the live
    # messages of each page's audience (dashboard.features), not from a build through the selector.
    assert listed_codes(encoded_snapshot().body.decode()) == public
    if principal != "anonymous":
        assert listed_codes(client.get("/hq/").content.decode()) == expected
    assert {store.last_update for store in feature_store._audiences.values()} == {"changes"}


# Each town's stations on the corners of a square (0.2 degrees), so each is a corner of any hull.
CORNERS = {"PUBLIC": (0.0, 0.0), "REGION": (0.2, 0.0), "SHARED": (0.0, 0.2), "PRIVATE": (0.2, 0.2)}
TOWN_ORIGINS = {"A": (140.0, 35.0), "B": (141.0, 36.0)}


def corner_of(code: str) -> tuple[float, float]:
    town, visibility = code.split("-")
    return TOWN_ORIGINS[town][0] + CORNERS[visibility][0], TOWN_ORIGINS[town][1] + CORNERS[visibility][1]


def drawn_area(text: str, slug: str):
    """The area a map page or script draws for town `slug` (its boundary layer's feature), or None."""
    decoder = json.JSONDecoder()
    for match in re.finditer(r'\{"features": ', text):
        try:
            collection, _ = decoder.raw_decode(text, match.start())
        except ValueError:
            continue
        for feature in collection.get("features", []):
            if feature.get("id") == slug:
                return shapely.geometry.shape(feature["geometry"])
    return None


@pytest.mark.parametrize("principal", PRINCIPALS)
def test_a_town_without_a_boundary_is_outlined_only_by_stations_the_reader_may_see(client, world, principal):
    """Neither town has a boundary, so the maps draw each as the hull of its stations: the hull of
    the ones the reader may see, so it never reveals where a hidden station stands."""
    from sensors.models import Station

    for code in STATION_CODES:
        lon, lat = corner_of(code)
        Station.objects.filter(code=code).update(lon=lon, lat=lat)
    client = client_as(client, world, principal)
    pages = {"anonymous": public_basemap(client)}  # the public map, the same for everyone
    if principal != "anonymous":
        pages[principal] = client.get("/hq/").content.decode()
    for reader, text in pages.items():
        for town, slug in (("A", "town-a"), ("B", "town-b")):
            area = drawn_area(text, slug)
            for code in (code for code in STATION_CODES if code.startswith(town)):
                point = shapely.Point(*corner_of(code))
                if may_see(reader, code):
                    assert area is not None and area.contains(point), (principal, reader, code)
                else:
                    assert area is None or area.distance(point) > 0.05, (principal, reader, code)


def replayed_codes(user, path) -> set[str]:
    async def run():
        communicator = WebsocketCommunicator(LiveConsumer.as_asgi(), path)
        if user is not None:
            communicator.scope["user"] = user
        await communicator.connect()
        await communicator.send_json_to({"type": "subscribe", "layers": ["river", "rain", "reservoir"], "snapshot": False})
        subscribed = await communicator.receive_json_from(timeout=5)
        await communicator.send_json_to({"type": "resume", "since": 0, "stream": subscribed["stream"]})
        codes = set()
        while not await communicator.receive_nothing(timeout=0.5):
            message = await communicator.receive_json_from(timeout=5)
            assert message["type"] == "stations", message
            codes |= {feature["properties"]["code"] for feature in message["features"]}
        await communicator.disconnect()
        return codes

    return async_to_sync(run)()

def snapshot_codes(user, path) -> set[str]:
    async def run():
        communicator = WebsocketCommunicator(LiveConsumer.as_asgi(), path)
        if user is not None:
            communicator.scope["user"] = user
        await communicator.connect()
        await communicator.send_json_to({"type": "subscribe", "layers": ["river", "rain", "reservoir"]})
        await communicator.receive_json_from(timeout=5)
        snapshot = await communicator.receive_json_from(timeout=5)
        await communicator.disconnect()
        return {feature["properties"]["code"] for feature in snapshot["features"]}

    return async_to_sync(run)()


# Transactional for the same reason as above.
@pytest.mark.django_db(transaction=True)
def test_live_messages_reach_every_principal_at_once_by_the_rule(world):
    """Every principal's socket open in one process at the same time (they share the process's
    fan-out, dashboard.broadcast): a reading at every station reaches each exactly as the rule says,
    on the HQ view and on the public view."""
    sockets = [(principal, path) for principal in PRINCIPALS for path in ("/ws/live/", "/ws/live/?view=public")]

    async def run():
        communicators = []
        for principal, path in sockets:
            communicator = WebsocketCommunicator(LiveConsumer.as_asgi(), path)
            if world.get(principal) is not None:
                communicator.scope["user"] = world[principal]
            await communicator.connect()
            await communicator.send_json_to({"type": "subscribe", "layers": ["river", "rain", "reservoir"], "snapshot": False})
            assert (await communicator.receive_json_from(timeout=5))["type"] == "subscribed"
            communicators.append(communicator)
        await database_sync_to_async(observation_ingest)(
            municipality=None, source="http",
            items=[{"station": code, "observed_at": timezone.now(), "value": 1.2} for code in STATION_CODES],
        )
        heard = {}
        for (principal, path), communicator in zip(sockets, communicators):
            codes = set()
            while not await communicator.receive_nothing(timeout=0.3):
                message = await communicator.receive_json_from(timeout=5)
                assert message["type"] == "stations", message
                codes |= {feature["properties"]["code"] for feature in message["features"]}
            heard[(principal, path)] = codes
            await communicator.disconnect()
        return heard

    heard = async_to_sync(run)()
    public = {code for code in STATION_CODES if code.endswith("PUBLIC")}
    for principal, path in sockets:
        expected = public if path.endswith("view=public") else {c for c in STATION_CODES if may_see(principal, c)}
        assert heard[(principal, path)] == expected, (principal, path)


@pytest.mark.parametrize("principal", ["anonymous", "b-viewer"])
def test_error_messages_never_name_a_hidden_station(client, world, principal):
    client = client_as(client, world, principal)
    for url in ("/api/v1/stations/A-PRIVATE/observations", "/api/v1/stations/A-PRIVATE/forecast", "/stations/A-PRIVATE/"):
        body = client.get(url).content.decode()
        assert "A-PRIVATE" not in body and "A-PRIVATE 観測所" not in body
    # A gateway token of town B cannot learn whether A's private station exists.
    assert json.dumps(client.get("/api/v1/stations").json()).count("A-PRIVATE") == 0


# --- actions: who may do what, through every door that acts ------------------------------------
#
# Principals for actions: a member of A only (viewer, operator, admin), a user who is operator in A
# and viewer in B acting as B, a neighbour operator (B) on A's shared station, anonymous, and the
# platform operator. The rule, written out independently of tenancy.permissions: acknowledging,
# resolving, shelters and the town pages belong to the owner town's role in the town the user acts
# for; a note needs the operator role in the acting town and a station that town may see.

ACTORS = ["anonymous", "a-viewer", "a-operator", "a-admin", "a-operator+b-viewer@b", "b-operator", "platform"]
ALERT_STATIONS = ["A-PRIVATE", "A-SHARED", "A-PUBLIC", "B-SHARED"]
ROLE_OF = {"viewer": 1, "operator": 2, "admin": 3}


def acting(actor: str) -> tuple[str | None, str | None]:
    """(acting town, role there) as the rule sees it; ("*", "admin") for the platform operator."""
    if actor == "anonymous":
        return None, None
    if actor == "platform":
        return "*", "admin"
    if actor == "a-operator+b-viewer@b":
        return "B", "viewer"
    town, role = actor.split("-")
    return town.upper(), role


def may(actor: str, action: str, owner: str, station_code: str | None = None) -> bool:
    town, role = acting(actor)
    if town is None:
        return False
    if town == "*":
        return True
    if action == "note":
        principal = f"{town.lower()}-{role}"
        return ROLE_OF[role] >= ROLE_OF["operator"] and may_see(principal, station_code)
    least = "admin" if action.startswith("manage") else "operator"
    return town == owner and ROLE_OF[role] >= ROLE_OF[least]


@pytest.fixture
def actors(stations, towns):
    from alerts.models import Alert, AlertEvent, AlertRule

    users = {}
    for actor in ACTORS[1:]:
        user = get_user_model().objects.create_user(actor.replace("@", "-at-").replace("+", "-and-"), password="pw-12345-abc")
        users[actor] = user
    for actor in ("a-viewer", "a-operator", "a-admin"):
        Membership.objects.create(user=users[actor], municipality=towns[0], role=actor.split("-")[1])
    Membership.objects.create(user=users["b-operator"], municipality=towns[1], role="operator")
    both = users["a-operator+b-viewer@b"]
    Membership.objects.create(user=both, municipality=towns[0], role="operator")
    Membership.objects.create(user=both, municipality=towns[1], role="viewer")
    users["platform"].is_superuser = True
    users["platform"].save()
    now = timezone.now()
    alerts = {}
    for code in ALERT_STATIONS:
        station = next(s for s in stations.values() if s.code == code)
        rule = AlertRule.objects.create(station=station, kind="threshold", name="matrix")
        alerts[code] = Alert.objects.create(
            station=station, rule=rule, level=3, peak_level=3, opened_at=now, updated_at=now, last_value=3.6
        )
        AlertEvent.objects.create(alert=alerts[code], kind="opened", level=3, value=3.6, at=now)
    return users, alerts


def act_as(client, users, towns, actor):
    if actor == "anonymous":
        return client
    client.force_login(users[actor])
    if actor == "a-operator+b-viewer@b":
        session = client.session
        session["mizumori_active_town"] = towns[1].pk
        session.save()
    return client


def viewer_may_see(actor: str, code: str) -> bool:
    town, role = acting(actor)
    if town == "*":
        return True
    if town is None:
        return code.endswith("PUBLIC")  # the public sees level-3 alerts of public stations
    return may_see(f"{town.lower()}-{role}", code)


def expect(response, allowed: bool, visible: bool, actor: str, door: str):
    if allowed:
        assert response.status_code in (200, 201, 302), (actor, door, response.status_code, response.content[:200])
    elif actor == "anonymous":
        assert response.status_code in (302, 401, 403), (actor, door, response.status_code)
    else:
        assert response.status_code == (403 if visible else 404), (actor, door, response.status_code)


@pytest.mark.parametrize("actor", ACTORS)
def test_every_alert_door_agrees_with_the_rule(client, actors, towns, actor):
    from alerts.models import AlertEvent

    users, alerts = actors
    client = act_as(client, users, towns, actor)
    # The HQ board (its live fragment), the history page and its CSV list the alerts of the
    # stations the acting viewer may see, and no other.
    for door in ("/hq/alerts/?fragment=1", "/hq/alerts/history/", "/hq/alerts/history/?format=csv&town=town-a"):
        response = client.get(door)
        if actor == "anonymous":
            assert response.status_code == 302, door
            continue
        expected = {code for code in ALERT_STATIONS if viewer_may_see(actor, code)}
        if "town=town-a" in door:
            expected = {code for code in expected if code.startswith("A-")}
        assert listed_codes(response.content.decode()) == expected, (actor, door)
    for code, alert in alerts.items():
        owner = code[0]
        visible = viewer_may_see(actor, code)
        for url in (f"/api/v1/alerts/{alert.pk}", f"/api/v1/alerts/{alert.pk}/cap"):
            assert client.get(url).status_code == (200 if visible else 404), (actor, url)
        before = AlertEvent.objects.filter(alert=alert).count()
        note = client.post(f"/api/v1/alerts/{alert.pk}/notes", {"note": "水位上昇を確認"}, content_type="application/json")
        expect(note, may(actor, "note", owner, code), visible, actor, f"note {code}")
        board_note = client.post(f"/hq/alerts/{alert.pk}/act", {"action": "note", "note": "見ています"})
        expect(board_note, may(actor, "note", owner, code), visible, actor, f"board note {code}")
        ack = client.post(f"/api/v1/alerts/{alert.pk}/acknowledge")
        expect(ack, may(actor, "acknowledge", owner), visible, actor, f"acknowledge {code}")
        board_ack = client.post(f"/hq/alerts/{alert.pk}/act", {"action": "acknowledge"})
        expect(board_ack, may(actor, "acknowledge", owner), visible, actor, f"board acknowledge {code}")
        # The board asks before resolving: the question is a door too, and records nothing.
        board_ask = client.post(f"/hq/alerts/{alert.pk}/act", {"action": "resolve"})
        expect(board_ask, may(actor, "resolve", owner), visible, actor, f"board resolve question {code}")
        resolve = client.post(f"/api/v1/alerts/{alert.pk}/resolve")
        expect(resolve, may(actor, "resolve", owner), visible, actor, f"resolve {code}")
        recorded = AlertEvent.objects.filter(alert=alert).count() - before
        notes = 2 if may(actor, "note", owner, code) else 0
        # One acknowledgement (the board's is a repeat by the same user) and one resolution.
        operated = 2 if may(actor, "acknowledge", owner) else 0
        assert recorded == notes + operated, (actor, code, recorded)


@pytest.mark.parametrize("actor", ACTORS)
def test_every_town_door_agrees_with_the_rule(client, actors, towns, actor):
    """Shelters, the town admin pages and NGSI subscriptions, acting for the town the user acts for."""
    from geo.models import Shelter

    users, _ = actors
    client = act_as(client, users, towns, actor)
    shelter_a = Shelter.objects.create(code="SH-A", name_ja="A 避難所", name_en="A shelter", municipality=towns[0],
                                       lon=140.05, lat=35.05)
    response = client.post(f"/hq/shelters/{shelter_a.code}/status", {"status": "open"}, HTTP_ACCEPT="application/json")
    expect(response, may(actor, "shelter", "A"), True, actor, "shelter status")
    shelter_a.refresh_from_db()
    assert (shelter_a.status == "open") == may(actor, "shelter", "A"), actor

    town, _ = acting(actor)
    for page in ("sharing", "audit", "usage", "thresholds", "tokens", "members", "channels", "shelters", "stations",
                 "stations/new", "stations/A-PRIVATE/edit"):
        response = client.get(f"/hq/admin/{page}/")
        # Every town page acts for the acting town; the platform operator needs a town to act for.
        allowed = town not in (None, "*") and may(actor, "manage", town)
        if actor == "anonymous":
            assert response.status_code == 302, page
        else:
            assert response.status_code == (200 if allowed else 403), (actor, page)

    subscription = {
        "subject": {"entities": [{"idPattern": ".*"}]},
        "notification": {"http": {"url": "http://127.0.0.1:9/never"}},
    }
    response = client.post("/ngsi/v2/subscriptions", data=json.dumps(subscription), content_type="application/json")
    if actor == "anonymous":
        assert response.status_code == 401
    elif town not in (None, "*") and not may(actor, "subscribe", town):
        assert response.status_code == 403, (actor, response.content)
    else:
        assert response.status_code != 403, (actor, response.content)


@pytest.mark.parametrize("actor", ACTORS)
def test_every_town_write_door_changes_only_what_the_rule_allows(client, actors, towns, actor):
    """The town pages' writes (thresholds, tokens, members, sharing) on town A's objects: only A's
    admin acting for A changes anything; everyone else is refused and nothing changes."""
    from sensors.models import Station, Threshold
    from tenancy.models import IngestToken

    users, _ = actors
    client = act_as(client, users, towns, actor)
    allowed = may(actor, "manage", "A") and acting(actor)[0] == "A"
    threshold = Threshold.objects.get(station__code="A-PUBLIC", name="flood_caution")
    tokens_before = IngestToken.objects.filter(municipality=towns[0]).count()
    writes = {
        "thresholds": {"threshold": threshold.pk, "value": "３．０５"},
        "tokens": {"label": "matrix"},
        "members": {"username": users["a-viewer"].username, "role": "operator"},
        "sharing": {"action": "visibility", "station": "A-PRIVATE", "visibility": "public"},
        # The station editor: retiring one of A's stations.
        "stations/A-REGION/edit": {"action": "retire"},
    }
    for page, data in writes.items():
        response = client.post(f"/hq/admin/{page}/", data)
        if actor == "anonymous":
            assert response.status_code == 302 and "/login" in response["Location"], (actor, page)
        else:
            assert response.status_code in ((200, 302) if allowed else (403,)), (actor, page, response.status_code)
    threshold.refresh_from_db()
    assert (threshold.value == 3.05) == allowed, actor
    assert (IngestToken.objects.filter(municipality=towns[0]).count() == tokens_before + 1) == allowed, actor
    role = Membership.objects.get(user=users["a-viewer"], municipality=towns[0]).role
    assert (role == "operator") == allowed, actor
    assert (Station.objects.get(code="A-PRIVATE").visibility == "public") == allowed, actor
    assert (not Station.objects.get(code="A-REGION").is_active) == allowed, actor


def _square(lon: float, lat: float, size: float = 0.01) -> dict:
    return {"type": "Polygon", "coordinates": [[[lon, lat], [lon + size, lat], [lon + size, lat + size],
                                                [lon, lat + size], [lon, lat]]]}


@pytest.mark.parametrize("actor", ACTORS)
def test_every_order_door_agrees_with_the_rule(client, actors, towns, actor):
    """Evacuation orders (issue 12) through every door — REST, CAP, NGSI `Alert`, recommendations,
    drafts waiting for a second operator, the town's order policy — for the same actors: only town
    A's operators and admins acting for A (and the platform operator) act on A's orders; A's
    recommendations and drafts are A's own (404 elsewhere); orders are public, but the private gauge
    that triggered one is named only to those who may see it."""
    from orders.models import District, Order, OrderDraft, OrderPolicy, Recommendation
    from orders.services import order_issue, recommendation_open
    from tenancy.selectors import viewer_for_user

    users, _ = actors
    a1 = District.objects.create(code="A-1", municipality=towns[0], name_ja="上町", name_en="Kamimachi",
                                 geometry=_square(140.0, 35.0))
    District.objects.create(code="A-2", municipality=towns[0], name_ja="下町", name_en="Shimomachi",
                            geometry=_square(140.01, 35.0))
    drafter = get_user_model().objects.create_user("a-drafter", password="pw-12345-abc")
    Membership.objects.create(user=drafter, municipality=towns[0], role="operator")
    as_drafter = viewer_for_user(drafter)
    evidence = {"fired_by": "reading", "station": "A-PRIVATE", "value": 3.6}
    order = order_issue(viewer=as_drafter, actor=drafter, level=3, districts=["A-1"], evidence=evidence)
    recommendation = recommendation_open(municipality_id=towns[0].pk, level=3, districts=[a1], evidence=evidence)
    OrderPolicy.objects.create(municipality=towns[0], second_person=True)
    draft = order_issue(viewer=as_drafter, actor=drafter, level=4, districts=["A-2"])
    assert isinstance(draft, OrderDraft)

    client = act_as(client, users, towns, actor)
    town, role = acting(actor)
    allowed = may(actor, "order", "A")
    own = town in ("A", "*")  # A's recommendations and drafts are visible to A (and the platform) only
    texts = []

    # Public doors: the order, its CAP and its NGSI entity, the gauge named only to who may see it.
    assert client.get(f"/api/v1/orders/{order.pk}/cap").status_code == 200
    entity = client.get(f"/ngsi/v2/entities/urn:ngsi-ld:Alert:order-{order.pk}", {"options": "keyValues"})
    assert entity.status_code == 200, (actor, entity.content)
    named = ["urn:ngsi-ld:WaterObserved:A-PRIVATE"] if viewer_may_see(actor, "A-PRIVATE") else []
    assert entity.json()["triggeredBy"] == named, actor
    texts += [entity.content.decode(), client.get("/api/v1/orders").content.decode()]

    # The town's own business: recommendations and drafts.
    drafts = client.get("/api/v1/order-drafts")
    if actor == "anonymous":
        assert drafts.status_code in (401, 403)
    else:
        assert [d["id"] for d in drafts.json()["results"]] == ([draft.pk] if own else []), actor
        texts.append(drafts.content.decode())
    dismissed = client.post(f"/api/v1/recommendations/{recommendation.pk}/dismiss", {"reason": "matrix"},
                            content_type="application/json")
    expect(dismissed, allowed, own, actor, "dismiss recommendation")
    if allowed:
        confirmed = client.post(f"/api/v1/order-drafts/{draft.pk}/confirm", {"confirm": True},
                                content_type="application/json")
        expect(confirmed, True, True, actor, "confirm draft")
    else:
        for door in ("confirm", "withdraw"):
            response = client.post(f"/api/v1/order-drafts/{draft.pk}/{door}", {"confirm": True},
                                   content_type="application/json")
            expect(response, False, own, actor, f"{door} draft")
            texts.append(response.content.decode())

    # Acting on A's order (public, so a refusal is 403, not 404), and issuing for A's districts.
    for door, body in (("change", {"level": 4}), ("lift", {})):
        response = client.post(f"/api/v1/orders/{order.pk}/{door}", body, content_type="application/json")
        expect(response, allowed, True, actor, f"{door} order")
        texts.append(response.content.decode())
    issued = client.post("/api/v1/orders", {"level": 5, "districts": ["A-1"]}, content_type="application/json")
    if allowed:
        assert issued.status_code == 202, (actor, issued.content)  # A keeps the second-person rule
    else:
        assert issued.status_code == (401 if actor == "anonymous" else 403), (actor, issued.status_code)

    # The second-person rule itself: A's admins acting for A only.
    policy = client.post("/hq/admin/triggers/", {"action": "policy"})
    may_set_policy = town == "A" and role == "admin"
    if actor == "anonymous":
        assert policy.status_code == 302 and "/login" in policy["Location"]
    else:
        assert policy.status_code == (302 if may_set_policy else 403), (actor, policy.status_code)

    order.refresh_from_db()
    draft.refresh_from_db()
    assert (order.level == 4 and order.lifted_at is not None) == allowed, actor
    assert (draft.state == "confirmed") == allowed and (draft.state in ("pending", "confirmed")), actor
    assert (Recommendation.objects.get().state == "dismissed") == allowed, actor
    assert Order.objects.count() == (2 if allowed else 1), actor
    assert OrderPolicy.objects.get(municipality=towns[0]).second_person is not may_set_policy, actor
    if not viewer_may_see(actor, "A-PRIVATE"):
        for text in texts:
            assert not re.search(r"\bA-PRIVATE\b", text), (actor, text[:300])
