"""MQTT gateway ingestion against the real Mosquitto at settings.MQTT_URL.

Each test uses its own topic prefix and client ids, and removes its persistent sessions from the
broker afterwards, so runs (and other suites using the broker) do not see each other's messages.
With MIZUMORI_REQUIRE_SERVICES=1 an unreachable broker fails the tests; without it they skip.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from io import StringIO
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import DataError, OperationalError, connection

from sensors.adapters import mqtt as mqtt_adapter
from sensors.adapters.mqtt import (
    MAX_PAYLOAD_BYTES,
    BrokerAddress,
    MalformedMessage,
    MqttIngestError,
    MqttIngestor,
    parse_mqtt_message,
    safe_text,
)
from sensors.models import Observation, RejectedMessage
from sensors.selectors import mqtt_status
from sensors.services import ItemError, mqtt_connection_record

T0 = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=1)
WAIT = 10.0


def iso(minutes: int) -> str:
    return (T0 + timedelta(minutes=minutes)).astimezone(timezone(timedelta(hours=9))).isoformat()


def reading(minutes: int, value: float = 1.0) -> bytes:
    return json.dumps({"observed_at": iso(minutes), "value": value}).encode()


# --- parse_mqtt_message: pure, no broker ------------------------------------------------------


def test_parse_single_object_takes_the_station_from_the_topic():
    slug, items = parse_mqtt_message("mizumori/town-a/A-PUBLIC", reading(0, 2.5))
    assert slug == "town-a"
    assert items == [{"station": "A-PUBLIC", "observed_at": iso(0), "value": 2.5}]


def test_parse_list_keeps_positions_and_passes_bad_members_on_as_item_errors():
    payload = json.dumps([{"observed_at": iso(0), "value": 1}, 7, {"observed_at": iso(1), "value": 2}]).encode()
    slug, items = parse_mqtt_message("x/y/town-b/B-1", payload)
    assert slug == "town-b"
    assert items[0] == {"station": "B-1", "observed_at": iso(0), "value": 1}
    assert isinstance(items[1], ItemError)
    assert items[2]["station"] == "B-1"


def test_parse_refuses_a_payload_station_that_contradicts_the_topic():
    payload = json.dumps({"station": "B-PUBLIC", "observed_at": iso(0), "value": 1}).encode()
    _, items = parse_mqtt_message("mizumori/town-a/A-PUBLIC", payload)
    assert isinstance(items[0], ItemError) and "differs from the topic" in str(items[0])


def test_parse_keeps_nan_for_the_service_to_reject():
    _, items = parse_mqtt_message("mizumori/town-a/A-PUBLIC", b'{"observed_at": "2026-01-01T00:00:00+09:00", "value": NaN}')
    assert items[0]["value"] != items[0]["value"]  # NaN; the ingestion service rejects it per item


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        ("mizumori/town-a/A-1", b"not json", "not JSON"),
        ("mizumori/town-a/A-1", b"", "empty"),
        ("mizumori/town-a/A-1", b"   ", "empty"),
        ("mizumori/town-a/A-1", b'{"observed_at": "2026-01-01T00:00:00+09:00", "value": 1', "not JSON"),
        ("mizumori/town-a/A-1", b"\xff\xfe\x00\x01binary", "not UTF-8"),
        ("mizumori/town-a/A-1", "値".encode("shift_jis"), "not UTF-8"),
        ("mizumori/town-a/A-1", b'"a string"', "got a JSON str"),
        ("mizumori/town-a/A-1", b"42", "got a JSON int"),
        ("mizumori/town-a/A-1", b"null", "got a JSON NoneType"),
        ("mizumori/town-a/A-1", b"[]", "empty list"),
        ("mizumori/town-a/A-1", b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        ("mizumori/town-a/A-1", b'{"value": 1, "value": 2, "observed_at": "x"}', "duplicate key"),
        ("mizumori/town-a/A-1", b" " * (MAX_PAYLOAD_BYTES + 1), "at most 262144"),
        ("town-a/A-1", reading(0), "is not <prefix>"),
        ("mizumori//A-1", reading(0), "not a municipality slug"),
        ("mizumori/town a/A-1", reading(0), "not a municipality slug"),
        ("mizumori/town-a/", reading(0), "not a station code"),
        ("mizumori/town-a/A 1", reading(0), "not a station code"),
        ("mizumori/town-a/" + "A" * 41, reading(0), "not a station code"),
        ("mizumori/town-a/..", reading(0), "not a station code"),
    ],
    ids=lambda value: value if isinstance(value, str) and len(value) < 40 else None,
)
def test_parse_refuses_hostile_messages_with_a_reason(topic, payload, reason):
    with pytest.raises(MalformedMessage) as excinfo:
        parse_mqtt_message(topic, payload)
    assert reason in str(excinfo.value)
    assert len(str(excinfo.value)) < 500  # a bounded message, whatever the input


def test_parse_reads_an_overlong_integer_as_infinity_for_the_service_to_reject():
    _, items = parse_mqtt_message("mizumori/town-a/A-1", b'{"value": 1' + b"0" * 5000 + b', "observed_at": "x"}')
    assert items[0]["value"] == float("inf")


def test_parse_reads_a_full_width_station_code_in_the_topic_as_ascii():
    assert parse_mqtt_message("mizumori/town-a/Ａ－１", reading(0))[1][0]["station"] == "A-1"


def test_parse_refuses_more_readings_than_one_batch_allows(settings):
    settings.INGEST_MAX_BATCH = 3
    payload = json.dumps([{"observed_at": iso(i), "value": 1} for i in range(4)]).encode()
    with pytest.raises(MalformedMessage, match="at most 3 per message"):
        parse_mqtt_message("mizumori/town-a/A-1", payload)


def test_safe_text_bounds_and_sanitises():
    assert safe_text(b"ab\x00\xffcd", 100) == "ab\\x00\ufffdcd"
    assert len(safe_text(b"x" * 10_000, 2000)) == 2000
    assert safe_text("日本語" * 1000, 10).endswith("…")


def test_broker_address_from_url():
    address = BrokerAddress.from_url("mqtts://gw%40a:p%3Ass@broker.example:9000", username="u", password="p")
    assert (address.host, address.port, address.tls, address.username, address.password) == (
        "broker.example", 9000, True, "gw@a", "p:ss"
    )
    assert "p:ss" not in str(address)
    plain = BrokerAddress.from_url("mqtt://127.0.0.1", username="u", password="p")
    assert (plain.port, plain.tls, plain.username, plain.password) == (1883, False, "u", "p")
    with pytest.raises(ValueError, match="mqtt:// or mqtts://"):
        BrokerAddress.from_url("http://127.0.0.1:1883")


# --- against the broker -------------------------------------------------------------------------


def services_required() -> bool:
    return os.environ.get("MIZUMORI_REQUIRE_SERVICES", "").strip().lower() in {"1", "true", "yes", "on"}


@pytest.fixture(scope="module")
def broker() -> BrokerAddress:
    address = BrokerAddress.from_url(settings.MQTT_URL, username=settings.MQTT_USERNAME, password=settings.MQTT_PASSWORD)
    try:
        socket.create_connection((address.host, address.port), timeout=3).close()
    except OSError as exc:
        message = f"MQTT broker {address} (settings.MQTT_URL) is unreachable: {exc}"
        if services_required():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return address


def new_client(address: BrokerAddress, client_id: str, *, clean_session: bool = True) -> mqtt.Client:
    client = mqtt.Client(
        callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=clean_session,
        protocol=mqtt.MQTTv311,
    )
    if address.username:
        client.username_pw_set(address.username, address.password or None)
    if address.tls:
        client.tls_set(ca_certs=settings.MQTT_CA_FILE or None)
    return client


def publish(address: BrokerAddress, messages: list[tuple[str, bytes]]) -> None:
    """Publish with QoS 1 and wait for every PUBACK: the broker has each message when this returns."""
    client = new_client(address, f"mizumori-test-pub-{uuid.uuid4().hex[:12]}")
    client.connect(address.host, address.port, keepalive=30)
    client.loop_start()
    try:
        infos = [client.publish(topic, payload, qos=1) for topic, payload in messages]
        for info in infos:
            info.wait_for_publish(timeout=WAIT)
            assert info.is_published(), "broker did not acknowledge a test publish"
    finally:
        client.disconnect()
        client.loop_stop()


def forget_session(address: BrokerAddress, client_id: str) -> None:
    """Connecting with clean_session=True drops the persistent session the broker keeps for client_id."""
    client = new_client(address, client_id, clean_session=True)
    try:
        client.connect(address.host, address.port, keepalive=10)
        client.loop(timeout=1.0)
        client.disconnect()
    except OSError:
        pass  # the private broker of the restart test is gone with its sessions


class Consumer:
    """An MqttIngestor running on a thread of the test process (which sees the test database)."""

    def __init__(self, address_url: str, prefix: str, client_id: str, **options):
        options.setdefault("batch_milliseconds", 200)
        options.setdefault("retry_initial_delay", 0.05)
        self.ingestor = MqttIngestor(url=address_url, topic=f"{prefix}/+/+", client_id=client_id, **options)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        try:
            self.ingestor.run()
        except BaseException as exc:  # surfaced by join()
            self.error = exc

    def start(self) -> Consumer:
        self.thread.start()
        assert self.ingestor.subscribed.wait(WAIT), "consumer did not subscribe"
        return self

    def join(self, timeout: float = WAIT) -> mqtt_adapter.IngestorStats:
        self.thread.join(timeout)
        if self.thread.is_alive():
            self.ingestor.stop()
            self.thread.join(WAIT)
            pytest.fail("consumer did not stop by itself")
        if self.error:
            raise self.error
        return self.ingestor.stats

    def stop(self) -> mqtt_adapter.IngestorStats:
        self.ingestor.stop()
        return self.join()


@pytest.fixture
def session(broker):
    """(broker URL, unique topic prefix, unique client id); the client's session is removed afterwards."""
    token = uuid.uuid4().hex[:12]
    client_id = f"mizumori-test-{token}"
    url = f"{'mqtts' if broker.tls else 'mqtt'}://{broker.host}:{broker.port}"
    yield url, f"mizumori-test-{token}", client_id
    forget_session(broker, client_id)


def wait_until(condition, timeout: float = WAIT, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def stored_values(code: str) -> list[float]:
    return list(Observation.objects.filter(station__code=code).order_by("observed_at").values_list("value", flat=True))


@pytest.mark.django_db(transaction=True)
def test_readings_and_lists_are_stored_and_acknowledged(broker, session, stations):
    url, prefix, client_id = session
    consumer = Consumer(url, prefix, client_id).start()
    try:
        publish(
            broker,
            [
                (f"{prefix}/town-a/A-PUBLIC", reading(0, 1.25)),
                (f"{prefix}/town-a/A-PRIVATE", json.dumps([{"observed_at": iso(m), "value": m / 10} for m in (0, 10, 20)]).encode()),
                (f"{prefix}/town-b/B-PUBLIC", reading(0, 3.0)),
            ],
        )
        wait_until(lambda: Observation.objects.count() == 5, what="5 readings stored")
    finally:
        stats = consumer.stop()
    assert stored_values("A-PUBLIC") == [1.25]
    assert stored_values("A-PRIVATE") == [0.0, 1.0, 2.0]
    assert stored_values("B-PUBLIC") == [3.0]
    assert set(Observation.objects.values_list("source", flat=True)) == {Observation.Source.MQTT}
    assert (stats.received, stats.accepted, stats.acknowledged, stats.rejected_messages) == (3, 5, 3, 0)
    assert not RejectedMessage.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_garbage_is_logged_with_a_reason_and_the_consumer_keeps_going(broker, session, stations):
    url, prefix, client_id = session
    garbage = {
        "not-json": (f"{prefix}/town-a/A-PUBLIC", b"this is not json", "not JSON"),
        "wrong-shape": (f"{prefix}/town-a/A-PUBLIC", b'{"reading": 1}', "missing 'observed_at', 'value'"),
        "scalar": (f"{prefix}/town-a/A-PUBLIC", b'"1.5"', "got a JSON str"),
        "nan": (f"{prefix}/town-a/A-PUBLIC", f'{{"observed_at": "{iso(1)}", "value": NaN}}'.encode(), "finite"),
        "naive-time": (f"{prefix}/town-a/A-PUBLIC", b'{"observed_at": "2026-01-01T00:00:00", "value": 1}', "UTC offset"),
        "unknown-station": (f"{prefix}/town-a/NOPE", reading(1), "unknown station 'NOPE'"),
        "other-town": (f"{prefix}/town-a/B-PUBLIC", reading(1), "unknown station 'B-PUBLIC' for municipality 'town-a'"),
        "unknown-town": (f"{prefix}/atlantis/A-PUBLIC", reading(1), "unknown municipality 'atlantis'"),
        "bad-topic": (f"{prefix}/town a/A-PUBLIC", reading(1), "not a municipality slug"),
        "binary": (f"{prefix}/town-a/A-PUBLIC", b"\x00\xff\xfe\x00garbage\x00", "not UTF-8"),
        "oversized": (f"{prefix}/town-a/A-PUBLIC", b"[" + b"1," * MAX_PAYLOAD_BYTES + b"1]", "at most 262144"),
        "deep": (f"{prefix}/town-a/A-PUBLIC", b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    }
    mixed = json.dumps([{"observed_at": iso(2), "value": 2.0}, {"observed_at": iso(3), "value": "high"}]).encode()
    consumer = Consumer(url, prefix, client_id).start()
    try:
        publish(broker, [(topic, payload) for topic, payload, _ in garbage.values()])
        publish(broker, [(f"{prefix}/town-a/A-PUBLIC", mixed), (f"{prefix}/town-a/A-PUBLIC", reading(5, 5.0))])
        wait_until(lambda: RejectedMessage.objects.count() == len(garbage) + 1, what="rejections logged")
        wait_until(lambda: Observation.objects.count() == 2, what="the valid readings stored")
    finally:
        stats = consumer.stop()

    assert stored_values("A-PUBLIC") == [2.0, 5.0]
    assert stored_values("B-PUBLIC") == []  # not writable through town-a's topic
    rows = list(RejectedMessage.objects.all())
    for name, (topic, payload, reason) in garbage.items():
        matching = [row for row in rows if reason in row.reason]
        assert matching, f"{name}: no rejection mentions {reason!r}; got {[row.reason for row in rows]}"
        row = matching[0]
        assert row.source == "mqtt" and row.payload_bytes == len(payload), name
        assert row.topic == topic, name
        assert len(row.payload_excerpt) <= RejectedMessage.EXCERPT_MAX_LENGTH, name
        assert "\x00" not in row.payload_excerpt, name
    partial = [row for row in rows if row.reason.startswith("reading 1:")]
    assert len(partial) == 1 and "'value'" in partial[0].reason
    # Every message was handled: rejected ones too are acknowledged, so none comes back.
    assert stats.acknowledged == stats.received == len(garbage) + 2


@pytest.mark.django_db(transaction=True)
def test_restart_mid_stream_stores_every_reading_exactly_once(broker, session, stations, caplog):
    url, prefix, client_id = session
    topic = f"{prefix}/town-a/A-PUBLIC"
    # First run only creates the persistent session (and its subscription) at the broker.
    Consumer(url, prefix, client_id).start().stop()

    publish(broker, [(topic, reading(m, m / 100)) for m in range(30)])  # consumer is down
    first = Consumer(url, prefix, client_id, max_messages=12).start().join()
    assert first.handled == 12 and first.acknowledged == 12
    assert Observation.objects.count() == 12

    publish(broker, [(topic, reading(m, m / 100)) for m in range(30, 40)])  # down again
    second = Consumer(url, prefix, client_id, idle_exit=1.0).start().join()

    assert sorted(stored_values("A-PUBLIC")) == [m / 100 for m in range(40)]
    # Exactly the 28 unacknowledged messages came back, and none of them had been stored before.
    assert (second.received, second.accepted, second.duplicates) == (28, 28, 0)
    assert "did not confirm the last acknowledgements" not in caplog.text


@pytest.mark.django_db(transaction=True)
def test_database_failure_acknowledges_nothing_and_the_batch_comes_back(broker, session, stations, monkeypatch):
    url, prefix, client_id = session
    real_ingest = mqtt_adapter.observation_ingest
    attempts = []

    def database_down(**kwargs):
        attempts.append(len(kwargs["items"]))
        raise OperationalError("could not connect to server: Connection refused")

    monkeypatch.setattr(mqtt_adapter, "observation_ingest", database_down)
    consumer = Consumer(url, prefix, client_id).start()
    publish(broker, [(f"{prefix}/town-a/A-PUBLIC", reading(m, 1.0 + m)) for m in range(3)])
    wait_until(lambda: len(attempts) >= 3, what="retries")
    stats = consumer.stop()
    assert stats.failed_flushes >= 3 and stats.acknowledged == 0 and stats.handled == 0
    assert not Observation.objects.exists() and not RejectedMessage.objects.exists()

    monkeypatch.setattr(mqtt_adapter, "observation_ingest", real_ingest)
    recovered = Consumer(url, prefix, client_id, idle_exit=1.0).start().join()
    assert stored_values("A-PUBLIC") == [1.0, 2.0, 3.0]
    assert (recovered.received, recovered.accepted, recovered.acknowledged) == (3, 3, 3)


@pytest.mark.django_db(transaction=True)
def test_database_failure_is_retried_until_it_succeeds(broker, session, stations, monkeypatch):
    url, prefix, client_id = session
    real_ingest = mqtt_adapter.observation_ingest
    failures = []

    def flaky(**kwargs):
        if len(failures) < 2:
            failures.append(1)
            raise OperationalError("server closed the connection unexpectedly")
        return real_ingest(**kwargs)

    monkeypatch.setattr(mqtt_adapter, "observation_ingest", flaky)
    consumer = Consumer(url, prefix, client_id).start()
    try:
        publish(broker, [(f"{prefix}/town-a/A-PUBLIC", reading(0, 4.0))])
        wait_until(lambda: Observation.objects.count() == 1, what="the reading stored after retries")
    finally:
        stats = consumer.stop()
    assert (stats.failed_flushes, stats.accepted, stats.acknowledged) == (2, 1, 1)


@pytest.mark.django_db(transaction=True)
def test_command_stops_on_sigterm_after_acknowledging_what_it_stored(broker, session, stations):
    url, prefix, client_id = session
    topic = f"{prefix}/town-a/A-PUBLIC"
    Consumer(url, prefix, client_id).start().stop()  # the persistent session
    publish(broker, [(topic, reading(m, 1.0)) for m in range(5)])

    def terminate_when_stored():
        try:
            wait_until(lambda: Observation.objects.count() == 5, what="5 readings stored")
        finally:
            connection.close()
            os.kill(os.getpid(), signal.SIGTERM)

    previous = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    killer = threading.Thread(target=terminate_when_stored, daemon=True)
    out = StringIO()
    try:
        killer.start()
        # --idle-exit only guards against a hang should the signal handling break.
        call_command("ingest_mqtt", url=url, topic=f"{prefix}/+/+", client_id=client_id, idle_exit=30, stdout=out)
    finally:
        signal.signal(signal.SIGTERM, previous[0])
        signal.signal(signal.SIGINT, previous[1])
        killer.join(WAIT)
    assert "accepted 5 reading(s)" in out.getvalue() and "acknowledged 5" in out.getvalue()
    again = Consumer(url, prefix, client_id, idle_exit=0.5).start().join()
    assert again.received == 0  # the acknowledgements reached the broker before the disconnect


@pytest.mark.django_db(transaction=True)
def test_poison_time_is_rejected_and_acknowledged_and_the_readings_behind_it_are_stored(broker, session, stations):
    url, prefix, client_id = session
    topic = f"{prefix}/town-a/A-PUBLIC"
    poison = b'{"observed_at":"0001-01-01T00:00:00+14:00","value":1}'
    consumer = Consumer(url, prefix, client_id).start()
    try:
        publish(broker, [(topic, poison), (topic, b'{"observed_at":"9999-12-31T23:59:59-14:00","value":1}')]
                + [(topic, reading(m, 1.0 + m / 10)) for m in range(5)])
        wait_until(lambda: Observation.objects.count() == 5, what="the readings behind the poison stored")
        wait_until(lambda: RejectedMessage.objects.count() == 2, what="the poison messages logged")
    finally:
        stats = consumer.stop()
    assert stored_values("A-PUBLIC") == [1.0 + m / 10 for m in range(5)]
    reasons = sorted(RejectedMessage.objects.values_list("reason", flat=True))
    assert all("outside the representable range" in reason for reason in reasons), reasons
    assert stats.acknowledged == stats.received == 7
    # Acknowledged: a new consumer on the same session gets nothing again.
    assert Consumer(url, prefix, client_id, idle_exit=0.5).start().join().received == 0


@pytest.mark.parametrize("failure", [RuntimeError("a bug"), DataError("invalid byte sequence"), OverflowError("date value out of range")],
                         ids=lambda failure: type(failure).__name__)
@pytest.mark.django_db(transaction=True)
def test_an_unexpected_error_is_isolated_to_the_message_that_causes_it(broker, session, stations, monkeypatch, caplog, failure):
    url, prefix, client_id = session
    real_ingest = mqtt_adapter.observation_ingest

    def fails_on_666(**kwargs):
        if any(isinstance(item, dict) and item.get("value") == 666 for item in kwargs["items"]):
            raise failure
        return real_ingest(**kwargs)

    monkeypatch.setattr(mqtt_adapter, "observation_ingest", fails_on_666)
    topic = f"{prefix}/town-a/A-PUBLIC"
    # Held until all three are at the broker, so they are stored as one batch.
    consumer = Consumer(url, prefix, client_id, batch_milliseconds=2000, quiet_milliseconds=1500)
    consumer.start()
    try:
        publish(broker, [(topic, reading(0, 1.0)), (topic, reading(10, 666)), (topic, reading(20, 2.0))])
        wait_until(lambda: RejectedMessage.objects.exists(), what="the failing message logged")
        wait_until(lambda: Observation.objects.count() == 2, what="the other readings stored")
    finally:
        stats = consumer.stop()
    assert stored_values("A-PUBLIC") == [1.0, 2.0]
    row = RejectedMessage.objects.get()
    assert row.reason.startswith(f"could not be stored: {type(failure).__name__}")
    assert row.payload_excerpt == reading(10, 666).decode()
    assert stats.isolated_batches == 1 and stats.acknowledged == stats.received == 3
    assert stats.failed_flushes == 0  # not mistaken for an outage, not retried
    assert "storing them one by one" in caplog.text


def test_command_refuses_a_bad_url():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="mqtt:// or mqtts://"):
        call_command("ingest_mqtt", url="amqp://127.0.0.1", max_messages=1)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PrivateBroker:
    """A Mosquitto of our own on a free port, so a test can restart or misconfigure it undisturbed."""

    def __init__(self, binary: str, directory: Path):
        self.binary = binary
        self.directory = directory
        self.port = free_port()
        self.url = f"mqtt://127.0.0.1:{self.port}"
        self.address = BrokerAddress.from_url(self.url)
        self.processes: list[subprocess.Popen] = []

    def start(self, extra_config: str = "allow_anonymous true\n") -> None:
        config = self.directory / "mosquitto.conf"
        config.write_text(
            f"listener {self.port} 127.0.0.1\npersistence true\npersistence_location {self.directory}/\n"
            f"user {os.environ.get('USER') or 'root'}\n{extra_config}"
        )
        process = subprocess.Popen([self.binary, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.processes.append(process)
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        pytest.fail("private mosquitto did not start")

    def stop(self) -> None:
        process = self.processes[-1]
        process.terminate()  # Mosquitto saves its persistent sessions on SIGTERM
        process.wait(WAIT)

    def kill_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait(WAIT)


@pytest.fixture
def private_broker(tmp_path):
    binary = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)
    if binary is None:
        if services_required():
            pytest.fail("the mosquitto binary is not installed", pytrace=False)
        pytest.skip("the mosquitto binary is not installed")
    broker = PrivateBroker(binary, tmp_path)
    yield broker
    broker.kill_all()


@pytest.mark.django_db(transaction=True)
def test_consumer_reconnects_after_a_broker_restart(private_broker, stations):
    private_broker.start()
    prefix = f"mizumori-test-{uuid.uuid4().hex[:12]}"
    consumer = Consumer(private_broker.url, prefix, f"{prefix}-consumer", reconnect_max_delay=1).start()
    try:
        publish(private_broker.address, [(f"{prefix}/town-a/A-PUBLIC", reading(0, 1.0))])
        wait_until(lambda: Observation.objects.count() == 1, what="reading before the restart")

        private_broker.stop()
        wait_until(lambda: not consumer.ingestor.subscribed.is_set(), what="the consumer to notice")
        private_broker.start()
        assert consumer.ingestor.subscribed.wait(WAIT), "consumer did not reconnect"

        publish(private_broker.address, [(f"{prefix}/town-a/A-PUBLIC", reading(10, 2.0))])
        wait_until(lambda: Observation.objects.count() == 2, what="reading after the restart")
    finally:
        stats = consumer.stop()
    assert stored_values("A-PUBLIC") == [1.0, 2.0]
    assert stats.accepted == 2


@pytest.mark.django_db(transaction=True)
def test_a_session_lost_in_a_broker_crash_is_a_warning_and_counted(private_broker, stations, caplog):
    private_broker.start()
    prefix = f"mizumori-test-{uuid.uuid4().hex[:12]}"
    client_id = f"{prefix}-consumer"
    consumer = Consumer(private_broker.url, prefix, client_id, reconnect_max_delay=1).start()
    try:
        assert mqtt_status(client_id=client_id)["sessions_lost"] == 0  # a first connection has no session
        private_broker.kill_all()  # a crash: the broker never saves the session
        wait_until(lambda: not consumer.ingestor.subscribed.is_set(), what="the consumer to notice")
        private_broker.start()
        assert consumer.ingestor.subscribed.wait(WAIT), "consumer did not reconnect"
    finally:
        stats = consumer.stop()
    status = mqtt_status(client_id=client_id)
    assert stats.sessions_lost == 1 and status["sessions_lost"] == 1 and status["last_session_lost_at"]
    warnings = [r for r in caplog.records if r.levelname == "WARNING" and "session present: False" in r.getMessage()]
    assert len(warnings) == 1 and "may be gone" in warnings[0].getMessage()


def test_connection_record_counts_only_sessions_that_existed():
    client_id = f"mizumori-test-{uuid.uuid4().hex[:12]}"
    assert mqtt_connection_record(client_id=client_id, session_present=False) is False
    assert mqtt_connection_record(client_id=client_id, session_present=True) is False
    assert mqtt_connection_record(client_id=client_id, session_present=False) is True
    assert mqtt_status(client_id=client_id)["sessions_lost"] == 1


def test_refused_credentials_stop_the_consumer_with_a_clear_error(private_broker):
    private_broker.start("allow_anonymous false\n")
    ingestor = MqttIngestor(url=private_broker.url, topic="mizumori-test/+/+", client_id="mizumori-test-refused")
    with pytest.raises(MqttIngestError, match="refused the connection: Not authorized"):
        ingestor.run()
