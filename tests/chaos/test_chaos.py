"""Issue 10: the whole process set keeps its promises through faults, against its own throw-away
PostgreSQL, Redis and Mosquitto (tests/chaos/services.py) — never the machine's shared ones.

Two ASGI servers (uvicorn), a change-log worker, the MQTT consumer and the alert dispatcher run as
in production (Celery eager: the dispatcher loop sends webhooks). While an HTTP gateway and an MQTT
gateway stream numbered readings and a websocket client watches the map on server B, the test
stops Redis (CHAOS_REDIS_DOWN_SECONDS, 30 by default), restarts PostgreSQL, restarts Mosquitto and
publishes the poison message of the issue, and kill -9s server A and starts it again. Then:

- every acknowledged reading is stored exactly once;
- no process exited but the one killed;
- every alert was raised once and its events delivered once to the webhook receiver;
- the websocket client stayed connected, was told "degraded" and "restored", and ends with the
  same station states as a fresh snapshot.

Runs in the services run of `make test` (DATABASE_URL set) or with MIZUMORI_CHAOS=1: it brings its
own services, so running it in the embedded run as well would repeat the same ~2 minutes to prove
nothing new. Logs are copied to test-artifacts/chaos/.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest

from tests.chaos.actors import (
    HttpGateway,
    LiveWatcher,
    MqttGateway,
    WebhookReceiver,
    fresh_snapshot,
    observed_at,
    utc_now,
)
from tests.chaos.services import Mosquitto, Postgres, Redis, free_port

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "chaos"
REDIS_DOWN_SECONDS = float(os.environ.get("CHAOS_REDIS_DOWN_SECONDS", "30"))
POISON = '{"observed_at":"0001-01-01T00:00:00+14:00","value":1}'
# The HTTP gauge rises above its flood-caution line (3.0 m) at this reading and stays there.
RISE_AT = 20

pytestmark = [pytest.mark.timeout(420)]


def chaos_wanted():
    if os.environ.get("MIZUMORI_CHAOS") == "1" or os.environ.get("DATABASE_URL"):
        return
    pytest.skip("the chaos test runs in the services run of make test (or with MIZUMORI_CHAOS=1): it brings "
                "its own services, so the embedded run would repeat it without testing anything new")


class ProcessSet:
    def __init__(self, logs: Path, env: dict[str, str]):
        self.logs, self.env = logs, env
        self.processes: dict[str, subprocess.Popen] = {}

    def start(self, name: str, *args: str) -> None:
        log = open(self.logs / f"{name}.log", "a")
        self.processes[name] = subprocess.Popen(
            [sys.executable, *args], cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def run(self, *args: str) -> str:
        result = subprocess.run([sys.executable, *args], cwd=ROOT, env=self.env, capture_output=True, text=True,
                                timeout=180)
        assert result.returncode == 0, f"{' '.join(args)}:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
        return result.stdout

    def start_web(self, name: str, port: int) -> None:
        self.start(name, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1", "--port", str(port),
                   "--lifespan", "on", "--proxy-headers")

    def wait_until_up(self, name: str, port: int, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            assert self.processes[name].poll() is None, f"{name} exited:\n{self.tail(name)}"
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health/", timeout=2)
                return
            except urllib.error.HTTPError:
                return  # it answers
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"{name} did not answer on {port} within {seconds} s:\n{self.tail(name)}")

    def kill9(self, name: str) -> None:
        process = self.processes[name]
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    def exited(self) -> dict[str, int]:
        return {name: p.returncode for name, p in self.processes.items() if p.poll() is not None}

    def tail(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


@pytest.fixture
def world():
    chaos_wanted()
    root = Path(tempfile.mkdtemp(prefix="mizumori-chaos-"))
    os.chmod(root, 0o755)  # the postgres OS user must reach its data directory inside
    logs = root / "logs"
    logs.mkdir()
    postgres, redis, mosquitto = Postgres(root), Redis(root), Mosquitto(root)
    started = []
    receiver = WebhookReceiver()
    processes = None
    try:
        postgres.init()
        started.append(postgres)
        postgres.create_database()
        started += [redis.start(), mosquitto.start()]
        keep = {k: v for k, v in os.environ.items()
                if k not in {"DATABASE_URL", "REDIS_URL", "MQTT_URL", "SQLITE_PATH", "CELERY_BROKER_URL"}}
        env = {
            **keep,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATABASE_URL": postgres.url,
            "REDIS_URL": redis.url,
            "MQTT_URL": mosquitto.url,
            "MQTT_CLIENT_ID": f"mizumori-chaos-{os.getpid()}",
            # Eager Celery: no broker to lose; the dispatcher loop sends the webhooks.
            "CELERY_BROKER_URL": "",
            "EVENTS_DRAIN": "workers",
            "CHANNEL_PREFIX": "chaos",
            "CACHE_PREFIX": "chaos",
            "OUTBOUND_ALLOWED_HOSTS": "127.0.0.1",
            "LIVE_HEALTH_SECONDS": "1",
            "API_USAGE_FLUSH_SECONDS": "5",
            "DEBUG": "0",
            "LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": str(ROOT),
        }
        processes = ProcessSet(logs, env)
        yield {"root": root, "postgres": postgres, "redis": redis, "mosquitto": mosquitto, "receiver": receiver,
               "processes": processes}
    finally:
        if processes is not None:
            processes.stop()
        for service in reversed(started):
            service.close()
        receiver.close()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        for log in [*logs.glob("*.log"), postgres.log, redis.log, mosquitto.log]:
            if log.exists():
                shutil.copy(log, ARTIFACTS / log.name)
        shutil.rmtree(root, ignore_errors=True)


def wait_for(condition, seconds: float, what: str, poll: float = 0.25):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            value = condition()
        except Exception:  # noqa: BLE001 - e.g. the database still restarting
            value = None
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {seconds:g} s waiting for {what}")


def test_readings_alerts_and_live_clients_survive_outages_restarts_and_a_killed_server(world):
    postgres, redis, mosquitto = world["postgres"], world["redis"], world["mosquitto"]
    receiver, processes = world["receiver"], world["processes"]
    processes.run("manage.py", "migrate", "--noinput")
    seed = json.loads(processes.run("-m", "tests.chaos.seed", receiver.url).strip().splitlines()[-1])

    port_a, port_b = free_port(), free_port()
    processes.start_web("web-a", port_a)
    processes.start_web("web-b", port_b)
    processes.start("drain", "manage.py", "drain_events")
    processes.start("mqtt", "manage.py", "ingest_mqtt")
    processes.start("dispatch", "manage.py", "dispatch_alerts", "--loop", "--interval", "1")
    processes.wait_until_up("web-a", port_a)
    processes.wait_until_up("web-b", port_b)

    ws_url, origin = f"ws://127.0.0.1:{port_b}/ws/live/?view=public", f"http://127.0.0.1:{port_b}"
    watcher = LiveWatcher(ws_url, origin)
    watcher.start()
    assert watcher.ready.wait(30) and watcher.closed is None, watcher.closed

    base = utc_now() - timedelta(minutes=20)
    http = HttpGateway(url=f"http://127.0.0.1:{port_a}/api/v1/observations", token=seed["token"], station="CH-HTTP",
                       base=base, value_of=lambda n: 3.2 if n >= RISE_AT else 1.0, interval=0.2)
    mqtt = MqttGateway(port=mosquitto.port, topic=f"mizumori/{seed['slug']}/CH-MQTT", base=base,
                       value_of=lambda n: 1.0 + (n % 5) / 10, interval=0.2)
    http.start()
    mqtt.start()
    try:
        wait_for(lambda: len(http.acknowledged) > RISE_AT and len(mqtt.acknowledged) > 10, 60, "readings to flow")

        # 1. Redis stops (crash: it comes back empty).
        redis_stopped = time.monotonic()
        before_outage = len(http.acknowledged), len(mqtt.acknowledged)
        redis.stop()
        wait_for(lambda: any(k == "degraded" and t > redis_stopped for t, k, _ in watcher.kinds), 20,
                 "the live client to be told it is degraded")
        time.sleep(max(0.0, REDIS_DOWN_SECONDS - (time.monotonic() - redis_stopped)))
        during_outage = len(http.acknowledged) - before_outage[0], len(mqtt.acknowledged) - before_outage[1]
        redis.start()
        wait_for(lambda: any(k == "restored" and t > redis_stopped for t, k, _ in watcher.kinds), 40,
                 "the live client to be told it is restored")

        # 2. PostgreSQL restarts.
        postgres.stop()
        time.sleep(3)
        postgres.start()
        time.sleep(3)

        # 3. The broker restarts; then the message that used to stop MQTT ingestion for good.
        mosquitto.stop()
        time.sleep(2)
        mosquitto.start()
        wait_for(lambda: mqtt.publish(POISON) is None, 30, "the broker to acknowledge the poison message")

        # 4. Server A dies without a chance to clean up, and is started again on its port.
        processes.kill9("web-a")
        time.sleep(2)
        processes.start_web("web-a", port_a)
        processes.wait_until_up("web-a", port_a)
        count_at_restart = len(http.acknowledged), len(mqtt.acknowledged)
        wait_for(lambda: len(http.acknowledged) > count_at_restart[0] + 5
                 and len(mqtt.acknowledged) > count_at_restart[1] + 5, 60, "readings to flow after the faults")
    finally:
        http.stop()
        mqtt.stop()
    assert http.error is None and mqtt.error is None, (http.error, mqtt.error)

    db = wait_for(postgres.connect, 30, "the database")

    def settled():
        pending = db.execute("SELECT count(*) FROM events_outboxevent").fetchone()[0]
        undelivered = db.execute("SELECT count(*) FROM alerts_delivery WHERE state <> 'sent'").fetchone()[0]
        return pending == 0 and undelivered == 0

    wait_for(settled, 90, "the change log and the deliveries to drain")
    exited = {name: code for name, code in processes.exited().items()}
    assert exited == {}, {name: processes.tail(name) for name in exited}

    # Every acknowledged reading stored exactly once.
    for gateway, code in ((http, "CH-HTTP"), (mqtt, "CH-MQTT")):
        rows = db.execute(
            "SELECT o.observed_at, count(*) FROM sensors_observation o JOIN sensors_station s ON s.id = o.station_id "
            "WHERE s.code = %s GROUP BY o.observed_at", [code],
        ).fetchall()
        stored = dict(rows)
        assert all(count == 1 for count in stored.values())
        missing = [n for n in gateway.acknowledged if observed_at(base, n) not in stored]
        assert not missing, f"{code}: {len(missing)} acknowledged reading(s) not stored, e.g. {missing[:10]}"
    assert http.failures and mqtt.failures, "the faults never reached the gateways: they test nothing"
    assert min(during_outage) > 0, f"ingestion must not need Redis: {during_outage} reading(s) during its outage"

    # The poison message was recorded as rejected, and MQTT ingestion went on after it.
    assert db.execute("SELECT count(*) FROM sensors_rejectedmessage WHERE payload_excerpt LIKE %s",
                      ["%0001-01-01%"]).fetchone()[0] >= 1

    # Every alert raised once, every event delivered once.
    per_rule = db.execute(
        "SELECT a.rule_id, count(*) FROM alerts_alert a JOIN sensors_station s ON s.id = a.station_id "
        "WHERE s.code = 'CH-HTTP' GROUP BY a.rule_id"
    ).fetchall()
    assert per_rule and all(count == 1 for _, count in per_rule), per_rule
    events = {row[0] for row in db.execute("SELECT event_id FROM alerts_delivery WHERE state = 'sent'").fetchall()}
    all_events = {row[0] for row in db.execute("SELECT id FROM alerts_alertevent").fetchall()}
    assert events == all_events and events
    delivered = receiver.event_ids()
    assert set(delivered) == events and set(delivered.values()) == {1}, delivered

    # The websocket client on server B stayed connected and shows what a fresh snapshot shows.
    assert watcher.closed is None, watcher.closed
    assert any(k == "degraded" and reason == "redis" for _, k, reason in watcher.kinds)

    def same_as_fresh():
        fresh = asyncio.run(fresh_snapshot(ws_url, origin))
        return fresh if fresh == watcher.states else None

    fresh = wait_for(same_as_fresh, 30, "the live client to match a fresh snapshot", poll=1)
    assert fresh["CH-HTTP"][0] == 3.2 and set(fresh) == {"CH-HTTP", "CH-MQTT"}
    watcher.stop()
    db.close()
    # What the faults did, for the log (-s) and test-artifacts/chaos/summary.json.
    summary = {
        "http": {"acknowledged": len(http.acknowledged), "failures": dict(http.failures),
                 "retry_after": sorted(set(http.retry_after_seen))},
        "mqtt": {"acknowledged": len(mqtt.acknowledged), "failures": dict(mqtt.failures)},
        "live": [kind if reason is None else f"{kind}:{reason}" for _, kind, reason in watcher.kinds
                 if kind not in ("stations", "snapshot")],
        "alert_events_delivered": len(delivered),
    }
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary))
