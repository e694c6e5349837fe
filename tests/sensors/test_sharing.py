"""Sharing grants: who sees a shared station, withdrawal, groups, the audit trail, live effect."""

import pytest
import pytest_asyncio
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.db import connections

from sensors.models import SharingGrant, Station, Visibility
from sensors.selectors import station_audiences
from sensors.services import (
    SharingError,
    sharing_grant,
    sharing_withdraw,
    station_group_create,
    station_visibility_set,
)
from tenancy.models import AuditEvent, Membership
from tenancy.selectors import ANONYMOUS, Viewer
from tests.conftest import make_station, make_town
from tests.dashboard.test_live import codes as message_codes
from tests.dashboard.test_live import connect, subscribe


def visible(town):
    viewer = Viewer(municipality_ids=frozenset({town.pk}), acting_municipality_id=town.pk)
    return set(Station.objects.visible_to(viewer).values_list("code", flat=True))


@pytest.fixture
def three_towns(towns):
    return (*towns, make_town("990051", "town-c", "town c"))


def test_a_shared_station_is_seen_by_its_owner_and_named_towns_only(three_towns, stations):
    a, b, c = three_towns
    assert "A-SHARED" in visible(a) and "A-SHARED" in visible(b)
    assert "A-SHARED" not in visible(c)
    assert "A-SHARED" not in set(Station.objects.visible_to(ANONYMOUS).values_list("code", flat=True))


def test_withdrawing_takes_effect_at_once_and_keeps_the_record(towns, stations):
    a, b = towns
    grant = SharingGrant.objects.get(station__code="A-SHARED")
    sharing_withdraw(grant=grant)
    assert "A-SHARED" not in visible(b)
    grant.refresh_from_db()
    assert grant.withdrawn_at is not None
    assert SharingGrant.objects.filter(station__code="A-SHARED").count() == 1
    # Withdrawing twice changes nothing.
    sharing_withdraw(grant=grant)
    assert AuditEvent.objects.filter(action=AuditEvent.Action.SHARING_WITHDRAWN).count() == 1


def test_granting_a_private_station_makes_it_shared_and_is_audited(towns, stations):
    a, b = towns
    user = get_user_model().objects.create_user("a-admin", password="pw-a-admin-123")
    grant = sharing_grant(station=stations["a-private"], grantee=b, actor=user)
    assert Station.objects.get(code="A-PRIVATE").visibility == Visibility.SHARED
    assert "A-PRIVATE" in visible(b)
    event = AuditEvent.objects.get(action=AuditEvent.Action.SHARING_GRANTED)
    assert (event.actor, event.target, event.detail) == (user, "A-PRIVATE", {"grantee": "town-b"})
    # Granting again returns the same active grant rather than a second one.
    assert sharing_grant(station=stations["a-private"], grantee=b) == grant


def test_a_group_grant_covers_its_stations(three_towns):
    a, b, c = three_towns
    s1, s2 = make_station(a, "G-1", visibility="private"), make_station(a, "G-2", visibility="private")
    group = station_group_create(municipality=a, name="upper gauges", stations=[s1, s2])
    sharing_grant(group=group, grantee=c)
    assert {"G-1", "G-2"} <= visible(c)
    assert not {"G-1", "G-2"} & visible(b)
    assert station_audiences([s1.pk])[s1.pk] == ("shared", frozenset({a.pk, c.pk}))


@pytest.mark.parametrize("case", ["self", "foreign-station-in-group", "neither", "unknown-visibility"])
def test_nonsense_sharing_is_refused(towns, stations, case):
    a, b = towns
    with pytest.raises(SharingError):
        if case == "self":
            sharing_grant(station=stations["a-private"], grantee=a)
        elif case == "foreign-station-in-group":
            station_group_create(municipality=a, name="x", stations=[stations["b-private"]])
        elif case == "neither":
            sharing_grant(grantee=b)
        else:
            station_visibility_set(station=stations["a-private"], visibility="everyone")


def test_narrowing_visibility_hides_the_station_from_the_region(towns, stations):
    a, b = towns
    assert "A-REGION" in visible(b)
    station_visibility_set(station=stations["a-region"], visibility=Visibility.PRIVATE)
    assert "A-REGION" not in visible(b)
    assert AuditEvent.objects.get(action=AuditEvent.Action.VISIBILITY_CHANGED).detail == {
        "from": "region", "to": "private",
    }


# --- live effect -------------------------------------------------------------------------------


@pytest_asyncio.fixture
async def close_worker_connections():
    yield
    await database_sync_to_async(connections.close_all)()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_withdrawn_station_is_removed_from_the_other_towns_live_map_at_once(
    towns, stations, close_worker_connections
):
    a, b = towns

    @database_sync_to_async
    def member_of(town, name):
        user = get_user_model().objects.create_user(name, password="pw-12345-abc")
        Membership.objects.create(user=user, municipality=town)
        return user

    b_user, a_user = await member_of(b, "b-staff"), await member_of(a, "a-staff")
    b_ws, a_ws, public_ws = await connect(b_user), await connect(a_user), await connect()
    _, b_snapshot = await subscribe(b_ws)
    await subscribe(a_ws)
    await subscribe(public_ws)
    assert "A-SHARED" in message_codes(b_snapshot)

    grant = await database_sync_to_async(SharingGrant.objects.get)(station__code="A-SHARED")
    await database_sync_to_async(sharing_withdraw)(grant=grant)

    withdrawn = await b_ws.receive_json_from(timeout=5)
    assert withdrawn["type"] == "withdrawn" and withdrawn["stations"] == ["A-SHARED"]
    # The owner still sees it (and gets a fresh copy); the public never even hears the code.
    refreshed = await a_ws.receive_json_from(timeout=5)
    assert refreshed["type"] == "stations" and message_codes(refreshed) == ["A-SHARED"]
    assert await public_ws.receive_nothing(timeout=0.3)
    for ws in (a_ws, b_ws, public_ws):
        await ws.disconnect()
