"""MQTT gateway ingestion: broker -> `observation_ingest`, acknowledging only what is committed.

Topic `<prefix>/<municipality-slug>/<station-code>` (by default `mizumori/+/+`); payload
`{"observed_at": "<ISO 8601 with offset>", "value": <number>}` or a JSON list of such objects.

Delivery guarantee: the client keeps a persistent session (clean_session=False, fixed client id)
and subscribes with QoS 1, and it acknowledges a message (PUBACK) only after the readings it
carried are committed, or after it was logged as rejected. A message that was received but not
acknowledged (the consumer stopped, crashed, lost the broker, or the database was down) is
delivered again by the broker; the ingestion service turns the second copy into a duplicate, so
nothing is lost and nothing is stored twice.

Faults: a message that cannot be stored is never retried forever and never stops the consumer. A
database outage (the database does not answer) is waited out with backoff, acknowledging nothing.
Any other exception while storing a batch (a bug, a value the database refuses) is isolated: the
batch is stored again message by message, and a message that fails on its own is recorded in the
rejected-message log with the error and acknowledged.

Threads: paho's network thread only queues messages; parsing, database writes and acknowledgements
happen on the thread that called `run()`. Keepalive pings go on while the database is slow.
"""

from __future__ import annotations

import json
import logging
import queue
import re
import signal
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, close_old_connections, connection, transaction
from django.utils import timezone

from tenancy.models import Municipality

from ..models import Observation, RejectedMessage
from ..parsers import json_integer
from ..services import ItemError, mqtt_connection_record, normalized_text, observation_ingest

logger = logging.getLogger(__name__)

MAX_PAYLOAD_BYTES = 256 * 1024
MAX_TOPIC_SHOWN = 200
# Same rules as Municipality.slug (a SlugField) and Station.code.
SLUG_LEVEL = re.compile(r"^[-a-zA-Z0-9_]{1,40}$")
CODE_LEVEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")
DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}


class MalformedMessage(ValueError):
    """The message as a whole cannot be read (topic, encoding, JSON, shape, size)."""


class MqttIngestError(RuntimeError):
    """The consumer cannot work with this configuration (credentials refused, subscription refused)."""


# --- parsing (pure) ----------------------------------------------------------------------------


def parse_mqtt_message(topic: str, payload: bytes) -> tuple[str, list[Any]]:
    """(municipality slug, raw items for `observation_ingest`) from one message, or MalformedMessage.

    The station comes from the topic, never from the payload, so a gateway can only name stations
    under the town its topic names; the ingestion service then refuses stations of other towns.
    Items the service must judge one by one (a list member that is not an object) are passed on as
    ItemError so the rejection keeps the item's position.
    """
    slug, code = topic_parts(topic)
    document = _decode_json(payload)
    if isinstance(document, dict):
        members = [document]
    elif isinstance(document, list):
        if not document:
            raise MalformedMessage("payload is an empty list")
        if len(document) > settings.INGEST_MAX_BATCH:
            raise MalformedMessage(
                f"payload has {len(document)} readings; at most {settings.INGEST_MAX_BATCH} per message"
            )
        members = document
    else:
        raise MalformedMessage(
            'payload must be a JSON object {"observed_at": ..., "value": ...} or a list of them, '
            f"got a JSON {type(document).__name__}"
        )
    return slug, [_item_for(member, code) for member in members]


def topic_parts(topic: str) -> tuple[str, str]:
    """The last two topic levels: municipality slug and station code."""
    shown = repr(topic[:MAX_TOPIC_SHOWN]) + ("…" if len(topic) > MAX_TOPIC_SHOWN else "")
    levels = topic.split("/")
    if len(levels) < 3:
        raise MalformedMessage(f"topic {shown} is not <prefix>/<municipality-slug>/<station-code>")
    slug, code = levels[-2], normalized_text(levels[-1])
    if not SLUG_LEVEL.match(slug):
        raise MalformedMessage(f"topic {shown}: {slug[:60]!r} is not a municipality slug")
    if not CODE_LEVEL.match(code):
        raise MalformedMessage(f"topic {shown}: {code[:60]!r} is not a station code")
    return slug, code


def _decode_json(payload: bytes) -> Any:
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise MalformedMessage(f"payload is {len(payload)} bytes; at most {MAX_PAYLOAD_BYTES} are accepted")
    try:
        text = bytes(payload).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise MalformedMessage(f"payload is not UTF-8 (byte {exc.start})") from None
    if not text.strip():
        raise MalformedMessage("payload is empty")
    try:
        return json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_int=json_integer)
    except json.JSONDecodeError as exc:
        raise MalformedMessage(f"payload is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise MalformedMessage("payload JSON is nested too deeply") from None


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict:
    document = dict(pairs)
    if len(document) != len(pairs):
        # Which of two "value"s is meant? Refuse rather than guess.
        raise MalformedMessage("payload has a duplicate key in one JSON object")
    return document


def _item_for(member: Any, code: str) -> Any:
    if not isinstance(member, dict):
        return ItemError("reading must be an object with 'observed_at' and 'value'")
    if "station" in member and member["station"] != code:
        return ItemError(f"'station' in the payload differs from the topic's station {code!r}")
    item = {"station": code}
    for key in ("observed_at", "value"):
        if key in member:
            item[key] = member[key]
    return item


# --- connection settings ------------------------------------------------------------------------


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool
    username: str
    password: str

    @classmethod
    def from_url(cls, url: str, *, username: str = "", password: str = "") -> BrokerAddress:
        """mqtt://[user:password@]host[:port] or mqtts://...; credentials in the URL win over the arguments."""
        parts = urlsplit(url)
        if parts.scheme not in DEFAULT_PORTS:
            raise ValueError(f"MQTT URL must start with mqtt:// or mqtts://, got {url.split('@')[-1]!r}")
        try:
            port = parts.port or DEFAULT_PORTS[parts.scheme]
        except ValueError:
            raise ValueError(f"MQTT URL has an invalid port: {url.split('@')[-1]!r}") from None
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=port,
            tls=parts.scheme == "mqtts",
            username=unquote(parts.username) if parts.username else username,
            password=unquote(parts.password) if parts.password else password,
        )

    def __str__(self) -> str:  # never shows the password
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


# --- the consumer ---------------------------------------------------------------------------------


@dataclass
class _Received:
    """One message as it came off the wire, plus what is needed to acknowledge it later."""

    topic: str
    payload: bytes
    mid: int
    qos: int
    connection_generation: int
    received_at: datetime
    arrived: float  # time.monotonic()
    slug: str = ""
    items: list = field(default_factory=list)
    problem: str = ""  # why the whole message was refused, if it was


@dataclass
class IngestorStats:
    received: int = 0
    handled: int = 0  # stored or logged as rejected
    acknowledged: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected_messages: int = 0
    failed_flushes: int = 0
    isolated_batches: int = 0  # batches stored message by message after an unexpected error
    sessions_lost: int = 0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


class MqttIngestor:
    """Subscribe, batch, ingest, acknowledge. `run()` blocks until stopped or a limit is reached."""

    def __init__(
        self,
        *,
        url: str,
        topic: str,
        client_id: str,
        username: str = "",
        password: str = "",
        ca_file: str = "",
        batch_size: int = 500,
        batch_milliseconds: int = 500,
        quiet_milliseconds: int = 50,
        max_messages: int | None = None,
        idle_exit: float | None = None,
        keepalive: int = 30,
        reconnect_max_delay: int = 30,
        retry_initial_delay: float = 0.5,
        retry_max_delay: float = 30.0,
    ):
        if batch_size < 1:
            raise ValueError("batch size must be at least 1")
        if ca_file and not Path(ca_file).is_file():
            raise ValueError(f"MQTT CA file {ca_file!r} does not exist")
        if max_messages is not None and max_messages < 1:
            raise ValueError("max messages must be at least 1")
        self.broker = BrokerAddress.from_url(url, username=username, password=password)
        self.topic = topic
        self.client_id = client_id
        self.ca_file = ca_file
        self.batch_size = batch_size
        self.batch_seconds = batch_milliseconds / 1000
        # The broker sends at most its in-flight window (Mosquitto: max_inflight_messages, default
        # 20) of unacknowledged messages; as we acknowledge only after commit, a batch waiting for
        # more would wait for the full batch time. A short lull means "that was all for now".
        self.quiet_seconds = min(quiet_milliseconds / 1000, self.batch_seconds)
        self.max_messages = max_messages
        self.idle_exit = idle_exit
        self.keepalive = keepalive
        self.reconnect_max_delay = reconnect_max_delay
        self.retry_initial_delay = retry_initial_delay
        self.retry_max_delay = retry_max_delay

        self.stats = IngestorStats()
        self.subscribed = threading.Event()  # set while the subscription is active (tests wait on it)
        self._stop = threading.Event()
        self._inbox: queue.Queue[_Received] = queue.Queue()
        # Guards the connection generation: a message is acknowledged only on the connection that
        # delivered it, because packet ids mean nothing on another connection.
        self._connection_lock = threading.Lock()
        self._connection_generation = 0
        self._connected = False
        self._client: mqtt.Client | None = None
        self._barrier_done = threading.Event()
        self._fatal: str | None = None
        self._previous_signal_handlers: dict[int, Any] = {}

    @classmethod
    def from_settings(cls, **overrides) -> MqttIngestor:
        options = {
            "url": settings.MQTT_URL,
            "topic": settings.MQTT_TOPIC,
            "client_id": settings.MQTT_CLIENT_ID,
            "username": settings.MQTT_USERNAME,
            "password": settings.MQTT_PASSWORD,
            "ca_file": settings.MQTT_CA_FILE,
            "batch_size": settings.MQTT_BATCH_SIZE,
            "batch_milliseconds": settings.MQTT_BATCH_MILLISECONDS,
        }
        options.update({key: value for key, value in overrides.items() if value is not None})
        return cls(**options)

    # --- lifecycle ---

    def run(self) -> IngestorStats:
        self._client = self._make_client()
        self._client.connect_async(self.broker.host, self.broker.port, keepalive=self.keepalive)
        self._client.loop_start()
        logger.info("MQTT ingestion: %s topic %r client id %r", self.broker, self.topic, self.client_id)
        try:
            self._consume()
        finally:
            self._shut_down()
        if self._fatal:
            raise MqttIngestError(self._fatal)
        return self.stats

    def stop(self) -> None:
        """Finish the batch in hand (store and acknowledge it), then disconnect. Safe from any thread."""
        self._stop.set()

    def install_signal_handlers(self) -> None:
        """SIGTERM/SIGINT stop gracefully; a second signal falls back to the default (immediate) action."""

        def handle(signum, frame):
            logger.info("%s: finishing the current batch, then disconnecting", signal.Signals(signum).name)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            self.stop()

        for signum in (signal.SIGTERM, signal.SIGINT):
            self._previous_signal_handlers[signum] = signal.signal(signum, handle)

    def _make_client(self) -> mqtt.Client:
        client = mqtt.Client(
            callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            clean_session=False,
            protocol=mqtt.MQTTv311,
            manual_ack=True,
        )
        if self.broker.username:
            client.username_pw_set(self.broker.username, self.broker.password or None)
        if self.broker.tls:
            client.tls_set(ca_certs=self.ca_file or None)
        client.reconnect_delay_set(min_delay=1, max_delay=self.reconnect_max_delay)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.on_unsubscribe = self._on_unsubscribe
        return client

    def _shut_down(self) -> None:
        self._stop.set()  # from here on a disconnect is ours, not an outage
        client = self._client
        # Whatever is still in the inbox was neither stored nor acknowledged: the broker keeps it
        # for this session and delivers it again on the next run.
        left = self._inbox.qsize()
        if left:
            logger.info("%d received message(s) not taken; the broker will deliver them again", left)
        if client is not None:
            self._wait_for_acknowledgements(client)
            client.disconnect()
            client.loop_stop()
        _close_broken_connection()  # this thread's connection; a long-lived process must not leak it
        for signum, handler in self._previous_signal_handlers.items():
            signal.signal(signum, handler)
        logger.info("MQTT ingestion stopped: %s", self.stats.as_dict())

    def _wait_for_acknowledgements(self, client: mqtt.Client, timeout: float = 5.0) -> None:
        """Make sure the broker has read our last PUBACKs before we hang up.

        Mosquitto drops PUBACKs still unread in the socket when the client closes right after them
        (seen with 2.0: all but the first came back as redeliveries). MQTT 3.1.1 has no reply to a
        PUBACK, but the broker answers packets in order, so the UNSUBACK for a filter we never
        subscribed to (a no-op for the session) proves everything sent before it was processed.
        """
        with self._connection_lock:
            if not self._connected:
                return
        self._barrier_done.clear()
        barrier = "mizumori-ack-barrier/" + re.sub(r"[+#/]", "_", self.client_id)
        result, _ = client.unsubscribe(barrier)
        if result != mqtt.MQTT_ERR_SUCCESS or not self._barrier_done.wait(timeout):
            logger.warning("broker did not confirm the last acknowledgements; it may deliver some again")

    # --- paho callbacks (network thread) ---

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            # Retrying with the same credentials or client id cannot help: stop and say why.
            self._fail(f"MQTT broker {self.broker} refused the connection: {reason_code}")
            return
        with self._connection_lock:
            self._connection_generation += 1
            self._connected = True
        self._note_session(flags.session_present)
        # Also with a session present: re-subscribing is harmless and repairs a lost subscription.
        client.subscribe(self.topic, qos=1)

    def _note_session(self, session_present: bool) -> None:
        try:
            lost = mqtt_connection_record(client_id=self.client_id, session_present=session_present)
        except Exception as exc:  # noqa: BLE001 — the cache (Redis) is down: the consumer goes on without the counter
            logger.warning("cannot record the MQTT connection in the cache: %s: %s", type(exc).__name__, exc)
            lost = not session_present and self._connection_generation > 1
        if lost:
            self.stats.sessions_lost += 1
            logger.warning(
                "connected to %s (session present: False): the broker lost this consumer's session; "
                "readings queued for it while it was away may be gone (gateways should resend them)",
                self.broker,
            )
        else:
            logger.info("connected to %s (session present: %s)", self.broker, session_present)

    def _on_connect_fail(self, client, userdata):
        logger.warning("cannot reach MQTT broker %s; retrying", self.broker)

    def _on_disconnect(self, client, userdata, disconnect_flags, reason_code, properties):
        with self._connection_lock:
            self._connected = False
        self.subscribed.clear()
        if not self._stop.is_set():
            logger.warning("disconnected from %s (%s); reconnecting", self.broker, reason_code)

    def _on_subscribe(self, client, userdata, mid, reason_code_list, properties):
        failures = [str(code) for code in reason_code_list if code.is_failure]
        if failures:
            self._fail(f"MQTT broker {self.broker} refused the subscription to {self.topic!r}: {', '.join(failures)}")
            return
        self.subscribed.set()

    def _fail(self, message: str) -> None:
        logger.error(message)
        self._fatal = message
        self._stop.set()

    def _on_unsubscribe(self, client, userdata, mid, reason_code_list, properties):
        # The barrier is our only UNSUBSCRIBE; its packet id may be known only after the UNSUBACK arrives.
        self._barrier_done.set()

    def _on_message(self, client, userdata, message):
        try:
            topic = message.topic
        except UnicodeDecodeError:
            topic = bytes(message._topic).decode("utf-8", errors="replace")
        self._inbox.put(
            _Received(
                topic=topic,
                payload=bytes(message.payload),
                mid=message.mid,
                qos=message.qos,
                connection_generation=self._connection_generation,
                received_at=timezone.now(),
                arrived=time.monotonic(),
            )
        )

    # --- the main loop (caller's thread) ---

    def _consume(self) -> None:
        batch: list[_Received] = []
        last_activity = time.monotonic()
        while not self._stop.is_set():
            if self._limit_reached(len(batch)):
                break
            message = self._next_message(batch, last_activity)
            now = time.monotonic()
            if message is not None:
                batch.append(self._parsed(message))
                last_activity = now
            if batch and self._batch_due(batch, now, message is None):
                if not self._flush(batch):
                    return  # stopped while the database was down: leave the batch unacknowledged
                batch = []
            if not batch and self.idle_exit is not None and now - last_activity >= self.idle_exit:
                logger.info("no message for %s s; exiting", self.idle_exit)
                break
        if batch:
            self._flush(batch)

    def _limit_reached(self, in_batch: int) -> bool:
        return self.max_messages is not None and self.stats.handled + in_batch >= self.max_messages

    def _next_message(self, batch: list[_Received], last_activity: float) -> _Received | None:
        now = time.monotonic()
        if batch:
            deadline = min(batch[0].arrived + self.batch_seconds, batch[-1].arrived + self.quiet_seconds)
        else:
            deadline = now + 0.5  # wake up now and then to notice stop()
            if self.idle_exit is not None:
                deadline = min(deadline, last_activity + self.idle_exit)
        try:
            return self._inbox.get(timeout=max(0.0, deadline - now))
        except queue.Empty:
            return None

    def _batch_due(self, batch: list[_Received], now: float, lull: bool) -> bool:
        return (
            lull
            or len(batch) >= self.batch_size
            or sum(len(message.items) for message in batch) >= settings.INGEST_MAX_BATCH
            or now - batch[0].arrived >= self.batch_seconds
        )

    def _parsed(self, message: _Received) -> _Received:
        self.stats.received += 1
        try:
            message.slug, message.items = parse_mqtt_message(message.topic, message.payload)
        except MalformedMessage as exc:
            message.problem = str(exc)
        except Exception as exc:  # a parser bug must cost one message, not the consumer
            logger.exception("MQTT message on %r could not be parsed", message.topic[:MAX_TOPIC_SHOWN])
            message.problem = f"could not be parsed: {type(exc).__name__}: {str(exc)[:300]}"
        return message

    def _flush(self, batch: list[_Received]) -> bool:
        """Store the batch and acknowledge it. Waits out database outages (acknowledging nothing);
        isolates any other failure to the messages that cause it."""
        delay = self.retry_initial_delay
        failures = 0
        while True:
            close_old_connections()
            try:
                self._store_isolating(batch, after_failures=failures)
                break
            except Exception as down:  # noqa: BLE001 (see below)
                # _DatabaseDown; or the rejection log itself could not be written: wait and try
                # again rather than exit, since an exiting consumer stops ingestion for every town.
                self.stats.failed_flushes += 1
                failures += 1
                _close_broken_connection()
                if failures == 1:
                    logger.warning(
                        "storing %d MQTT message(s) failed, nothing acknowledged; retrying with backoff: %s",
                        len(batch), down,
                    )
                else:
                    logger.debug("database still failing (%d attempts): %s", failures, down)
                if self._stop.wait(delay):
                    logger.warning("stopping with %d unstored message(s); the broker keeps them", len(batch))
                    return False
                delay = min(delay * 2, self.retry_max_delay)
        if failures:
            logger.warning("database back after %d failed attempt(s); %d MQTT message(s) stored", failures, len(batch))
        self.stats.handled += len(batch)
        self._acknowledge(batch)
        return True

    def _store_isolating(self, batch: list[_Received], *, after_failures: int) -> None:
        """`_store` the batch; on an error that is not an outage, store it message by message and
        record each message that fails alone as rejected. Raises _DatabaseDown for an outage."""
        try:
            self._store(batch)
            return
        except Exception as exc:
            failure = exc
            if _outage(exc, after_failures=after_failures):
                raise _DatabaseDown(f"{type(exc).__name__}: {str(exc)[:300]}") from exc
        self.stats.isolated_batches += 1
        logger.error(
            "storing a batch of %d MQTT message(s) failed (%s: %s); storing them one by one",
            len(batch), type(failure).__name__, str(failure)[:300],
        )
        for message in batch:
            try:
                self._store([message])
            except Exception as exc:
                if _outage(exc, after_failures=after_failures):
                    raise _DatabaseDown(f"{type(exc).__name__}: {str(exc)[:300]}") from exc
                logger.error("MQTT message on %r cannot be stored; recorded as rejected", message.topic[:MAX_TOPIC_SHOWN])
                self._record_rejections(
                    [rejection_for(message, f"could not be stored: {type(exc).__name__}: {str(exc)[:300]}")]
                )

    def _record_rejections(self, rejections: list[RejectedMessage]) -> None:
        RejectedMessage.objects.bulk_create(rejections)
        self._rejections_noted(rejections)

    def _rejections_noted(self, rejections: list[RejectedMessage]) -> None:
        self.stats.rejected_messages += len(rejections)
        for row in rejections:
            logger.warning("rejected MQTT message on %r: %s", row.topic, row.reason)

    def _store(self, batch: list[_Received]) -> None:
        """One transaction for the batch: its readings and its rejection log commit together."""
        rejections: list[RejectedMessage] = []
        by_town: dict[str, list[_Received]] = defaultdict(list)
        for message in batch:
            if message.problem:
                rejections.append(rejection_for(message, message.problem))
            else:
                by_town[message.slug].append(message)

        accepted = duplicates = 0
        with transaction.atomic():
            towns = {town.slug: town for town in Municipality.objects.filter(slug__in=list(by_town))}
            # A fixed order, so two consumers lock the same stations in the same order.
            for slug in sorted(by_town):
                messages = by_town[slug]
                town = towns.get(slug)
                if town is None:
                    rejections.extend(rejection_for(m, f"unknown municipality {slug!r}") for m in messages)
                    continue
                items = [item for message in messages for item in message.items]
                report = observation_ingest(municipality=town, items=items, source=Observation.Source.MQTT)
                accepted += report.accepted
                duplicates += report.duplicates
                rejections.extend(_item_rejections(messages, report.rejected))
            RejectedMessage.objects.bulk_create(rejections)
        self._rejections_noted(rejections)
        self.stats.accepted += accepted
        self.stats.duplicates += duplicates

    def _acknowledge(self, batch: list[_Received]) -> None:
        with self._connection_lock:
            for message in batch:
                if message.qos == 0:
                    continue
                if not self._connected or message.connection_generation != self._connection_generation:
                    continue  # delivered again after the reconnect; the second copy is a duplicate
                self._client.ack(message.mid, message.qos)
                self.stats.acknowledged += 1


class _DatabaseDown(Exception):
    """The database does not answer: wait and retry, acknowledge nothing."""


# An OperationalError while the database answers a probe is taken for an outage this many times
# (a failover, a restart under way), then treated like any other error: isolated to its message.
OUTAGE_ATTEMPTS_WHILE_REACHABLE = 8


def _outage(exc: Exception, *, after_failures: int) -> bool:
    if not isinstance(exc, (OperationalError, InterfaceError)):
        return False  # DataError, IntegrityError, a bug: the message, not the database
    if not _database_answers():
        return True
    return after_failures + 1 < OUTAGE_ATTEMPTS_WHILE_REACHABLE


def _database_answers() -> bool:
    _close_broken_connection()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except DatabaseError:
        _close_broken_connection()
        return False


def _close_broken_connection() -> None:
    """Drop this thread's database connection so the retry opens a fresh one."""
    try:
        connection.close()
    except DatabaseError:
        pass  # it is broken: that is why it goes


def _item_rejections(messages: list[_Received], rejected: list[dict]) -> list[RejectedMessage]:
    """Map the service's batch-wide item indexes back to the messages (and positions) they came from."""
    errors_by_message: dict[int, list[str]] = defaultdict(list)
    owners: list[tuple[int, int]] = []  # batch index -> (message number, position in its payload)
    for number, message in enumerate(messages):
        owners.extend((number, position) for position in range(len(message.items)))
    for rejection in rejected:
        number, position = owners[rejection["index"]]
        prefix = f"reading {position}: " if len(messages[number].items) > 1 else ""
        errors_by_message[number].append(prefix + rejection["error"])
    return [rejection_for(messages[number], "; ".join(errors)) for number, errors in sorted(errors_by_message.items())]


def rejection_for(message: _Received, reason: str) -> RejectedMessage:
    return RejectedMessage(
        received_at=message.received_at,
        source=Observation.Source.MQTT,
        topic=safe_text(message.topic, RejectedMessage.TOPIC_MAX_LENGTH),
        payload_excerpt=safe_text(message.payload, RejectedMessage.EXCERPT_MAX_LENGTH),
        payload_bytes=len(message.payload),
        reason=safe_text(reason, RejectedMessage.REASON_MAX_LENGTH),
    )


def safe_text(raw: bytes | str, limit: int) -> str:
    """Bounded text any database stores: undecodable bytes replaced, NUL (PostgreSQL refuses it) shown."""
    if isinstance(raw, (bytes, bytearray)):
        # Decode a little more than needed: a cut multi-byte character only costs one U+FFFD.
        raw = bytes(raw[: limit * 4]).decode("utf-8", errors="replace")
    text = raw.replace("\x00", "\\x00")
    return text if len(text) <= limit else text[: limit - 1] + "…"
