"""`/ws/live/` rate limits per connection (issue 10 item 9): 3,000 subscribe frames on one socket
once made the server build 109 full snapshots. The clock is a fake one that the test moves."""

import pytest
import pytest_asyncio
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connections

from dashboard import throttle
from dashboard.consumers import LiveConsumer

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


class FakeClock:
    def __init__(self):
        self.now = 5000.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(LiveConsumer, "throttle_clock", staticmethod(fake))
    return fake


@pytest.fixture
def snapshots(monkeypatch):
    """Counts the snapshots the server builds."""
    built = []
    real = LiveConsumer._snapshot_frames

    def counting(self):
        built.append(1)
        return real(self)

    monkeypatch.setattr(LiveConsumer, "_snapshot_frames", counting)
    return built


@pytest_asyncio.fixture(autouse=True)
async def close_worker_connections():
    yield
    await database_sync_to_async(connections.close_all)()


async def connect():
    communicator = WebsocketCommunicator(LiveConsumer.as_asgi(), "/ws/live/")
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def replies(communicator, count):
    """The next `count` messages, a close included as {"type": "websocket.close", ...}."""
    import json

    out = []
    for _ in range(count):
        message = await communicator.receive_output(timeout=5)
        out.append(json.loads(message["text"]) if message["type"] == "websocket.send" else message)
    return out


async def test_a_subscribe_flood_builds_five_snapshots_then_errors_then_is_closed(stations, clock, snapshots):
    communicator = await connect()
    for _ in range(200):
        await communicator.send_json_to({"type": "subscribe", "layers": ["river"]})
    answered = await replies(communicator, 5 * 2 + throttle.STRIKES + 1)
    assert [m["type"] for m in answered[:10]] == ["subscribed", "snapshot"] * 5
    errors = answered[10:20]
    assert {m["type"] for m in errors} == {"error"}
    assert errors[0]["error"] == "Too many subscribe/resume frames: at most 5 per 10 s. This frame was ignored."
    assert answered[20] == {
        "type": "websocket.close", "code": 4008, "reason": "Rate limit: too many frames after being warned."
    }
    assert len(snapshots) == 5
    # Nothing more: the frames queued behind the close are dropped, not answered.
    assert await communicator.receive_nothing(timeout=0.2)
    await communicator.disconnect()


async def test_resume_frames_share_the_subscribe_budget_and_it_refills(stations, clock):
    communicator = await connect()
    await communicator.send_json_to({"type": "subscribe", "layers": ["river"], "snapshot": False})
    assert (await replies(communicator, 1))[0]["type"] == "subscribed"
    # Refused resumes count too (their answer does not depend on what the live store holds).
    for _ in range(4):
        await communicator.send_json_to({"type": "resume", "since": -1})
    assert {m["error"] for m in await replies(communicator, 4)} == {
        '"since" must be a non-negative integer sequence number.'
    }
    await communicator.send_json_to({"type": "resume", "since": -1})
    assert (await replies(communicator, 1))[0]["error"].startswith("Too many subscribe/resume frames")
    # Five per ten seconds: after two seconds one more is allowed, and only one.
    clock.now += 2
    await communicator.send_json_to({"type": "subscribe", "layers": ["river"], "snapshot": False})
    await communicator.send_json_to({"type": "subscribe", "layers": ["river"], "snapshot": False})
    assert [m["type"] for m in await replies(communicator, 2)] == ["subscribed", "error"]
    await communicator.disconnect()


async def test_any_frame_counts_against_the_frame_budget(stations, clock):
    communicator = await connect()
    for _ in range(throttle.FRAMES_PER_WINDOW):
        await communicator.send_to(text_data="not json")
    assert {m["error"] for m in await replies(communicator, throttle.FRAMES_PER_WINDOW)} == {
        "Frame is not valid JSON."
    }
    await communicator.send_json_to({"type": "ping"})
    [refused] = await replies(communicator, 1)
    assert refused == {"type": "error", "error": "Too many frames: at most 30 per 10 s. This frame was ignored."}
    clock.now += 10
    await communicator.send_json_to({"type": "ping"})
    assert (await replies(communicator, 1))[0]["type"] == "pong"
    await communicator.disconnect()


async def test_a_page_that_reconnects_and_pings_is_never_limited(stations, clock):
    """What static/mizumori/live.js does: subscribe, resume, then a ping every 20 s, for an hour."""
    communicator = await connect()
    await communicator.send_json_to({"type": "subscribe", "layers": ["river", "rain"], "snapshot": False})
    await communicator.send_json_to({"type": "resume", "since": 0})
    answered = []
    for _ in range(3600 // 20):
        clock.now += 20
        await communicator.send_json_to({"type": "ping"})
        # Whatever the resume brings (a snapshot, missed messages) comes before the pong.
        answered += await replies(communicator, 1)
        while answered[-1]["type"] != "pong":
            answered += await replies(communicator, 1)
    assert answered[0]["type"] == "subscribed"
    assert [m for m in answered if m["type"] in ("error", "websocket.close")] == []
    await communicator.disconnect()


async def test_strikes_are_forgiven_over_time(stations, clock):
    """A client that is throttled now and then, but slows down, is not closed."""
    communicator = await connect()
    for _round in range(5):
        for _ in range(throttle.SUBSCRIBES_PER_WINDOW + 3):
            await communicator.send_json_to({"type": "subscribe", "layers": ["river"], "snapshot": False})
        kinds = [m["type"] for m in await replies(communicator, throttle.SUBSCRIBES_PER_WINDOW + 3)]
        assert kinds == ["subscribed"] * throttle.SUBSCRIBES_PER_WINDOW + ["error"] * 3
        clock.now += 60
    await communicator.disconnect()

