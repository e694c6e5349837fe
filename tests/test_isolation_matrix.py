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
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.utils import timezone

from dashboard.consumers import LiveConsumer
from sensors.services import observation_ingest
from tenancy.models import Membership

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
            f"/stations/{code}/",
        ):
            response = client.get(url)
            if code in expected:
                assert response.status_code == 200, (principal, url)
            else:
                assert response.status_code == 404, (principal, url)
                if url.startswith("/api/"):
                    assert response.json() == missing.json(), (principal, url)

    # Pages: the public map is the public view for everyone; HQ shows what the viewer may see.
    assert listed_codes(client.get("/").content.decode()) == public
    hq = client.get("/hq/")
    if principal == "anonymous":
        assert hq.status_code == 302
    else:
        assert listed_codes(hq.content.decode()) == expected

    # Websocket: the HQ view's snapshot, and the public view's, which ignores the login.
    user = world.get(principal)
    assert snapshot_codes(user, "/ws/live/") == expected
    assert snapshot_codes(user, "/ws/live/?view=public") == public


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


@pytest.mark.parametrize("principal", ["anonymous", "b-viewer"])
def test_error_messages_never_name_a_hidden_station(client, world, principal):
    client = client_as(client, world, principal)
    for url in ("/api/v1/stations/A-PRIVATE/observations", "/stations/A-PRIVATE/"):
        body = client.get(url).content.decode()
        assert "A-PRIVATE" not in body and "A-PRIVATE 観測所" not in body
    # A gateway token of town B cannot learn whether A's private station exists.
    assert json.dumps(client.get("/api/v1/stations").json()).count("A-PRIVATE") == 0
