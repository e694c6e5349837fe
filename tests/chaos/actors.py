"""The chaos test's outside world: a gateway posting numbered readings over HTTP, one publishing them
over MQTT QoS 1, a webhook receiver, and a websocket client that keeps a map of station states."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Reading n is observed at BASE + n seconds: its number is recoverable from the stored row.
READING_SPACING = timedelta(seconds=1)


def observed_at(base: datetime, n: int) -> datetime:
    return base + n * READING_SPACING


class Gateway(threading.Thread):
    """Sends reading 1, 2, 3 ... until stopped; a reading counts as acknowledged only when the server
    (or broker) confirmed it. A failed send is retried, the same reading, until it is confirmed."""

    def __init__(self, *, name: str, base: datetime, value_of, interval: float):
        super().__init__(name=name, daemon=True)
        self.base = base
        self.value_of = value_of
        self.interval = interval
        self.acknowledged: list[int] = []
        self.failures: Counter[str] = Counter()
        self.stopping = threading.Event()
        self.error: BaseException | None = None

    def reading(self, n: int) -> dict:
        return {"observed_at": observed_at(self.base, n).isoformat(), "value": self.value_of(n)}

    def run(self):
        n = 1
        try:
            while not self.stopping.is_set():
                wait = self.send(n)
                if wait is None:
                    self.acknowledged.append(n)
                    n += 1
                    wait = self.interval
                self.stopping.wait(wait)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc

    def send(self, n: int) -> float | None:
        """None when acknowledged, else how long to wait before trying reading n again."""
        raise NotImplementedError

    def stop(self):
        self.stopping.set()
        self.join(timeout=30)


class HttpGateway(Gateway):
    """POST /api/v1/observations, one reading a request; backs off exponentially on connection
    errors and honours Retry-After on 429 / 503."""

    MAX_BACKOFF = 8.0

    def __init__(self, *, url: str, token: str, station: str, **kwargs):
        super().__init__(name="http-gateway", **kwargs)
        self.url, self.token, self.station = url, token, station
        self.backoff = 0.25
        self.retry_after_seen: list[int] = []

    def send(self, n: int) -> float | None:
        body = json.dumps({"observations": [{"station": self.station, **self.reading(n)}]}).encode()
        request = urllib.request.Request(
            self.url, data=body, method="POST",
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self.token}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                reply = json.load(response)
        except urllib.error.HTTPError as exc:
            self.failures[f"HTTP {exc.code}"] += 1
            if exc.code in (429, 503) and exc.headers.get("Retry-After", "").isdigit():
                self.retry_after_seen.append(int(exc.headers["Retry-After"]))
                return float(exc.headers["Retry-After"])
            if exc.code < 500:
                raise AssertionError(f"reading {n} refused: {exc.code} {exc.read()[:300]!r}") from None
            return self._back_off()
        except (OSError, ValueError) as exc:  # refused, reset, timed out, a half-written reply
            self.failures[type(exc).__name__] += 1
            return self._back_off()
        if reply.get("rejected"):
            raise AssertionError(f"reading {n} rejected: {reply}")
        self.backoff = 0.25
        return None

    def _back_off(self) -> float:
        wait, self.backoff = self.backoff, min(self.backoff * 2, self.MAX_BACKOFF)
        return wait


class MqttGateway(Gateway):
    """QoS 1 publishes; acknowledged = PUBACK received. paho reconnects by itself after a broker
    restart; a publish not acknowledged in time is sent again (the server ignores the duplicate)."""

    def __init__(self, *, port: int, topic: str, **kwargs):
        super().__init__(name="mqtt-gateway", **kwargs)
        import paho.mqtt.client as mqtt

        self.topic = topic
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"chaos-gateway-{id(self)}")
        self.client.reconnect_delay_set(min_delay=0.2, max_delay=2)
        self.client.connect_async("127.0.0.1", port, keepalive=10)
        self.client.loop_start()

    def send(self, n: int) -> float | None:
        return self.publish(json.dumps(self.reading(n)))

    def publish(self, payload: str) -> float | None:
        try:
            info = self.client.publish(self.topic, payload, qos=1)
            info.wait_for_publish(timeout=3)
            if info.is_published():
                return None
            self.failures["no PUBACK"] += 1
        except (RuntimeError, ValueError, OSError) as exc:  # not connected at the moment
            self.failures[type(exc).__name__] += 1
        return 0.5

    def stop(self):
        super().stop()
        self.client.loop_stop()
        self.client.disconnect()


class WebhookReceiver:
    """Records every signed alert POST; answers 200."""

    def __init__(self):
        self.bodies: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                receiver.bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def event_ids(self) -> Counter[int]:
        """How often each alert event arrived: a digest (a channel's rate limit batching one
        station's updates) carries several, each counted once."""
        return Counter(each["event"]["id"] for body in self.bodies for each in body.get("notifications", [body]))

    def close(self):
        self.server.shutdown()


def station_state(feature: dict) -> tuple:
    props = feature["properties"]
    return props.get("value"), props.get("observed_at"), props.get("level")


class LiveWatcher(threading.Thread):
    """A map page's websocket, without the browser: subscribes to the river layer, applies snapshots
    and `stations` messages, and records every message type it hears. It never reconnects: the
    test expects its one connection to survive every fault except the death of another server."""

    def __init__(self, url: str, origin: str):
        super().__init__(name="live-watcher", daemon=True)
        self.url, self.origin = url, origin
        self.states: dict[str, tuple] = {}
        self.kinds: list[tuple[float, str, str | None]] = []
        self.closed: str | None = None
        self.ready = threading.Event()
        self._stopping = threading.Event()

    def run(self):
        asyncio.run(self._listen())

    async def _listen(self):
        import websockets

        try:
            async with websockets.connect(self.url, origin=self.origin, ping_interval=None) as ws:
                await ws.send(json.dumps({"type": "subscribe", "layers": ["river"]}))
                parts: list[dict] = []
                while not self._stopping.is_set():
                    try:
                        message = json.loads(await asyncio.wait_for(ws.recv(), timeout=0.5))
                    except asyncio.TimeoutError:
                        continue
                    kind = message.get("type")
                    self.kinds.append((time.monotonic(), kind, message.get("reason")))
                    if kind == "snapshot":
                        parts.append(message)
                        if len(parts) == message["parts"]:
                            self.states = {
                                f["properties"]["code"]: station_state(f) for part in parts for f in part["features"]
                            }
                            parts = []
                            self.ready.set()
                    elif kind == "stations":
                        for feature in message["features"]:
                            self.states[feature["properties"]["code"]] = station_state(feature)
                    elif kind == "withdrawn":
                        for code in message["stations"]:
                            self.states.pop(code, None)
        except Exception as exc:  # noqa: BLE001 - the test asserts the connection stayed up
            self.closed = f"{type(exc).__name__}: {exc}"
            self.ready.set()

    def saw(self, kind: str) -> bool:
        return any(k == kind for _, k, _ in self.kinds)

    def stop(self):
        self._stopping.set()
        self.join(timeout=10)


async def fresh_snapshot(url: str, origin: str) -> dict[str, tuple]:
    import websockets

    async with websockets.connect(url, origin=origin) as ws:
        await ws.send(json.dumps({"type": "subscribe", "layers": ["river"]}))
        states, received, parts = {}, 0, None
        while parts is None or received < parts:
            message = json.loads(await asyncio.wait_for(ws.recv(), timeout=10))
            if message["type"] == "snapshot":
                received += 1
                parts = message["parts"]
                states.update({f["properties"]["code"]: station_state(f) for f in message["features"]})
        return states


def utc_now() -> datetime:
    return datetime.now(dt_timezone.utc)
