"""`/ws/live/`: the live map protocol of DESIGN.md.

Client -> server: {"type": "subscribe", "layers": [...]}, {"type": "resume", "since": <seq>}.
Server -> client: subscribed, snapshot, stations (and alerts, shelters ...), error. A bad frame gets an
error reply and the connection stays up.

A snapshot holds the stations of the subscribed station layers in `features` and, when "shelters"
is subscribed, every shelter (dashboard.live_geo.shelter_feature) in `shelters`. It goes out in
parts small enough for any websocket frame limit (dashboard.live.snapshot_frames):
{"type": "snapshot", "seq": n, "stream": s, "part": i, "parts": k, "layers": [...], "features": [...],
"shelters": [...]}. The map pages carry their first snapshot in the page and subscribe with
"snapshot": false, then resume from its number.

While live messages cannot reach this process (Redis or the database unreachable, or the publisher
retrying: dashboard.live_health) the connection stays open and the client gets {"type": "degraded",
"reason": ...}; when they can again, {"type": "restored", "seq": n} followed by what it missed, read
from the database's replay log (or a snapshot when that cannot bridge the gap).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from urllib.parse import parse_qs

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.layers import get_channel_layer

from alerts.selectors import live_group
from config.websocket import SHARED_TEXT
from public.load import public_socket_closed, public_socket_opened
from sensors.selectors import station_list
from tenancy.models import Municipality
from tenancy.selectors import ANONYMOUS, active_municipality_id, viewer_for_user

from . import live, live_geo
from .broadcast import live_broadcaster
from .features import audience_features
from .live_health import live_health
from .throttle import (
    CLOSE_CODE_RATE_LIMITED,
    FRAMES_PER_WINDOW,
    SUBSCRIBES_PER_WINDOW,
    WINDOW_SECONDS,
    ConnectionThrottle,
)

logger = logging.getLogger(__name__)

MAX_FRAME_BYTES = 16 * 1024
# A browser that reads slower than live messages arrive (a phone on a weak link in a storm) must not
# grow the server's memory: past this many live messages waiting in its queue, further ones are
# dropped and the client is brought up to date instead, from the replay log or with a snapshot
# (`live_resync`) once it has taken what was queued. Frames are shared between clients (encoded once
# per process), so a queued one costs a reference; the bound is about the count.
LIVE_QUEUE_MAX = 256
# Numbers of the last messages sent, so a message replayed after an outage and then delivered by the
# channel layer as well reaches the browser once.
RECENT_SEQS = 1000


class LiveConsumer(AsyncJsonWebsocketConsumer):
    # Read by the per-connection rate limits (dashboard.throttle); tests stop it.
    throttle_clock = staticmethod(time.monotonic)

    async def __call__(self, scope, receive, send):
        # Not channels' AsyncConsumer.__call__: a connection has no channel of its own on the layer.
        # Live messages come from this process's fan-out (dashboard.broadcast), already encoded, and
        # the live health monitor's changes (which cannot come through the channel layer, which may
        # be what is down) into one inbox, together with the client's own frames; one loop handles
        # them in order.
        self.scope = scope
        self.base_send = send
        self.inbox: asyncio.Queue = asyncio.Queue()
        # Live messages in the inbox not yet sent, and whether they overflowed (see LIVE_QUEUE_MAX).
        self.live_queued = 0
        self.resync_from: int | None = None
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        self.layer_set: frozenset[str] = frozenset()
        self.groups_joined: list[str] = []
        # bin/serve's server writes a live frame's bytes, built once per process, straight to the
        # socket (config.websocket); elsewhere (daphne, tests) frames go through channels' send.
        self.send_shared = ((scope.get("extensions") or {}).get(SHARED_TEXT) or {}).get("send")
        live_health().attach(self.inbox)
        pump = asyncio.get_running_loop().create_task(self._pump(receive))
        try:
            while True:
                message = await self.inbox.get()
                if message["type"] in ("live.frame", "live.message"):
                    self.live_queued -= 1
                if message["type"] == "live.frame":
                    await self.live_frame(message)
                elif message["type"] == "live.resync":
                    await self.live_resync()
                elif message["type"] == "live.health":
                    await self.live_health(message)
                else:
                    # Client frames go through channels' dispatch (it closes stale database
                    # connections first); live frames above need no database and skip that hop.
                    await self.dispatch(message)
        except StopConsumer:
            pass
        finally:
            pump.cancel()
            live_health().detach(self.inbox)
            await self._leave_groups()

    async def _pump(self, receive):
        """The client's side of the connection, into the inbox."""
        while True:
            try:
                message = await receive()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the server lost the connection: end as a disconnect
                message = {"type": "websocket.disconnect", "code": 1006}
            self.inbox.put_nowait(message)
            if message["type"] == "websocket.disconnect":
                return

    def push_live(self, item: dict) -> None:
        """From the fan-out: a live frame ({"type": "live.frame", "seq", "text", "wire"}) or a message that
        needs this viewer's own check ({"type": "live.message", "message"}). Past LIVE_QUEUE_MAX
        waiting, it is dropped and a resync is queued once instead."""
        if self.resync_from is not None:
            return  # the resync brings it
        if self.live_queued >= LIVE_QUEUE_MAX:
            # Everything after what this client was sent so far is replayed (duplicates of the queued
            # frames are skipped by number), or a snapshot goes when the log does not reach back.
            self.resync_from = getattr(self, "seq", 0)
            self.inbox.put_nowait({"type": "live.resync"})
            return
        self.live_queued += 1
        self.inbox.put_nowait(item)

    async def connect(self):
        # The public page is the public view even for a logged-in user (see dashboard.views).
        if parse_qs(self.scope.get("query_string", b"").decode("latin-1")).get("view") == ["public"]:
            self.viewer = ANONYMOUS
        else:
            self.viewer = await database_sync_to_async(self._viewer_of_session)()
        self.layers: set[str] = set()
        # The newest number this client has been brought up to: where a replay after an outage starts.
        self.seq = 0
        # In order (to forget the oldest) and as a set (to look one up per message without scanning).
        self.recent_seqs: deque[int] = deque(maxlen=RECENT_SEQS)
        self.recent_seq_set: set[int] = set()
        self.degraded: str | None = None
        # Where the replay after an outage starts: the number reached when it began (a message the
        # channel layer dropped then may be older than one that got through later).
        self.replay_from = 0
        # Anonymous sockets are counted: past PUBLIC_WEBSOCKET_READERS_MAX the public snapshot tells
        # new readers to poll instead (public.load.live_transport).
        self.counted_as_public = self.viewer.is_anonymous
        if self.counted_as_public:
            await sync_to_async(public_socket_opened)()
        await self.accept()

    def _viewer_of_session(self):
        return viewer_for_user(self.scope.get("user"), active_municipality_id(self.scope.get("session")))

    async def disconnect(self, code):
        if getattr(self, "counted_as_public", False):
            await sync_to_async(public_socket_closed)()
        await self._leave_groups()

    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        if not await self._admitted(
            self._throttle().admit_frame, f"Too many frames: at most {FRAMES_PER_WINDOW} per {WINDOW_SECONDS:g} s."
        ):
            return
        if text_data is None:
            await self.error("Frames must be JSON text, not binary.")
            return
        if len(text_data.encode("utf-8")) > MAX_FRAME_BYTES:
            await self.error(f"Frame larger than {MAX_FRAME_BYTES} bytes.")
            return
        try:
            content = json.loads(text_data)
        except (ValueError, RecursionError):
            await self.error("Frame is not valid JSON.")
            return
        await self.receive_json(content)

    async def receive_json(self, content, **kwargs):
        if not isinstance(content, dict):
            await self.error('Expected a JSON object with a "type".')
            return
        kind = content.get("type")
        if kind in ("subscribe", "resume") and not await self._admitted(
            self._throttle().admit_subscribe,
            f"Too many subscribe/resume frames: at most {SUBSCRIBES_PER_WINDOW} per {WINDOW_SECONDS:g} s.",
        ):
            return
        if kind == "subscribe":
            await self.subscribe(content.get("layers"), snapshot=content.get("snapshot", True) is not False)
        elif kind == "resume":
            await self.resume(content.get("since"), content.get("stream"))
        elif kind == "ping":
            await self.send_json({"type": "pong", "seq": await self._current_seq_or_last_known()})
        else:
            await self.error(f"Unknown message type {str(kind)[:40]!r}; expected subscribe or resume.")

    async def error(self, message: str):
        await self.send_json({"type": "error", "error": message})

    def _throttle(self) -> ConnectionThrottle:
        if getattr(self, "throttle", None) is None:
            self.throttle = ConnectionThrottle(self.throttle_clock)
        return self.throttle

    async def _admitted(self, admit, refusal: str) -> bool:
        """False when the frame is refused: the client hears why, or is closed once it persists."""
        if getattr(self, "closing_for_abuse", False):
            return False
        if admit():
            return True
        if self.throttle.strike():
            await self.error(f"{refusal} This frame was ignored.")
        else:
            self.closing_for_abuse = True
            await self.close(code=CLOSE_CODE_RATE_LIMITED, reason="Rate limit: too many frames after being warned.")
        return False

    async def subscribe(self, layers, *, snapshot: bool = True):
        if not isinstance(layers, list) or not layers or not all(isinstance(layer, str) for layer in layers):
            await self.error('"layers" must be a non-empty list of layer names.')
            return
        unknown = [layer for layer in layers if layer not in live.LAYERS]
        if unknown:
            await self.error(
                f"Unknown layer(s) {', '.join(repr(layer[:20]) for layer in unknown[:5])}; "
                f"available: {', '.join(live.LAYERS)}."
            )
            return
        self.layers = set(layers)
        self.layer_set = frozenset(layers)
        await self._join_groups()
        seq = await database_sync_to_async(live.live_store().current_seq)()
        stream = await database_sync_to_async(live.live_store().stream_id)()
        self.seq = seq
        await self.send_json(
            {
                "type": "subscribed",
                "version": live.PROTOCOL_VERSION,
                "layers": sorted(self.layers),
                "seq": seq,
                "stream": stream,
            }
        )
        reason = live_health().reason
        if reason is not None:
            self.degraded, self.replay_from = reason, seq
            await self.send_json({"type": "degraded", "reason": reason})
        if snapshot:
            # A reconnecting client says snapshot=false and resumes from its last number instead.
            await self.send_snapshot()

    async def resume(self, since, stream=None):
        if not self.layers:
            await self.error('Send {"type": "subscribe", "layers": [...]} before resuming.')
            return
        if isinstance(since, bool) or not isinstance(since, int) or since < 0:
            await self.error('"since" must be a non-negative integer sequence number.')
            return
        if stream is not None and stream != await database_sync_to_async(live.live_store().stream_id)():
            # The numbers the client holds belong to a stream that has since restarted.
            await self.send_snapshot()
            return
        await self._catch_up(since)

    async def _catch_up(self, since: int):
        """What this client missed after `since`, replayed in order, or a snapshot when the log
        cannot bridge the gap."""
        missed, complete = await database_sync_to_async(self._missed_since)(since)
        if not complete:
            await self.send_snapshot()
            return
        self.seq = max(self.seq, since)
        for message in missed:
            await self._deliver(message)

    def _missed_since(self, since: int) -> tuple[list[dict], bool]:
        store = live.live_store()
        if since > store.current_seq():
            # The client counted on a stream that has since restarted: its numbers mean nothing here.
            return [], False
        return store.since(self.groups_joined, since)

    async def _current_seq_or_last_known(self) -> int:
        try:
            return await database_sync_to_async(live.live_store().current_seq)()
        except Exception:  # noqa: BLE001 - a heartbeat must not close the socket during an outage
            return self.seq

    async def live_health(self, event):
        """From this process's monitor (dashboard.live_health): tell the client, and on recovery
        replay from the database what the channel layer may have dropped meanwhile."""
        reason = event["degraded"]
        was = self.degraded
        self.degraded = reason
        if not self.layers:
            return  # not subscribed yet: `subscribed` will say how things are
        if reason is not None:
            if was is None:
                self.replay_from = self.seq
            if reason != was:
                await self.send_json({"type": "degraded", "reason": reason})
            return
        if was is None:
            return
        try:
            current = await database_sync_to_async(live.live_store().current_seq)()
        except Exception:  # noqa: BLE001 - the database went again: the monitor will say so
            return
        await self.send_json({"type": "restored", "seq": current})
        await self._catch_up(self.replay_from)

    async def send_snapshot(self):
        # Built in a worker thread, not the consumers' one sync thread, so a crowd of subscribers
        # asking for snapshots does not hold up every other consumer's database work behind them.
        frames, seq = await database_sync_to_async(self._snapshot_frames, thread_sensitive=False)()
        self.seq = max(self.seq, seq)
        for frame in frames:
            await self.send(text_data=frame)

    def _no_longer_visible(self, codes: list[str]) -> list[str]:
        still = set(station_list(viewer=self.viewer).filter(code__in=codes).values_list("code", flat=True))
        return [code for code in codes if code not in still]

    def _snapshot_frames(self) -> tuple[list[str], int]:
        # Read the sequence first: anything published after it is newer than the snapshot.
        store = live.live_store()
        seq, stream = store.current_seq(), store.stream_id()
        # Readers who see the same stations (every anonymous one, the members of one town) share one
        # build: a crowd reconnecting at once after a network blip costs one, not hundreds.
        key = (seq, stream, tuple(sorted(self.layers)), live.snapshot_audience(self.viewer))
        return live.shared_snapshot(key, lambda: self._build_snapshot_frames(seq, stream)), seq

    def _build_snapshot_frames(self, seq: int, stream: str) -> list[str]:
        # The features the map pages carry too (dashboard.features): kept per audience from the live
        # log, so a connect costs the messages published since the audience's last look, not a
        # build of every station.
        stations = audience_features(self.viewer, show_sharing=self.viewer.is_member).current(seq=seq, stream=stream)
        # Shelters are public: every viewer subscribed to the layer gets all of them.
        shelters = live_geo.shelter_snapshot() if live_geo.SHELTER_LAYER in self.layers else None
        return live.snapshot_frames(
            seq=seq,
            stream=stream,
            layers=sorted(self.layers),
            feature_texts=stations.texts(self.layers),
            shelters=shelters,
        )

    async def _join_groups(self):
        await self._leave_groups()
        town_ids = []
        if self.viewer.is_platform_admin:
            town_ids = await database_sync_to_async(lambda: list(Municipality.objects.values_list("pk", flat=True)))()
        groups = live.audience_groups(self.viewer, town_ids)
        if "alerts" in self.layers:
            groups += await database_sync_to_async(self._alert_groups)()
        self.groups_joined = groups
        await live_broadcaster(self.channel_layer).join(self, groups)

    def _alert_groups(self) -> list[str]:
        """The alerts app's groups (alerts.selectors.live_group): the acting town's, or the public's."""
        if self.viewer.is_platform_admin:
            return [live_group(slug) for slug in Municipality.objects.values_list("slug", flat=True)]
        if self.viewer.acting_municipality_id is not None:
            return [live_group(Municipality.objects.get(pk=self.viewer.acting_municipality_id).slug)]
        return [live_group(None)]

    async def _leave_groups(self):
        groups, self.groups_joined = getattr(self, "groups_joined", []), []
        if groups:
            await live_broadcaster(self.channel_layer).leave(self, groups)

    async def live_resync(self):
        """The client fell LIVE_QUEUE_MAX messages behind and those after were dropped: bring it up
        to date from the replay log, or with a snapshot."""
        since, self.resync_from = self.resync_from or 0, None
        logger.info("live client fell %d messages behind; resynchronising it from %d", LIVE_QUEUE_MAX, since)
        try:
            await self._catch_up(since)
        except Exception:  # noqa: BLE001 - the database is away: the client reconnects and resumes
            logger.warning("could not resynchronise a slow live client; closing it", exc_info=True)
            await self.close(code=1011)

    async def live_message(self, event):
        await self._deliver(event["message"])

    async def live_frame(self, event):
        """A message of one of this client's groups, filtered to its layers and encoded once for
        every client of the process that asked for the same layers (dashboard.broadcast)."""
        if self._first_time(event["seq"]):
            if self.send_shared is not None:
                await self.send_shared(event["text"], event["wire"])
            else:
                await self.send(text_data=event["text"])

    def _first_time(self, seq) -> bool:
        """False for a message this client was sent already (by replay, or by the channel layer)."""
        if isinstance(seq, int):
            if seq in self.recent_seq_set:
                return False
            if len(self.recent_seqs) == RECENT_SEQS:
                self.recent_seq_set.discard(self.recent_seqs[0])
            self.recent_seqs.append(seq)
            self.recent_seq_set.add(seq)
            self.seq = max(self.seq, seq)
        return True

    async def _deliver(self, message: dict):
        if not self._first_time(message.get("seq")):
            return
        if message["type"] == "withdrawn":
            # The group lost the station, but this viewer may still see it another way (own town,
            # another grant, now public): forward only what it really can no longer see.
            gone = await database_sync_to_async(self._no_longer_visible)(message["stations"])
            if gone:
                await self.send_json({**message, "stations": gone})
        elif message["type"] == "stations":
            features = [f for f in message["features"] if f["properties"]["kind"] in self.layers]
            if features:
                await self.send_json({**message, "features": features})
        elif message.get("layer") in self.layers:
            await self.send_json(message)
