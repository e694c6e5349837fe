"""The `/ws/live/` protocol: subscribe, live station messages per audience, resume, bad frames."""

import asyncio
import json
from datetime import timedelta

import pytest
import pytest_asyncio
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connections
from django.utils import timezone

from config.asgi import application
from dashboard.consumers import LiveConsumer
from dashboard.live import PROTOCOL_VERSION
from sensors.services import observation_ingest
from tests.conftest import make_station

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


async def connect(user=None, path="/ws/live/"):
    communicator = WebsocketCommunicator(LiveConsumer.as_asgi(), path)
    if user is not None:
        communicator.scope["user"] = user
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def subscribe(communicator, layers=("river",)):
    await communicator.send_json_to({"type": "subscribe", "layers": list(layers)})
    subscribed = await communicator.receive_json_from(timeout=5)
    assert subscribed["type"] == "subscribed", subscribed
    snapshot = await communicator.receive_json_from(timeout=5)
    assert snapshot["type"] == "snapshot"
    return subscribed, snapshot


@pytest_asyncio.fixture(autouse=True)
async def close_worker_connections():
    yield
    # database_sync_to_async runs on a worker thread whose connection outlives the test; close it
    # there, or PostgreSQL refuses to drop the test database at the end of the run.
    await database_sync_to_async(connections.close_all)()


def codes(message):
    return sorted(f["properties"]["code"] for f in message["features"])


@database_sync_to_async
def ingest(code, value, minutes_ago=0):
    return observation_ingest(
        municipality=None,
        items=[{"station": code, "observed_at": timezone.now() - timedelta(minutes=minutes_ago), "value": value}],
        source="http",
    )


async def test_anonymous_gets_a_snapshot_and_live_updates_of_public_stations_only(stations):
    ws = await connect()
    subscribed, snapshot = await subscribe(ws)
    assert subscribed["layers"] == ["river"]
    # The messages' shape, which a page's live.js checks before drawing any (docs/api.md).
    assert subscribed["version"] == PROTOCOL_VERSION == 1
    assert codes(snapshot) == ["A-PUBLIC", "B-PUBLIC"]

    await ingest("A-PRIVATE", 4.2)
    await ingest("A-REGION", 4.2)
    await ingest("A-PUBLIC", 3.6)
    message = await ws.receive_json_from(timeout=2)
    assert message["type"] == "stations"
    assert codes(message) == ["A-PUBLIC"]
    props = message["features"][0]["properties"]
    assert (props["value"], props["level"]) == (3.6, 3)
    assert message["seq"] > subscribed["seq"]
    assert await ws.receive_nothing(timeout=0.2)
    await ws.disconnect()


async def test_town_user_hears_own_private_and_region_but_never_another_towns_private(stations, user_a):
    ws = await connect(user_a)
    _, snapshot = await subscribe(ws)
    assert codes(snapshot) == ["A-PRIVATE", "A-PUBLIC", "A-REGION", "A-SHARED", "B-PUBLIC", "B-REGION", "B-SHARED"]
    received = []
    for code in ("B-PRIVATE", "A-PRIVATE", "B-REGION"):
        await ingest(code, 2.0)
    for _ in range(2):
        received += codes(await ws.receive_json_from(timeout=2))
    assert sorted(received) == ["A-PRIVATE", "B-REGION"]
    assert await ws.receive_nothing(timeout=0.2)
    await ws.disconnect()


async def test_layers_filter_what_arrives(towns):
    await database_sync_to_async(make_station)(towns[0], "RIV")
    await database_sync_to_async(make_station)(towns[0], "RAIN", kind="rain")
    ws = await connect()
    await subscribe(ws, ["rain"])
    await ingest("RIV", 1.0)
    await ingest("RAIN", 2.5)
    message = await ws.receive_json_from(timeout=2)
    assert codes(message) == ["RAIN"]
    assert await ws.receive_nothing(timeout=0.2)
    await ws.disconnect()


async def test_a_large_batch_is_a_handful_of_messages(towns):
    @database_sync_to_async
    def setup_and_ingest():
        for i in range(50):
            make_station(towns[i % 2], f"S{i:02d}", visibility=("public", "region", "private")[i % 3])
        now = timezone.now()
        items = [
            {"station": f"S{i:02d}", "observed_at": now - timedelta(minutes=m), "value": 1.0}
            for i in range(50)
            for m in range(200)
        ]
        return observation_ingest(municipality=None, items=items, source="import")

    ws = await connect()
    await subscribe(ws)
    report = await setup_and_ingest()
    assert report.accepted == 10_000
    message = await ws.receive_json_from(timeout=5)
    assert len(message["features"]) == 17  # the public ones: i % 3 == 0
    # One message for the public group, however many readings the batch had.
    assert await ws.receive_nothing(timeout=0.3)
    await ws.disconnect()


async def test_resume_replays_what_was_missed_in_order(stations):
    ws = await connect()
    subscribed, _ = await subscribe(ws)
    await ws.disconnect()
    await ingest("A-PUBLIC", 1.0, minutes_ago=2)
    await ingest("B-PUBLIC", 2.0, minutes_ago=1)
    await ingest("A-PRIVATE", 3.0)

    ws = await connect()
    await subscribe(ws)
    await ws.send_json_to({"type": "resume", "since": subscribed["seq"]})
    first = await ws.receive_json_from(timeout=2)
    second = await ws.receive_json_from(timeout=2)
    assert (codes(first), codes(second)) == (["A-PUBLIC"], ["B-PUBLIC"])
    assert first["seq"] < second["seq"]
    assert await ws.receive_nothing(timeout=0.2)
    await ws.disconnect()


async def test_resume_from_a_number_the_server_never_issued_gets_a_snapshot(stations):
    ws = await connect()
    await subscribe(ws)
    await ws.send_json_to({"type": "resume", "since": 10**12})
    message = await ws.receive_json_from()
    assert message["type"] == "snapshot"
    assert codes(message) == ["A-PUBLIC", "B-PUBLIC"]
    await ws.disconnect()


@pytest.mark.parametrize(
    "frame, error",
    [
        ("{not json", "Frame is not valid JSON."),
        ("[1, 2]", 'Expected a JSON object with a "type".'),
        ('{"type": "dance"}', "Unknown message type 'dance'"),
        ('{"type": "subscribe", "layers": "river"}', '"layers" must be a non-empty list'),
        ('{"type": "subscribe", "layers": []}', '"layers" must be a non-empty list'),
        ('{"type": "subscribe", "layers": ["river", "secret-hq"]}', "Unknown layer(s) 'secret-hq'"),
        ('{"type": "resume", "since": 3}', "before resuming"),
        ('{"type": "subscribe", "layers": ["' + "x" * 20000 + '"]}', "Frame larger than"),
        ("[" * 5000 + "]" * 5000, "Frame is not valid JSON."),
    ],
    ids=["broken", "list", "unknown-type", "layers-string", "layers-empty", "unknown-layer", "resume-first",
         "oversized", "deep"],
)
async def test_bad_frames_get_an_error_and_the_connection_stays_healthy(stations, frame, error):
    ws = await connect()
    await ws.send_to(text_data=frame)
    reply = await ws.receive_json_from()
    assert reply["type"] == "error"
    assert error in reply["error"]
    await subscribe(ws)
    await ws.send_json_to({"type": "ping"})
    assert (await ws.receive_json_from())["type"] == "pong"
    await ws.disconnect()


async def test_binary_frames_are_refused_politely(stations):
    ws = await connect()
    await ws.send_to(bytes_data=b"\x00\x01")
    assert (await ws.receive_json_from())["error"] == "Frames must be JSON text, not binary."
    await ws.disconnect()


async def test_bad_resume_numbers(stations):
    for since in (-1, "12", True, None, 1.5):
        # A connection each: subscribe and resume frames share a budget of 5 per 10 s (test_live_throttle.py).
        ws = await connect()
        await subscribe(ws)
        await ws.send_to(text_data=json.dumps({"type": "resume", "since": since}))
        assert "non-negative integer" in (await ws.receive_json_from())["error"]
        await ws.disconnect()


async def test_foreign_origin_is_refused_by_the_asgi_stack(db):
    communicator = WebsocketCommunicator(application, "/ws/live/", headers=[(b"origin", b"http://evil.example")])
    connected, _ = await communicator.connect()
    assert not connected
    ok = WebsocketCommunicator(application, "/ws/live/", headers=[(b"origin", b"http://127.0.0.1:8000")])
    connected, _ = await ok.connect()
    assert connected
    await ok.disconnect()
    await asyncio.sleep(0)


async def test_resuming_with_another_streams_numbers_gets_a_snapshot(stations):
    ws = await connect()
    subscribed, _ = await subscribe(ws)
    assert subscribed["stream"]
    await ws.send_json_to({"type": "resume", "since": 0, "stream": "a-stream-from-before-a-restart"})
    assert (await ws.receive_json_from(timeout=5))["type"] == "snapshot"
    await ws.send_json_to({"type": "resume", "since": subscribed["seq"], "stream": subscribed["stream"]})
    assert await ws.receive_nothing(timeout=0.3)
    await ws.disconnect()


@database_sync_to_async
def alert_event(code, level, actor=None):
    """An alert event as the evaluator or an operator writes it: through the change log."""
    from alerts.models import Alert, AlertEvent, AlertRule
    from alerts.services import alert_events_emit
    from sensors.models import Station

    station = Station.objects.get(code=code)
    rule = AlertRule.objects.create(station=station, kind="threshold", name=f"manual {AlertRule.objects.count()}")
    now = timezone.now()
    alert = Alert.objects.create(station=station, rule=rule, level=level, peak_level=level, opened_at=now, updated_at=now)
    event = AlertEvent.objects.create(alert=alert, kind="opened", level=level, value=3.6, at=now, actor=actor)
    alert_events_emit([event.pk])
    return event


async def test_alerts_reach_the_public_from_level_3_without_staff_names(stations, user_a):
    ws = await connect()
    subscribed, _ = await subscribe(ws, ["alerts"])
    await alert_event("A-PUBLIC", 2, actor=user_a)
    assert await ws.receive_nothing(timeout=0.3)
    event = await alert_event("A-PUBLIC", 3, actor=user_a)
    message = await ws.receive_json_from(timeout=5)
    assert message["type"] == "alert" and message["layer"] == "alerts"
    assert message["alert"]["event"]["id"] == event.pk and message["alert"]["event"]["actor"] is None
    assert message["seq"] > subscribed["seq"]
    await ws.disconnect()


async def test_a_town_member_hears_its_towns_alert_group_only(stations, user_a):
    ws = await connect(user_a)
    await subscribe(ws, ["alerts"])
    await alert_event("B-PRIVATE", 4)
    assert await ws.receive_nothing(timeout=0.3)
    event = await alert_event("A-PRIVATE", 1)
    message = await ws.receive_json_from(timeout=5)
    assert message["alert"]["event"]["id"] == event.pk and message["alert"]["station"]["code"] == "A-PRIVATE"
    await ws.disconnect()


async def test_alert_messages_are_replayed_on_resume_like_stations(stations, user_a):
    ws = await connect(user_a)
    subscribed, _ = await subscribe(ws, ["alerts", "river"])
    await ws.disconnect()
    missed = [await alert_event("A-PRIVATE", 3), await alert_event("A-REGION", 2)]
    await ingest("A-PRIVATE", 1.0)

    again = await connect(user_a)
    await again.send_json_to({"type": "subscribe", "layers": ["alerts", "river"], "snapshot": False})
    assert (await again.receive_json_from(timeout=5))["type"] == "subscribed"
    await again.send_json_to({"type": "resume", "since": subscribed["seq"], "stream": subscribed["stream"]})
    replayed = [await again.receive_json_from(timeout=5) for _ in range(3)]
    assert [m["seq"] for m in replayed] == sorted(m["seq"] for m in replayed)
    assert [m["alert"]["event"]["id"] for m in replayed if m["type"] == "alert"] == [e.pk for e in missed]
    assert [codes(m) for m in replayed if m["type"] == "stations"] == [["A-PRIVATE"]]
    await again.disconnect()
