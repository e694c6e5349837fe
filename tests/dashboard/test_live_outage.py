"""Live clients through a Redis outage (issue 10 item 5): the numbers and the replay log live in the
database, events that could not be published wait in the change log and go out in order, and a
connected client is told "degraded" and then "restored" with what it missed.

The channel layer's failure is simulated at its API (group_send raising, or dropping messages, as
Redis pub/sub does while a subscriber is disconnected); tests/chaos/ stops a real redis-server.
"""

import asyncio

import pytest
import pytest_asyncio
from channels.db import database_sync_to_async
from channels.layers import channel_layers, get_channel_layer
from django.db import OperationalError, connections
from django.test import override_settings
from django.utils import timezone

from dashboard import live_health as health_module
from dashboard.live import LIVE_HANDLER, PUBLIC_GROUP, live_store
from dashboard.live_health import DATABASE, PUBLISHER, REDIS, LiveHealth, live_health
from events.models import OutboxEvent
from events.services import drain_pending
from livelog.models import LiveMessage, LiveStream
from livelog.services import live_messages_trim
from tests.dashboard.test_live import codes, connect, ingest, subscribe

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


@pytest_asyncio.fixture(autouse=True)
async def close_worker_connections():
    yield
    await database_sync_to_async(connections.close_all)()


@pytest.fixture
def health(monkeypatch, settings):
    """The process's health as the test says it is; checked only when the test asks."""
    settings.LIVE_HEALTH_SECONDS = 3600
    state = {"reason": None}

    async def check(self):
        return state["reason"]

    monkeypatch.setattr(LiveHealth, "check", check)

    async def become(reason):
        state["reason"] = reason
        await live_health().check_and_notify()

    return become


@pytest.fixture
def layer_down(monkeypatch):
    """group_send fails as it does while Redis is stopped; call the result to bring it back."""
    layer = get_channel_layer()

    async def refused(group, message):
        raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(layer, "group_send", refused, raising=False)
    return lambda: monkeypatch.undo()


async def test_numbers_and_replay_survive_a_new_channel_layer(stations, health):
    """A Redis restart loses everything Redis held; the client's numbers still mean the same."""
    ws = await connect()
    subscribed, _ = await subscribe(ws)
    await ws.disconnect()
    await ingest("A-PUBLIC", 1.0, minutes_ago=1)
    await ingest("B-PUBLIC", 2.0)
    channel_layers.backends.clear()  # what Redis held is gone

    ws = await connect()
    again = await subscribe(ws)
    assert again[0]["stream"] == subscribed["stream"]
    await ws.send_json_to({"type": "resume", "since": subscribed["seq"], "stream": subscribed["stream"]})
    replayed = [await ws.receive_json_from(timeout=2) for _ in range(2)]
    assert [codes(m) for m in replayed] == [["A-PUBLIC"], ["B-PUBLIC"]]
    assert subscribed["seq"] < replayed[0]["seq"] < replayed[1]["seq"]
    assert await database_sync_to_async(LiveMessage.objects.filter(group=PUBLIC_GROUP).count)() == 2
    await ws.disconnect()


async def test_what_could_not_be_published_waits_in_the_change_log_and_goes_out_in_order(stations, health, layer_down):
    ws = await connect()
    subscribed, _ = await subscribe(ws)
    await ingest("A-PUBLIC", 1.0, minutes_ago=1)
    await ingest("B-PUBLIC", 2.0)
    assert await ws.receive_nothing(timeout=0.2)

    @database_sync_to_async
    def pending_live_rows():
        return list(OutboxEvent.objects.filter(handler=LIVE_HANDLER).values_list("attempts", flat=True))

    # Nothing numbered or stored for a message that never went out; the events wait for a retry.
    assert await database_sync_to_async(LiveMessage.objects.count)() == 0
    assert (await pending_live_rows())[0] == 1
    await health(PUBLISHER)
    assert await ws.receive_json_from(timeout=2) == {"type": "degraded", "reason": PUBLISHER}

    layer_down()  # Redis is back

    @database_sync_to_async
    def retry_now():
        OutboxEvent.objects.update(available_at=timezone.now())
        drain_pending()

    await retry_now()
    assert await pending_live_rows() == []
    message = await ws.receive_json_from(timeout=2)
    assert message["type"] == "stations" and codes(message) == ["A-PUBLIC", "B-PUBLIC"]
    assert message["seq"] > subscribed["seq"]
    await health(None)
    assert await ws.receive_json_from(timeout=2) == {"type": "restored", "seq": message["seq"]}
    assert await ws.receive_nothing(timeout=0.2)  # the replay of that message is not sent twice
    await ws.disconnect()


async def test_restored_replays_what_the_channel_layer_dropped_and_nothing_twice(stations, user_a, health, monkeypatch):
    ws = await connect(user_a)
    await subscribe(ws)
    await health(REDIS)
    assert await ws.receive_json_from(timeout=2) == {"type": "degraded", "reason": REDIS}

    # Redis pub/sub drops what is published while a subscriber's connection is down.
    layer = get_channel_layer()

    async def dropped(group, message):
        return None

    monkeypatch.setattr(layer, "group_send", dropped, raising=False)
    await ingest("A-PRIVATE", 2.5)
    await ingest("B-PRIVATE", 2.5)  # another town's: never replayed to this viewer
    assert await ws.receive_nothing(timeout=0.2)
    monkeypatch.undo()
    # A later message gets through before the monitor sees the outage end.
    await ingest("A-REGION", 1.5)
    later = await ws.receive_json_from(timeout=2)
    assert codes(later) == ["A-REGION"]

    await health(None)
    restored = await ws.receive_json_from(timeout=2)
    assert restored["type"] == "restored"
    missed = await ws.receive_json_from(timeout=2)
    assert missed["type"] == "stations" and codes(missed) == ["A-PRIVATE"]
    assert missed["features"][0]["properties"]["value"] == 2.5
    assert missed["seq"] < later["seq"]
    assert await ws.receive_nothing(timeout=0.2)  # A-REGION is not sent twice

    # The same message arriving late through the channel layer is not delivered again.
    group = await database_sync_to_async(lambda: LiveMessage.objects.get(pk=missed["seq"]).group)()
    await layer.group_send(group, {"type": "live.message", "message": missed})
    assert await ws.receive_nothing(timeout=0.2)
    await ws.disconnect()


async def test_a_client_subscribing_during_an_outage_hears_it_at_once(stations, health):
    await health(DATABASE)
    ws = await connect()
    await ws.send_json_to({"type": "subscribe", "layers": ["river"], "snapshot": False})
    assert (await ws.receive_json_from(timeout=2))["type"] == "subscribed"
    assert await ws.receive_json_from(timeout=2) == {"type": "degraded", "reason": DATABASE}
    await ws.disconnect()


async def test_a_client_behind_the_trimmed_log_gets_a_snapshot(stations, health):
    ws = await connect()
    subscribed, _ = await subscribe(ws)
    await ws.disconnect()
    for value in (1.0, 2.0, 3.0):
        await ingest("A-PUBLIC", value, minutes_ago=3 - value)
    await database_sync_to_async(live_messages_trim)(keep=1)
    assert await database_sync_to_async(lambda: LiveStream.objects.get().trimmed_through)() > subscribed["seq"]

    ws = await connect()
    await subscribe(ws)
    await ws.send_json_to({"type": "resume", "since": subscribed["seq"], "stream": subscribed["stream"]})
    snapshot = await ws.receive_json_from(timeout=2)
    assert snapshot["type"] == "snapshot"
    assert snapshot["seq"] == await database_sync_to_async(live_store().current_seq)()
    await ws.disconnect()


async def test_the_health_check_names_what_is_down(stations, monkeypatch):
    monitor = LiveHealth()
    assert await monitor.check() is None

    @database_sync_to_async
    def live_event_waiting_for_retry():
        OutboxEvent.objects.create(
            kind="station.changed", handler=LIVE_HANDLER, payload={"stations": []}, attempts=1,
            created_at=timezone.now(), available_at=timezone.now(),
        )

    await live_event_waiting_for_retry()
    assert await monitor.check() == PUBLISHER

    def database_down(handler):
        raise OperationalError("the database system is shutting down")

    monkeypatch.setattr(health_module, "handler_retrying", database_down)
    assert await monitor.check() == DATABASE

    with override_settings(REDIS_URL="redis://127.0.0.1:9/0"):  # discard port: nothing listens
        assert await LiveHealth().check() == REDIS


async def test_the_monitor_tells_every_connection_once_per_change(stations, health):
    first, second = await connect(), await connect()
    for ws in (first, second):
        await subscribe(ws)
    await health(REDIS)
    await health(REDIS)  # still down: nothing new to say
    for ws in (first, second):
        assert await ws.receive_json_from(timeout=2) == {"type": "degraded", "reason": REDIS}
        assert await ws.receive_nothing(timeout=0.1)
    await asyncio.gather(first.disconnect(), second.disconnect())
