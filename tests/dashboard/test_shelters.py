"""Shelters at HQ and on the live layer: the status endpoint, the HQ panel, the `shelters` messages
and snapshot of /ws/live/, and the demo region's shelters and hazard zones."""

import re

import pytest
import pytest_asyncio
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.db import connections, transaction
from django.test import Client
from shapely.geometry import Point, shape

from dashboard.consumers import LiveConsumer
from dashboard.demo import region
from dashboard.demo.seed import demo_seed
from geo.models import HazardZone, Shelter
from tenancy.models import AuditEvent, Membership
from tests.geo.test_shelters import make_shelter

STATUS_URL = "/hq/shelters/{}/status"
JSON = {"HTTP_ACCEPT": "application/json"}


def member(username, town, role):
    user = get_user_model().objects.create_user(username, password=f"pw-{username}-123")
    Membership.objects.create(user=user, municipality=town, role=role)
    return user


@pytest.fixture
def shelter_a(towns):
    return make_shelter(towns[0], "SH-A")


@pytest.fixture
def shelter_b(towns):
    return make_shelter(towns[1], "SH-B")


@pytest.fixture
def operator_a(towns):
    return member("a-operator", towns[0], Membership.Role.OPERATOR)


@pytest.fixture
def operator_b(towns):
    return member("b-operator", towns[1], Membership.Role.OPERATOR)


def stored(shelter):
    return Shelter.objects.get(pk=shelter.pk)


def audit_rows():
    return list(AuditEvent.objects.filter(action=AuditEvent.Action.SHELTER_UPDATED))


# --- the endpoint ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_operator_of_the_owning_town_opens_a_shelter(client, shelter_a, operator_a):
    client.force_login(operator_a)

    response = client.post(STATUS_URL.format("SH-A"), {"status": "open"}, **JSON)

    assert response.status_code == 200
    feature = response.json()["shelter"]
    assert feature["id"] == "SH-A"
    assert feature["properties"]["status"] == "open"
    assert "mz-shelter-open" in feature["properties"]["display"]["icon"]
    shelter = stored(shelter_a)
    assert (shelter.status, shelter.status_updated_by) == ("open", operator_a)
    (event,) = audit_rows()
    assert (event.actor, event.target, event.municipality_id) == (operator_a, "SH-A", shelter_a.municipality_id)
    assert event.detail == {"from": "closed", "to": "open"}
    assert event.ip_address == "127.0.0.1"


@pytest.mark.django_db
def test_a_plain_form_post_is_sent_back_to_the_panel(client, shelter_a, operator_a):
    client.force_login(operator_a)

    response = client.post(STATUS_URL.format("SH-A"), {"status": "full"})

    assert response.status_code == 302
    assert response["Location"] == "/hq/#shelters"
    assert stored(shelter_a).status == "full"


@pytest.mark.django_db
def test_town_admin_may_too_and_platform_admin_may_for_any_town(client, towns, shelter_a, shelter_b, django_user_model):
    client.force_login(member("a-admin", towns[0], Membership.Role.ADMIN))
    assert client.post(STATUS_URL.format("SH-A"), {"status": "open"}, **JSON).status_code == 200

    client.force_login(django_user_model.objects.create_superuser("root", password="pw-root-123"))
    assert client.post(STATUS_URL.format("SH-B"), {"status": "full"}, **JSON).status_code == 200
    assert (stored(shelter_a).status, stored(shelter_b).status) == ("open", "full")


@pytest.mark.django_db
@pytest.mark.parametrize("who", ["viewer of the town", "operator of another town"])
def test_others_are_refused_and_nothing_changes(client, shelter_a, user_a, operator_b, who):
    client.force_login(user_a if who == "viewer of the town" else operator_b)

    response = client.post(STATUS_URL.format("SH-A"), {"status": "open"}, **JSON)

    assert response.status_code == 403
    assert stored(shelter_a).status == "closed"
    assert audit_rows() == []


@pytest.mark.django_db
def test_the_acting_town_decides(client, towns, shelter_a):
    """Operator in town B, only a viewer in town A: acting for B, A's shelters are not theirs."""
    user = member("two-towns", towns[1], Membership.Role.OPERATOR)
    Membership.objects.create(user=user, municipality=towns[0], role=Membership.Role.VIEWER)
    client.force_login(user)
    client.post("/hq/town/", {"municipality": towns[1].pk})

    assert client.post(STATUS_URL.format("SH-A"), {"status": "open"}, **JSON).status_code == 403


@pytest.mark.django_db
def test_anonymous_is_sent_to_log_in(client, shelter_a):
    response = client.post(STATUS_URL.format("SH-A"), {"status": "open"})

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=/hq/shelters/SH-A/status")
    assert stored(shelter_a).status == "closed"


@pytest.mark.django_db
@pytest.mark.parametrize("data", [{"status": "evacuating"}, {"status": ""}, {}, {"status": "OPEN"}])
def test_a_bad_status_is_400_and_changes_nothing(client, shelter_a, operator_a, data):
    client.force_login(operator_a)

    as_json = client.post(STATUS_URL.format("SH-A"), data, **JSON)
    as_form = client.post(STATUS_URL.format("SH-A"), data)

    assert as_json.status_code == 400
    assert "is not a shelter status" in as_json.json()["error"]
    assert as_form.status_code == 400
    assert as_form["Content-Type"].startswith("text/plain")  # it quotes the posted value
    assert stored(shelter_a).status == "closed"
    assert audit_rows() == []


@pytest.mark.django_db
def test_unknown_shelter_is_404(client, operator_a):
    client.force_login(operator_a)

    assert client.post(STATUS_URL.format("NO-SUCH"), {"status": "open"}, **JSON).status_code == 404


@pytest.mark.django_db
def test_only_post(client, shelter_a, operator_a):
    client.force_login(operator_a)

    assert client.get(STATUS_URL.format("SH-A")).status_code == 405


@pytest.mark.django_db
def test_csrf_is_enforced(shelter_a, operator_a):
    client = Client(enforce_csrf_checks=True)
    client.force_login(operator_a)

    refused = client.post(STATUS_URL.format("SH-A"), {"status": "open"})
    assert refused.status_code == 403
    assert stored(shelter_a).status == "closed"

    # The token the HQ page puts in the shelter's form is what makes it work.
    html = client.get("/hq/").content.decode()
    form = html.split('action="/hq/shelters/SH-A/status"', 1)[1]
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form).group(1)
    accepted = client.post(STATUS_URL.format("SH-A"), {"status": "open", "csrfmiddlewaretoken": token})
    assert accepted.status_code == 302
    assert stored(shelter_a).status == "open"


# --- the HQ panel ----------------------------------------------------------------------------------


def panel(html: str) -> str:
    return html.split('id="shelters"', 1)[1].split("</section>", 1)[0]


@pytest.mark.django_db
def test_panel_lists_the_acting_towns_shelters_with_forms_for_operators(client, shelter_a, shelter_b, operator_a):
    Shelter.objects.filter(pk=shelter_a.pk).update(status="open")
    client.force_login(operator_a)

    section = panel(client.get("/hq/").content.decode())

    assert 'data-shelter-row="SH-A"' in section
    assert "SH-B" not in section  # town B's shelter is on the map, not in A's panel
    assert 'action="/hq/shelters/SH-A/status"' in section
    assert re.search(r'value="open" aria-pressed="true"', section)
    assert re.search(r'value="closed" aria-pressed="false"', section)
    # The status in the page's language, as live.js writes it on a change (Mizumori.shelterChip).
    assert '<span class="mz-shelter-chip mz-shelter-open">開設中</span>' in section
    english = panel(client.get("/hq/", HTTP_ACCEPT_LANGUAGE="en").content.decode())
    assert '<span class="mz-shelter-chip mz-shelter-open">Open</span>' in english and "開設中" not in english


@pytest.mark.django_db
def test_panel_is_read_only_for_viewers(client, shelter_a, user_a):
    client.force_login(user_a)

    section = panel(client.get("/hq/").content.decode())

    assert 'data-shelter-row="SH-A"' in section
    assert "<form" not in section
    assert "操作権限なし" in section  # the page's language: "operators only" in English


@pytest.mark.django_db
def test_hq_loads_the_panel_script_from_static_files_only(client, shelter_a, operator_a):
    client.force_login(operator_a)

    html = client.get("/hq/").content.decode()

    assert '<script src="/static/mizumori/shelters.js"></script>' in html
    # Data blocks (type="application/json") are never executed and need no nonce.
    inline = re.findall(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>", html)
    assert len(inline) == 1 and "nonce=" in inline[0]  # the folium map script only


# --- the live layer ----------------------------------------------------------------------------------


async def connect(path="/ws/live/?view=public"):
    communicator = WebsocketCommunicator(LiveConsumer.as_asgi(), path)
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def subscribe(communicator, layers):
    await communicator.send_json_to({"type": "subscribe", "layers": layers})
    subscribed = await communicator.receive_json_from(timeout=5)
    assert subscribed["type"] == "subscribed"
    snapshot = await communicator.receive_json_from(timeout=5)
    assert snapshot["type"] == "snapshot"
    return subscribed, snapshot


@pytest_asyncio.fixture
async def close_worker_connections():
    yield
    # The worker thread of database_sync_to_async keeps its connection; close it there, or
    # PostgreSQL refuses to drop the test database at the end of the run.
    await database_sync_to_async(connections.close_all)()


@pytest.fixture
def live_shelters(transactional_db, towns, close_worker_connections):
    """Committed rows (the consumer reads them from another thread)."""
    operator = member("a-operator", towns[0], Membership.Role.OPERATOR)
    return make_shelter(towns[0], "SH-LIVE", name_ja="<b>避難所</b>"), make_shelter(towns[1], "SH-OTHER"), operator


def post_status(user, code, status):
    client = Client()
    client.force_login(user)
    return client.post(STATUS_URL.format(code), {"status": status}, **JSON)


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_snapshot_carries_every_shelter_when_subscribed(live_shelters):
    ws = await connect()
    _, snapshot = await subscribe(ws, ["river", "shelters"])
    assert sorted(f["id"] for f in snapshot["shelters"]) == ["SH-LIVE", "SH-OTHER"]
    assert snapshot["features"] == []  # stations stay in "features"
    props = next(f for f in snapshot["shelters"] if f["id"] == "SH-LIVE")["properties"]
    assert props["status"] == "closed" and props["municipality"] == "town-a"
    # The name is data, written by pages as text; the drawing has no words.
    assert props["name_ja"] == "<b>避難所</b>" and "避難所" not in props["display"]["icon"]
    await ws.disconnect()

    ws = await connect()
    _, snapshot = await subscribe(ws, ["river"])
    assert "shelters" not in snapshot  # the protocol is unchanged for clients that do not ask
    await ws.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_status_change_reaches_public_and_hq_viewers(live_shelters, user_a):
    _, _, operator = live_shelters
    public = await connect()
    public_subscribed, _ = await subscribe(public, ["river", "rain", "reservoir", "shelters"])
    hq = WebsocketCommunicator(LiveConsumer.as_asgi(), "/ws/live/")
    hq.scope["user"] = user_a
    assert (await hq.connect())[0]
    await subscribe(hq, ["shelters"])

    response = await sync_to_async(post_status)(operator, "SH-LIVE", "open")
    assert response.status_code == 200

    for ws in (public, hq):
        message = await ws.receive_json_from(timeout=5)
        assert message["type"] == "shelters" and message["layer"] == "shelters"
        assert message["seq"] > public_subscribed["seq"]
        (feature,) = message["features"]
        assert feature["id"] == "SH-LIVE"
        assert feature["properties"]["status"] == "open"
        assert "mz-shelter-open" in feature["properties"]["display"]["icon"]
        assert await ws.receive_nothing(timeout=0.2)  # one message per change
        await ws.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_station_only_subscribers_do_not_get_shelter_messages(live_shelters):
    _, _, operator = live_shelters
    ws = await connect()
    await subscribe(ws, ["river"])

    await sync_to_async(post_status)(operator, "SH-LIVE", "full")

    assert await ws.receive_nothing(timeout=0.3)
    await ws.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_reconnecting_client_catches_up_on_shelter_changes(live_shelters):
    _, _, operator = live_shelters
    ws = await connect()
    subscribed, _ = await subscribe(ws, ["shelters"])
    await ws.disconnect()

    await sync_to_async(post_status)(operator, "SH-LIVE", "open")
    await sync_to_async(post_status)(operator, "SH-LIVE", "full")

    ws = await connect()
    await ws.send_json_to({"type": "subscribe", "layers": ["shelters"], "snapshot": False})
    assert (await ws.receive_json_from(timeout=5))["type"] == "subscribed"
    await ws.send_json_to({"type": "resume", "since": subscribed["seq"]})
    first = await ws.receive_json_from(timeout=5)
    second = await ws.receive_json_from(timeout=5)
    assert [m["features"][0]["properties"]["status"] for m in (first, second)] == ["open", "full"]
    await ws.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_admin_saves_publish_after_commit_once_per_transaction_and_never_on_rollback(live_shelters):
    shelter, other, _ = live_shelters
    ws = await connect()
    await subscribe(ws, ["shelters"])

    @database_sync_to_async
    def edit_like_the_admin():
        shelter.refresh_from_db()  # the form shows what is stored, not the cancelled edit
        with transaction.atomic():
            shelter.capacity = 999
            shelter.save()
            other.status = "open"
            other.save()

    @database_sync_to_async
    def edit_then_roll_back():
        with pytest.raises(RuntimeError), transaction.atomic():
            shelter.status = "full"
            shelter.save()
            raise RuntimeError("operator cancelled")

    await edit_then_roll_back()
    assert await ws.receive_nothing(timeout=0.3)

    await edit_like_the_admin()
    message = await ws.receive_json_from(timeout=5)
    by_code = {f["id"]: f["properties"] for f in message["features"]}
    # SH-LIVE's stored state, not the rolled-back one; both saves of the transaction in one message.
    assert by_code["SH-LIVE"]["status"] == "closed" and by_code["SH-LIVE"]["capacity"] == 999
    assert by_code["SH-OTHER"]["status"] == "open"
    assert await ws.receive_nothing(timeout=0.3)
    await ws.disconnect()


# --- the demo region -----------------------------------------------------------------------------


@pytest.fixture
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.mark.django_db
def test_demo_has_shelters_in_every_town_some_open_all_on_dry_ground(fast_passwords):
    demo_seed(history=False)

    shelters = list(Shelter.objects.select_related("municipality"))
    assert 6 <= len(shelters) <= 9
    assert {s.municipality.slug for s in shelters} == set(region.TOWN_SLUGS)
    assert {s.status for s in shelters} == {"open", "full", "closed"}
    assert all(s.capacity and s.capacity > 0 for s in shelters)
    zones = [shape(zone.geometry) for zone in HazardZone.objects.all()]
    for shelter in shelters:
        point = Point(shelter.lon, shelter.lat)
        assert shape(shelter.municipality.boundary).contains(point), shelter.code
        assert not any(zone.intersects(point) for zone in zones), f"{shelter.code} is in a flood zone"
        # An open shelter says since when; a closed one has never been opened in the demo.
        assert (shelter.status_updated_at is not None) == (shelter.status != "closed")


@pytest.mark.django_db
def test_demo_hazard_zones_lie_along_the_lower_river_in_depth_bands(fast_passwords):
    demo_seed(history=False)

    zones = list(HazardZone.objects.select_related("municipality"))
    assert len(zones) >= 2
    assert len({(zone.depth_min_m, zone.depth_max_m) for zone in zones}) >= 2
    river = shape(region.river_line("kawasemi"))
    areas = [shape(zone.geometry) for zone in zones]
    for zone, area in zip(zones, areas):
        assert area.is_valid and zone.kind == HazardZone.Kind.INUNDATION
        assert shape(zone.municipality.boundary).contains(area), zone.name_en
        assert area.distance(river) < 0.005, zone.name_en  # along the river: within about 500 m
        assert "fictional" in zone.source
    for index, area in enumerate(areas):
        for other in areas[index + 1 :]:
            assert area.intersection(other).area < 1e-9  # one depth per place


@pytest.mark.django_db
def test_reseeding_keeps_shelter_times_and_restores_the_demo_status(fast_passwords):
    demo_seed(history=False)
    before = {s.code: (s.status, s.status_updated_at) for s in Shelter.objects.all()}
    Shelter.objects.filter(code="SH-MDH-02").update(status="full")

    demo_seed(history=False)

    assert {s.code: (s.status, s.status_updated_at) for s in Shelter.objects.all()}["SH-MDH-02"][0] == "closed"
    after = {s.code: (s.status, s.status_updated_at) for s in Shelter.objects.all() if s.code != "SH-MDH-02"}
    assert after == {code: value for code, value in before.items() if code != "SH-MDH-02"}
    assert HazardZone.objects.count() == len(region.HAZARD_ZONES)

