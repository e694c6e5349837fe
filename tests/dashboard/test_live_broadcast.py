"""The per-process live fan-out (dashboard.broadcast): one channel per audience group per process,
one encoding per layer set, the same audience rule as before, resume unchanged."""

import asyncio
import json

import channels.consumer
import pytest
import pytest_asyncio
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.db import connections

from dashboard import broadcast, consumers
from dashboard.broadcast import LiveBroadcaster, live_broadcaster
from dashboard.live import PUBLIC_GROUP, REGION_GROUP, town_group
from tests.conftest import make_station
from tests.dashboard.test_live import codes, connect, ingest, subscribe

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


@pytest_asyncio.fixture(autouse=True)
async def close_worker_connections():
    yield
    await database_sync_to_async(connections.close_all)()


async def each_hears_only_its_own(clients: dict) -> None:
    """Readings of a station of every visibility; `clients` ("anonymous", "a", "b": town A's and town
    B's members) each hear exactly what their viewer may see."""
    for code in ("A-PRIVATE", "B-PRIVATE", "A-SHARED", "B-REGION", "A-PUBLIC"):
        await ingest(code, 2.0)

    async def heard(ws) -> list[str]:
        received = []
        while not await ws.receive_nothing(timeout=0.3):
            received += codes(await ws.receive_json_from(timeout=2))
        return sorted(received)

    for ws in clients["anonymous"]:
        assert await heard(ws) == ["A-PUBLIC"]
    assert await heard(clients["a"][0]) == ["A-PRIVATE", "A-PUBLIC", "A-SHARED", "B-REGION"]
    # A-SHARED is shared with town B; A-PRIVATE never reaches it.
    assert await heard(clients["b"][0]) == ["A-PUBLIC", "A-SHARED", "B-PRIVATE", "B-REGION"]


async def test_many_clients_of_every_audience_in_one_process_hear_only_their_own(stations, towns, user_a, user_b):
    """Anonymous, town A and town B clients side by side share the process's fan-out; each hears
    exactly what its viewer may see, whatever the others hear."""
    clients = {"anonymous": [await connect(), await connect()], "a": [await connect(user_a)], "b": [await connect(user_b)]}
    for sockets in clients.values():
        for ws in sockets:
            await subscribe(ws)
    fan_out = live_broadcaster(get_channel_layer())
    # One channel per group in this process, however many clients listen to it.
    assert fan_out.groups() == sorted({PUBLIC_GROUP, REGION_GROUP, town_group(towns[0].pk), town_group(towns[1].pk)})
    assert fan_out.listeners(PUBLIC_GROUP) == 4

    await each_hears_only_its_own(clients)

    for sockets in clients.values():
        for ws in sockets:
            await ws.disconnect()
    # The last client of a group gone, the process stops hearing it.
    assert fan_out.groups() == []


def with_shared_send(sent: list):
    """LiveConsumer behind a stand-in for bin/serve's server (config.websocket): the SHARED_TEXT
    extension, recording each (text, wire) it is given and sending the text on."""
    from channels.testing import WebsocketCommunicator

    from config.websocket import SHARED_TEXT

    app = consumers.LiveConsumer.as_asgi()

    async def server(scope, receive, send):
        async def send_shared(text, wire):
            sent.append((text, id(wire)))
            await send({"type": "websocket.send", "text": text})

        scope = {**scope, "extensions": {**(scope.get("extensions") or {}), SHARED_TEXT: {"send": send_shared}}}
        await app(scope, receive, send)

    async def connect_shared(user=None, path="/ws/live/"):
        communicator = WebsocketCommunicator(server, path)
        if user is not None:
            communicator.scope["user"] = user
        connected, _ = await communicator.connect()
        assert connected
        return communicator

    return connect_shared


async def test_shared_frames_reach_only_their_audience(stations, towns, user_a, user_b):
    """Through the server's shared-bytes path, as under bin/serve: one text (and one wire cache) per
    audience message, handed to that audience's clients only."""
    sent = []
    connect_shared = with_shared_send(sent)
    clients = {"anonymous": [await connect_shared(), await connect_shared(path="/ws/live/?view=public")],
               "a": [await connect_shared(user_a)], "b": [await connect_shared(user_b)]}
    for sockets in clients.values():
        for ws in sockets:
            await subscribe(ws)
    await each_hears_only_its_own(clients)
    # Every live frame went the shared way (four to each town client, one to each anonymous one),
    # and the four clients of the public message shared its text and wire cache.
    assert len(sent) == 4 + 4 + 2
    public = [(text, wire) for text, wire in sent if '"A-PUBLIC"' in text]
    assert len(public) == 4 and len(set(public)) == 1
    for sockets in clients.values():
        for ws in sockets:
            await ws.disconnect()


async def test_layers_are_filtered_per_client_and_encoded_once_per_layer_set(towns, monkeypatch):
    await database_sync_to_async(make_station)(towns[0], "RIV")
    await database_sync_to_async(make_station)(towns[0], "RAIN", kind="rain")
    encoded = []
    real_encode = broadcast.encode

    def counting_encode(message):
        encoded.append(message)
        return real_encode(message)

    monkeypatch.setattr(broadcast, "encode", counting_encode)
    river = [await connect(), await connect(), await connect()]
    rain, both = await connect(), await connect()
    for ws in river:
        await subscribe(ws, ["river"])
    await subscribe(rain, ["rain"])
    await subscribe(both, ["river", "rain"])

    @database_sync_to_async
    def ingest_both():
        from django.utils import timezone

        from sensors.services import observation_ingest

        now = timezone.now()
        return observation_ingest(
            municipality=None, source="http",
            items=[{"station": "RIV", "observed_at": now, "value": 1.0}, {"station": "RAIN", "observed_at": now, "value": 2.5}],
        )

    await ingest_both()
    messages = {}
    for name, ws in [("river0", river[0]), ("river1", river[1]), ("river2", river[2]), ("rain", rain), ("both", both)]:
        messages[name] = await ws.receive_json_from(timeout=2)
        assert await ws.receive_nothing(timeout=0.1)
    assert all(codes(messages[f"river{i}"]) == ["RIV"] for i in range(3))
    assert codes(messages["rain"]) == ["RAIN"]
    assert codes(messages["both"]) == ["RAIN", "RIV"]
    assert len({messages[name]["seq"] for name in messages}) == 1
    # Three layer sets, three encodings, for five clients.
    assert len(encoded) == 3
    for ws in [*river, rain, both]:
        await ws.disconnect()


async def test_live_frames_do_not_queue_on_the_sync_thread(stations, monkeypatch):
    """channels' dispatch closes old database connections in the one sync thread before every
    handler; a live frame needs no database and must not take that hop per client."""
    ws = await connect()
    await subscribe(ws)
    hops = []
    real = channels.consumer.aclose_old_connections

    async def counting():
        hops.append(1)
        return await real()

    monkeypatch.setattr(channels.consumer, "aclose_old_connections", counting)
    for value in (1.0, 1.5, 2.0):
        await ingest("A-PUBLIC", value, minutes_ago=3 - value)
        assert codes(await ws.receive_json_from(timeout=2)) == ["A-PUBLIC"]
    assert hops == []
    await ws.disconnect()


async def test_resume_after_reconnect_through_the_fan_out(stations):
    """A client that drops and comes back resumes from its number: what it missed is replayed once,
    and live messages reach it again through the process's (re-created) subscription."""
    ws = await connect()
    subscribed, _ = await subscribe(ws)
    await ingest("A-PUBLIC", 1.0, minutes_ago=3)
    first = await ws.receive_json_from(timeout=2)
    await ws.disconnect()
    assert live_broadcaster(get_channel_layer()).groups() == []

    await ingest("B-PUBLIC", 2.0, minutes_ago=2)
    await ingest("A-PRIVATE", 2.0, minutes_ago=2)  # never for this anonymous client
    ws = await connect()
    await ws.send_json_to({"type": "subscribe", "layers": ["river"], "snapshot": False})
    assert (await ws.receive_json_from(timeout=2))["type"] == "subscribed"
    await ws.send_json_to({"type": "resume", "since": first["seq"], "stream": subscribed["stream"]})
    missed = await ws.receive_json_from(timeout=2)
    assert codes(missed) == ["B-PUBLIC"] and missed["seq"] > first["seq"]
    assert await ws.receive_nothing(timeout=0.2)

    await ingest("A-PUBLIC", 3.0)
    live = await ws.receive_json_from(timeout=2)
    assert codes(live) == ["A-PUBLIC"] and live["seq"] > missed["seq"]
    # The same message replayed again (a resume racing the live copy) is not sent twice.
    await ws.send_json_to({"type": "resume", "since": missed["seq"], "stream": subscribed["stream"]})
    assert await ws.receive_nothing(timeout=0.3)
    await ws.disconnect()


async def test_a_withdrawn_station_is_checked_per_viewer(stations, user_a, user_b):
    """`withdrawn` goes to each client of the group, which forwards only the codes its viewer can no
    longer see: A-PRIVATE leaving the region group (it was region, now private) is news to town B,
    not to town A, which owns it."""
    member_a, member_b = await connect(user_a), await connect(user_b)
    await subscribe(member_a)
    await subscribe(member_b)
    layer = get_channel_layer()
    withdrawn = {"type": "withdrawn", "stations": ["A-PRIVATE"], "seq": 10**9}
    await layer.group_send(REGION_GROUP, {"type": "live.message", "message": withdrawn})
    assert await member_b.receive_json_from(timeout=2) == withdrawn
    assert await member_a.receive_nothing(timeout=0.3)
    await member_a.disconnect()
    await member_b.disconnect()


async def test_fan_out_of_a_message_for_another_layer_goes_nowhere():
    class Listener:
        def __init__(self, layers):
            self.layer_set = frozenset(layers)
            self.items = []

        def push_live(self, item):
            self.items.append(item)

    fan_out = LiveBroadcaster(layer=None)
    river, alerts = Listener(["river"]), Listener(["river", "alerts"])
    fan_out._listeners[PUBLIC_GROUP] = {river, alerts}
    fan_out.fan_out(PUBLIC_GROUP, {"type": "live.message", "message": {"type": "alert", "layer": "alerts", "seq": 7, "alert": {"id": 1}}})
    assert river.items == []
    assert [json.loads(item["text"]) for item in alerts.items] == [{"type": "alert", "layer": "alerts", "seq": 7, "alert": {"id": 1}}]
    # Anything but a live message is not forwarded to browsers.
    fan_out.fan_out(PUBLIC_GROUP, {"type": "something.else", "message": {}})
    assert len(alerts.items) == 1


async def test_a_slow_client_is_resynchronised_instead_of_queueing_without_bound(stations, monkeypatch):
    """A client whose socket stalls holds at most LIVE_QUEUE_MAX live messages; the rest are dropped
    and, once it reads again, replayed from the log: it misses nothing and gets nothing twice."""
    monkeypatch.setattr(consumers, "LIVE_QUEUE_MAX", 2)
    ws = await connect()
    await subscribe(ws)
    (consumer,) = live_broadcaster(get_channel_layer())._listeners[PUBLIC_GROUP]
    gate = asyncio.Event()
    real_send, real_push = consumer.send, consumer.push_live
    pushed = []

    async def stalled_send(*args, **kwargs):
        await gate.wait()
        return await real_send(*args, **kwargs)

    def counted_push(item):
        real_push(item)
        pushed.append(consumer.inbox.qsize())

    consumer.send, consumer.push_live = stalled_send, counted_push
    values = [1.0, 1.1, 1.2, 1.3, 1.4, 1.5]
    for index, value in enumerate(values):
        await ingest("A-PUBLIC", value, minutes_ago=10 - index)
        for _ in range(200):  # until the fan-out has handed the message over
            if len(pushed) > index:
                break
            await asyncio.sleep(0.01)
    assert len(pushed) == len(values)
    # The first frame is stuck in the socket; two wait, then one resync marker, then nothing more.
    assert consumer.live_queued == 2 and max(pushed) == 3

    gate.set()
    received = []
    while not await ws.receive_nothing(timeout=0.3):
        message = await ws.receive_json_from(timeout=2)
        assert message["type"] == "stations"
        received.append((message["seq"], message["features"][0]["properties"]["value"]))
    assert [value for _, value in received] == values
    assert [seq for seq, _ in received] == sorted({seq for seq, _ in received})
    assert consumer.live_queued == 0 and consumer.resync_from is None
    await ws.disconnect()
