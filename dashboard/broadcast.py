"""One live fan-out per ASGI process: each audience group's message is received once, encoded once
per distinct set of subscribed layers, and the same text is queued to every local connection of
that audience.

Before this, every connection had its own channel on the channel layer and joined its groups
itself, so one published message became N deliveries in each process: N msgpack decodes, N JSON
encodes and N trips through the consumers' one sync thread (channels' `dispatch` closes old database
connections there before every handler). Now the process holds one channel per group it has
listeners for (`new_channel` + `group_add`, so it works on every channel layer: Redis pub/sub in
production, in-memory in the embedded default and tests), one task receiving from it, and a set of
listeners. A listener is a LiveConsumer: `groups_joined` names what it may hear (decided by
`dashboard.live.audience_groups`, the one visibility rule), `layers` what it asked for, and
`push_live` takes a frame for its own queue, so a slow client never holds up the others and its
frames stay in order with its replies.

`stations` messages are filtered by station kind per layer set, exactly as the consumer did;
`withdrawn` messages go to each consumer as a message (it checks per viewer whether the station is
still visible another way); every other message goes to the listeners subscribed to its `layer`.

A frame carries `wire`, a dict shared by every listener it is queued to: under `bin/serve` the
server frames and compresses the text once per negotiated framing there and writes the same bytes
to each socket (config.websocket, SHARED_TEXT).
"""

from __future__ import annotations

import asyncio
import json
import logging
import weakref

logger = logging.getLogger(__name__)

# A layer with group expiry (the in-memory and core Redis layers drop a membership after
# `group_expiry` seconds) has the process's memberships renewed at half that interval: a process
# lives longer than any one connection did.
MIN_RENEW_SECONDS = 60.0


def encode(message: dict) -> str:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


class LiveBroadcaster:
    """The fan-out of one event loop (ASGI process) on one channel layer."""

    def __init__(self, layer):
        self.layer = layer
        self._listeners: dict[str, set] = {}
        self._receivers: dict[str, tuple[str, asyncio.Task]] = {}
        self._lock = asyncio.Lock()
        self._renewer: asyncio.Task | None = None

    def listeners(self, group: str) -> int:
        return len(self._listeners.get(group, ()))

    def groups(self) -> list[str]:
        return sorted(self._receivers)

    async def join(self, listener, groups) -> None:
        """`listener` hears `groups` from now on: when this returns, the process is subscribed."""
        async with self._lock:
            for group in groups:
                self._listeners.setdefault(group, set()).add(listener)
                if group not in self._receivers:
                    channel = await self.layer.new_channel()
                    await self.layer.group_add(group, channel)
                    self._receivers[group] = (channel, asyncio.get_running_loop().create_task(self._receive(group, channel)))
            self._start_renewing()

    async def leave(self, listener, groups) -> None:
        async with self._lock:
            for group in groups:
                members = self._listeners.get(group)
                if members is None:
                    continue
                members.discard(listener)
                if members:
                    continue
                # The last listener of the group in this process: stop hearing it.
                del self._listeners[group]
                channel, task = self._receivers.pop(group)
                task.cancel()
                try:
                    await self.layer.group_discard(group, channel)
                except Exception:  # noqa: BLE001 - Redis may be down; its subscription dies with it
                    logger.warning("could not leave live group %s", group, exc_info=True)
            if not self._receivers and self._renewer is not None:
                self._renewer.cancel()
                self._renewer = None

    async def _receive(self, group: str, channel: str) -> None:
        while True:
            try:
                event = await self.layer.receive(channel)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the fan-out must outlive one bad message or outage
                logger.exception("live fan-out of %s: receive failed", group)
                await asyncio.sleep(1)
                continue
            try:
                self.fan_out(group, event)
            except Exception:  # noqa: BLE001
                logger.exception("live fan-out of %s: could not deliver a message", group)

    def fan_out(self, group: str, event: dict) -> None:
        """Queue `event`'s message to every listener of `group` that subscribed to what it carries."""
        if event.get("type") != "live.message":
            logger.warning("live fan-out of %s: ignored a %r event", group, event.get("type"))
            return
        message = event["message"]
        listeners = self._listeners.get(group)
        if not listeners:
            return
        seq = message.get("seq")
        kind = message.get("type")
        if kind == "withdrawn":
            item = {"type": "live.message", "message": message}
            for listener in listeners:
                listener.push_live(item)
            return
        frames: dict[frozenset, dict | None] = {}
        if kind == "stations":
            features = message.get("features") or []
            kinds = frozenset(feature["properties"]["kind"] for feature in features)

            def frame_for(layers: frozenset) -> dict | None:
                wanted = kinds & layers
                if not wanted:
                    return None
                body = message if wanted == kinds else {
                    **message, "features": [f for f in features if f["properties"]["kind"] in wanted]}
                return {"type": "live.frame", "seq": seq, "text": encode(body), "wire": {}}
        else:
            shared: list[dict] = []

            def frame_for(layers: frozenset) -> dict | None:
                if message.get("layer") not in layers:
                    return None
                if not shared:
                    shared.append({"type": "live.frame", "seq": seq, "text": encode(message), "wire": {}})
                return shared[0]

        for listener in listeners:
            layers = listener.layer_set
            if layers not in frames:
                frames[layers] = frame_for(layers)
            frame = frames[layers]
            if frame is not None:
                listener.push_live(frame)

    def _start_renewing(self) -> None:
        expiry = getattr(self.layer, "group_expiry", None)
        if not expiry or (self._renewer is not None and not self._renewer.done()):
            return
        self._renewer = asyncio.get_running_loop().create_task(self._renew(max(MIN_RENEW_SECONDS, expiry / 2)))

    async def _renew(self, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            for group, (channel, _) in list(self._receivers.items()):
                try:
                    await self.layer.group_add(group, channel)
                except Exception:  # noqa: BLE001
                    logger.warning("could not renew live group %s", group, exc_info=True)


_broadcasters: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, LiveBroadcaster]]" = (
    weakref.WeakKeyDictionary()
)


def live_broadcaster(layer) -> LiveBroadcaster:
    """The fan-out of the running event loop for `layer` (a new layer object, as after the channel
    layers are reset, gets its own)."""
    loop = asyncio.get_running_loop()
    by_layer = _broadcasters.setdefault(loop, {})
    broadcaster = by_layer.get(id(layer))
    if broadcaster is None or broadcaster.layer is not layer:
        broadcaster = by_layer[id(layer)] = LiveBroadcaster(layer)
    return broadcaster
