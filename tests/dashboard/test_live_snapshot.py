"""Websocket snapshots in parts (dashboard.live.snapshot_frames) and the page-first start: every
frame stays far below daphne's 1 MiB limit, the parts reassemble to exactly the whole set, and a
page that carries its snapshot resumes instead of asking for it again."""

import json

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connections

from dashboard import live
from dashboard.consumers import LiveConsumer
from dashboard.live import SNAPSHOT_PART_BYTES, SNAPSHOT_PART_ITEMS, snapshot_frames
from sensors.models import Station
from tenancy.selectors import ANONYMOUS
from tests.conftest import make_station

DAPHNE_FRAME_LIMIT = 1024 * 1024
HOSTILE = '</script><img src=x onerror=alert(1)>"\\\u2028\u0000'


def fake_feature(index: int, *, name_length: int = 40) -> dict:
    return {
        "type": "Feature",
        "id": f"S-{index}",
        "geometry": {"type": "Point", "coordinates": [140 + index / 1000, 35.0]},
        "properties": {
            "code": f"S-{index}",
            "name_ja": "水守川観測所" * (name_length // 6) + HOSTILE,
            "name_en": f"Gauge {index}",
            "kind": "river",
            "level": index % 6,
            "thresholds": [{"name": "flood", "label_ja": "氾濫危険水位", "label_en": "Overflow", "level": 4, "value": 4.0}],
        },
    }


def decode(frames: list[str]) -> list[dict]:
    return [json.loads(frame) for frame in frames]


@pytest.mark.parametrize("count", [0, 1, SNAPSHOT_PART_ITEMS, SNAPSHOT_PART_ITEMS + 1, 2000])
def test_parts_are_bounded_and_reassemble_to_the_whole_set(count):
    features = [fake_feature(index) for index in range(count)]

    frames = snapshot_frames(seq=7, stream="abc", layers=["rain", "river"], features=features)
    messages = decode(frames)

    for frame in frames:
        assert len(frame.encode("utf-8")) <= SNAPSHOT_PART_BYTES < DAPHNE_FRAME_LIMIT
    assert all(len(message["features"]) <= SNAPSHOT_PART_ITEMS for message in messages)
    assert [message["part"] for message in messages] == list(range(len(messages)))
    assert {(m["type"], m["seq"], m["stream"], m["parts"], tuple(m["layers"])) for m in messages} == {
        ("snapshot", 7, "abc", len(messages), ("rain", "river"))
    }
    assert [feature for message in messages for feature in message["features"]] == features
    assert all("shelters" not in message for message in messages)


def test_big_features_split_by_bytes_not_only_by_count():
    features = [fake_feature(index, name_length=3000) for index in range(300)]  # ~10 KB each

    frames = snapshot_frames(seq=1, stream="s", layers=["river"], features=features)

    assert len(frames) > 1
    assert all(len(frame.encode("utf-8")) <= SNAPSHOT_PART_BYTES for frame in frames)
    assert [f for message in decode(frames) for f in message["features"]] == features


def test_shelters_are_in_every_part_when_asked_for_and_reassemble():
    features = [fake_feature(index) for index in range(1200)]
    shelters = [{"type": "Feature", "id": f"SH-{index}", "properties": {"code": f"SH-{index}"}} for index in range(700)]

    messages = decode(snapshot_frames(seq=3, stream="s", layers=["river", "shelters"], features=features, shelters=shelters))

    assert all("shelters" in message for message in messages)
    assert [s for message in messages for s in message["shelters"]] == shelters
    assert [f for message in messages for f in message["features"]] == features
    assert all(len(message["features"]) + len(message["shelters"]) <= SNAPSHOT_PART_ITEMS for message in messages)


def test_an_empty_shelter_list_still_says_shelters():
    (message,) = decode(snapshot_frames(seq=0, stream="s", layers=["shelters"], features=[], shelters=[]))

    assert message == {"type": "snapshot", "seq": 0, "stream": "s", "part": 0, "parts": 1, "layers": ["shelters"],
                       "features": [], "shelters": []}


def test_an_item_bigger_than_a_part_travels_alone_and_is_not_lost():
    huge = fake_feature(0, name_length=400_000)
    features = [fake_feature(1), huge, fake_feature(2)]

    messages = decode(snapshot_frames(seq=1, stream="s", layers=["river"], features=features))

    assert [[f["id"] for f in m["features"]] for m in messages] == [["S-1"], ["S-0"], ["S-2"]]


def test_hostile_text_survives_the_frames_exactly():
    feature = fake_feature(5)

    (message,) = decode(snapshot_frames(seq=1, stream="s", layers=["river"], features=[feature]))

    assert message["features"][0]["properties"]["name_ja"].endswith(HOSTILE)


# --- through the consumer ----------------------------------------------------------------------------


@pytest.fixture
def many_public_stations(transactional_db, towns):
    for index in range(12):
        make_station(towns[0], f"MANY-{index:02d}", visibility="public", lon=140 + index / 100)
    return sorted(Station.objects.filter(code__startswith="MANY-").values_list("code", flat=True))


async def connect(path="/ws/live/"):
    communicator = WebsocketCommunicator(LiveConsumer.as_asgi(), path)
    connected, _ = await communicator.connect()
    assert connected
    return communicator


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_the_consumer_sends_a_large_snapshot_in_parts(many_public_stations, monkeypatch):
    monkeypatch.setattr(live, "SNAPSHOT_PART_ITEMS", 5)
    ws = await connect()
    await ws.send_json_to({"type": "subscribe", "layers": ["river"]})
    subscribed = await ws.receive_json_from(timeout=5)

    parts = [await ws.receive_json_from(timeout=5)]
    while len(parts) < parts[0]["parts"]:
        parts.append(await ws.receive_json_from(timeout=5))

    assert [part["part"] for part in parts] == [0, 1, 2]
    assert {part["seq"] for part in parts} == {subscribed["seq"]}
    assert {part["stream"] for part in parts} == {subscribed["stream"]}
    codes = sorted(f["properties"]["code"] for part in parts for f in part["features"])
    assert codes == many_public_stations
    assert all("display" not in f["properties"] for part in parts for f in part["features"])
    assert await ws.receive_nothing(timeout=0.2)
    await ws.disconnect()
    await database_sync_to_async(connections.close_all)()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_page_with_its_snapshot_resumes_and_gets_no_second_snapshot(many_public_stations):
    # What the map page does: its snapshot's number and stream are in the page.
    page_snapshot, _ = await database_sync_to_async(live.page_snapshot)(viewer=ANONYMOUS, show_sharing=False)
    station_id = await database_sync_to_async(lambda: Station.objects.get(code="MANY-03").pk)()
    await database_sync_to_async(live.publish_stations)([station_id])  # after the page was rendered

    ws = await connect("/ws/live/?view=public")
    await ws.send_json_to({"type": "subscribe", "layers": ["river"], "snapshot": False})
    await ws.send_json_to({"type": "resume", "since": page_snapshot["seq"], "stream": page_snapshot["stream"]})

    assert (await ws.receive_json_from(timeout=5))["type"] == "subscribed"
    missed = await ws.receive_json_from(timeout=5)
    assert missed["type"] == "stations" and missed["seq"] > page_snapshot["seq"]
    assert [f["id"] for f in missed["features"]] == ["MANY-03"]
    assert await ws.receive_nothing(timeout=0.3)
    await ws.disconnect()
    await database_sync_to_async(connections.close_all)()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_readers_of_one_audience_share_one_snapshot_build(towns, stations, user_a, user_b, monkeypatch):
    """A crowd of residents (or of one town's staff) reconnecting at once costs one snapshot build per
    audience, not one each; a town member's snapshot is never taken from the public one nor from
    another town's."""
    builds = []
    real = LiveConsumer._build_snapshot_frames

    def counting(self, seq, stream):
        builds.append(tuple(sorted(self.viewer.municipality_ids)))
        return real(self, seq, stream)

    monkeypatch.setattr(LiveConsumer, "_build_snapshot_frames", counting)

    async def snapshot_codes(user=None):
        ws = WebsocketCommunicator(LiveConsumer.as_asgi(), "/ws/live/")
        if user is not None:
            ws.scope["user"] = user
        assert (await ws.connect())[0]
        await ws.send_json_to({"type": "subscribe", "layers": ["river"]})
        assert (await ws.receive_json_from(timeout=5))["type"] == "subscribed"
        snapshot = await ws.receive_json_from(timeout=5)
        await ws.disconnect()
        return sorted(f["properties"]["code"] for f in snapshot["features"])

    try:
        public = [await snapshot_codes() for _ in range(5)]
        members_a = [await snapshot_codes(user_a) for _ in range(3)]
        member_b = await snapshot_codes(user_b)
    finally:
        await database_sync_to_async(connections.close_all)()
    assert all(codes == ["A-PUBLIC", "B-PUBLIC"] for codes in public)
    assert all("A-PRIVATE" in codes and "B-PRIVATE" not in codes for codes in members_a)
    assert "B-PRIVATE" in member_b and "A-PRIVATE" not in member_b
    assert builds == [(), (towns[0].pk,), (towns[1].pk,)]


def test_concurrent_readers_of_one_key_wait_for_one_build_and_other_keys_do_not_wait():
    import threading
    import time

    started, release, builds = threading.Event(), threading.Event(), []

    def slow_build():
        builds.append("slow")
        started.set()
        release.wait(timeout=5)
        return ["slow frames"]

    results = []
    readers = [
        threading.Thread(target=lambda: results.append(live.shared_snapshot(("k", 1), slow_build))) for _ in range(4)
    ]
    readers[0].start()
    assert started.wait(timeout=5)
    for reader in readers[1:]:
        reader.start()
    time.sleep(0.05)
    # Another audience's snapshot is built meanwhile, not queued behind the slow one.
    assert live.shared_snapshot(("k", 2), lambda: builds.append("other") or ["other frames"]) == ["other frames"]
    release.set()
    for reader in readers:
        reader.join(timeout=5)
    assert results == [["slow frames"]] * 4
    assert sorted(builds) == ["other", "slow"]


def test_a_failed_build_is_not_shared_and_the_next_reader_builds():
    def failing():
        raise RuntimeError("database went away")

    with pytest.raises(RuntimeError):
        live.shared_snapshot(("k", 3), failing)
    assert live.shared_snapshot(("k", 3), lambda: ["frames"]) == ["frames"]


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_snapshot_comes_from_the_audiences_kept_features_not_a_full_build(many_public_stations, monkeypatch):
    """The websocket snapshot and the map pages share one source (dashboard.features): a reader who
    connects after a change gets it through the live log's messages, with no build of every station."""
    from dashboard.features import AudienceFeatures
    from events.services import drain_pending
    from tests.dashboard.test_pages import observe

    full_builds = []
    real = AudienceFeatures._rebuild

    def counting(self, *args):
        full_builds.append(self.viewer)
        return real(self, *args)

    monkeypatch.setattr(AudienceFeatures, "_rebuild", counting)

    async def snapshot_values():
        ws = await connect("/ws/live/?view=public")
        await ws.send_json_to({"type": "subscribe", "layers": ["river"]})
        subscribed = await ws.receive_json_from(timeout=5)
        snapshot = await ws.receive_json_from(timeout=5)
        await ws.disconnect()
        assert snapshot["type"] == "snapshot" and snapshot["seq"] == subscribed["seq"]
        return {f["id"]: f["properties"]["value"] for f in snapshot["features"]}

    try:
        first = await snapshot_values()
        await database_sync_to_async(observe)("MANY-03", 1.23)
        await database_sync_to_async(drain_pending)()
        second = await snapshot_values()
    finally:
        await database_sync_to_async(connections.close_all)()

    assert sorted(first) == sorted(second) == many_public_stations
    assert second["MANY-03"] == 1.23 and first["MANY-03"] != 1.23
    assert full_builds == [ANONYMOUS]
