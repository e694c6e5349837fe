"""The services the suite is configured for really answer.

CI runs the suite twice with MIZUMORI_REQUIRE_SERVICES=1: once on the embedded default (SQLite,
in-memory channel layer, eager Celery) and once with DATABASE_URL, REDIS_URL and MQTT_URL pointing
at the machine's PostgreSQL, Redis and Mosquitto. These tests prove each run used what it claims to:
a misconfigured CI must fail here, not pass quietly on the embedded default.

Each test checks what the configuration says: PostgreSQL when DATABASE_URL is set, SQLite when not;
Redis when REDIS_URL is set, the in-memory layer when not; the MQTT broker at settings.MQTT_URL
(the MQTT_URL variable, default mqtt://127.0.0.1:1883), which has no embedded stand-in. With
MIZUMORI_REQUIRE_SERVICES=1 nothing skips. Without it (a developer's plain `make test`), the MQTT
test skips with a reason when MQTT_URL is not set and nothing answers at the default address.
"""

from __future__ import annotations

import asyncio
import os
import queue
import threading
import uuid
from urllib.parse import unquote, urlsplit

import dj_database_url
import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.core.cache import cache
from django.db import connection

REQUIRE_SERVICES_VAR = "MIZUMORI_REQUIRE_SERVICES"
TIMEOUT = 5.0

# Django ENGINE -> connection.vendor
VENDOR_OF_ENGINE = {
    "django.db.backends.postgresql": "postgresql",
    "django.db.backends.sqlite3": "sqlite",
    "django.db.backends.mysql": "mysql",
}


def services_required() -> bool:
    return os.environ.get(REQUIRE_SERVICES_VAR, "").strip().lower() in {"1", "true", "yes", "on"}


SERVICE_URL_VARS = ("DATABASE_URL", "REDIS_URL", "MQTT_URL")


def test_services_run_sets_every_service_url():
    """Under MIZUMORI_REQUIRE_SERVICES=1, a run on real services (DATABASE_URL or REDIS_URL set) sets all three URLs."""
    configured = [name for name in SERVICE_URL_VARS if os.environ.get(name, "").strip()]
    if not services_required() or not {"DATABASE_URL", "REDIS_URL"} & set(configured):
        return  # the embedded default, or a developer's partial setup without the CI flag
    missing = [name for name in SERVICE_URL_VARS if name not in configured]
    assert not missing, (
        f"{REQUIRE_SERVICES_VAR}=1 with {', '.join(configured)} set, but {', '.join(missing)} missing: "
        "the services run must configure PostgreSQL, Redis and MQTT together (see .ci/run)"
    )


# --- database ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_database_is_the_configured_one():
    database_url = os.environ.get("DATABASE_URL", "").strip()
    if database_url:
        engine = dj_database_url.parse(database_url)["ENGINE"]
        expected = VENDOR_OF_ENGINE.get(engine, engine.rsplit(".", 1)[-1])
        assert settings.DATABASE_URL == database_url
    else:
        expected = "sqlite"  # the embedded default
    assert connection.vendor == expected, (
        f"DATABASE_URL={database_url!r} should give a {expected} connection, got {connection.vendor}"
    )
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT version(), current_database()")
            version, name = cursor.fetchone()
            assert version.startswith("PostgreSQL"), version
            # pytest-django runs on a separate test database, never on the configured one.
            assert name.startswith("test_"), name
        else:
            cursor.execute("SELECT 1")
            assert cursor.fetchone() == (1,)


def test_database_url_scheme_means_postgresql_in_services_run():
    """CI's service run must really be on PostgreSQL, not on a DATABASE_URL that silently means SQLite."""
    database_url = os.environ.get("DATABASE_URL", "").strip()
    if not database_url:
        assert settings.DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3"
        return
    if services_required():
        assert settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql", (
            f"{REQUIRE_SERVICES_VAR}=1 expects DATABASE_URL to point at PostgreSQL, got {database_url!r}"
        )


# --- channel layer and Redis --------------------------------------------------------------------


def _layer_round_trip() -> tuple[object, dict, dict]:
    """Send one message to a fresh channel directly and one through a group; return what came back."""
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    assert layer is not None, "CHANNEL_LAYERS has no default layer"
    nonce = uuid.uuid4().hex
    group = f"ci-ping-{nonce}"

    async def round_trip():
        channel = await layer.new_channel()
        await layer.group_add(group, channel)
        try:
            await layer.send(channel, {"type": "ci.direct", "nonce": nonce})
            direct = await asyncio.wait_for(layer.receive(channel), TIMEOUT)
            await layer.group_send(group, {"type": "ci.group", "nonce": nonce})
            grouped = await asyncio.wait_for(layer.receive(channel), TIMEOUT)
        finally:
            await layer.group_discard(group, channel)
        return direct, grouped

    direct, grouped = async_to_sync(round_trip)()
    assert direct == {"type": "ci.direct", "nonce": nonce}
    assert grouped == {"type": "ci.group", "nonce": nonce}
    return layer, direct, grouped


def test_channel_layer_round_trip():
    layer, _, _ = _layer_round_trip()
    backend = type(layer).__module__ + "." + type(layer).__name__
    if os.environ.get("REDIS_URL", "").strip():
        assert backend == "channels_redis.pubsub.RedisPubSubChannelLayer", backend
    else:
        assert backend == "channels.layers.InMemoryChannelLayer", backend


def test_redis_answers_ping():
    redis_url = os.environ.get("REDIS_URL", "").strip()
    if not redis_url:
        # The embedded default has no Redis; the in-memory layer and cache stand in for it.
        assert settings.CHANNEL_LAYERS["default"]["BACKEND"] == "channels.layers.InMemoryChannelLayer"
        assert settings.CACHES["default"]["BACKEND"] == "django.core.cache.backends.locmem.LocMemCache"
        return
    import redis

    client = redis.Redis.from_url(redis_url, socket_connect_timeout=TIMEOUT, socket_timeout=TIMEOUT)
    try:
        assert client.ping() is True
    except redis.exceptions.ConnectionError as exc:
        pytest.fail(f"Redis at REDIS_URL={redis_url!r} does not answer: {exc}", pytrace=False)
    finally:
        client.close()


def test_cache_round_trip():
    key = f"ci-ping-{uuid.uuid4().hex}"
    cache.set(key, {"ok": True}, timeout=30)
    try:
        assert cache.get(key) == {"ok": True}
    finally:
        cache.delete(key)
    expected = (
        "django.core.cache.backends.redis.RedisCache"
        if os.environ.get("REDIS_URL", "").strip()
        else "django.core.cache.backends.locmem.LocMemCache"
    )
    assert settings.CACHES["default"]["BACKEND"] == expected


def test_celery_broker_answers_or_eager():
    if not settings.CELERY_BROKER_URL:
        assert settings.CELERY_TASK_ALWAYS_EAGER is True
        return
    from config.celery import app

    assert settings.CELERY_TASK_ALWAYS_EAGER is False
    with app.connection_for_write() as conn:
        try:
            conn.ensure_connection(max_retries=2, interval_start=0.5, interval_step=0.5, timeout=TIMEOUT)
        except Exception as exc:  # kombu raises transport-specific errors
            pytest.fail(f"Celery broker at {settings.CELERY_BROKER_URL!r} does not answer: {exc}", pytrace=False)


# --- MQTT -------------------------------------------------------------------------------------


def _broker_unreachable(message: str):
    """A configured broker that does not answer fails; the untouched default may skip outside CI."""
    explicitly_configured = bool(os.environ.get("MQTT_URL", "").strip())
    if explicitly_configured or services_required():
        pytest.fail(message, pytrace=False)
    pytest.skip(f"MQTT_URL is not set and no broker answers at the default address: {message}")


def test_mosquitto_round_trip():
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    mqtt_url = settings.MQTT_URL
    parts = urlsplit(mqtt_url)
    assert parts.scheme in {"mqtt", "mqtts"}, f"MQTT_URL must start with mqtt:// or mqtts://, got {mqtt_url!r}"
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
    username = unquote(parts.username) if parts.username else settings.MQTT_USERNAME
    password = unquote(parts.password) if parts.password else settings.MQTT_PASSWORD

    # Not under mizumori/: a running MQTT consumer must not take this for a reading.
    topic = f"ci/mizumori-ping/{uuid.uuid4().hex}"
    payload = uuid.uuid4().hex.encode()
    connected = threading.Event()
    subscribed = threading.Event()
    connect_result: list = []
    suback_codes: list = []
    messages: queue.Queue = queue.Queue()

    def on_connect(client, userdata, flags, reason_code, properties):
        connect_result.append(reason_code)
        connected.set()

    def on_subscribe(client, userdata, mid, reason_codes, properties):
        suback_codes.extend(reason_codes)
        subscribed.set()

    def on_message(client, userdata, message):
        messages.put((message.topic, message.payload, message.qos))

    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"mizumori-ci-{uuid.uuid4().hex[:12]}"
    )
    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    if username:
        client.username_pw_set(username, password or None)
    if parts.scheme == "mqtts":
        client.tls_set(ca_certs=settings.MQTT_CA_FILE or None)
    try:
        client.connect(host, port, keepalive=30)
    except OSError as exc:
        _broker_unreachable(f"MQTT broker at MQTT_URL={mqtt_url!r} does not accept connections: {exc}")
    client.loop_start()
    try:
        assert connected.wait(TIMEOUT), f"no CONNACK from {host}:{port} within {TIMEOUT}s"
        assert not connect_result[0].is_failure, f"broker refused the connection: {connect_result[0]}"
        client.subscribe(topic, qos=1)
        assert subscribed.wait(TIMEOUT), f"no SUBACK for {topic} within {TIMEOUT}s"
        assert suback_codes and not suback_codes[0].is_failure, f"broker refused the subscription: {suback_codes}"
        info = client.publish(topic, payload, qos=1)
        info.wait_for_publish(timeout=TIMEOUT)
        assert info.is_published(), f"no PUBACK for QoS 1 publish to {topic} within {TIMEOUT}s"
        try:
            got = messages.get(timeout=TIMEOUT)
        except queue.Empty:
            pytest.fail(f"published to {topic} but the message did not come back within {TIMEOUT}s", pytrace=False)
        assert got == (topic, payload, 1)
    finally:
        client.disconnect()
        client.loop_stop()
