"""NGSI fixtures: a small basin with readings, a recording HTTP receiver on 127.0.0.1, eager Celery."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from events.models import OutboxEvent

from sensors.models import StationKind, Visibility
from sensors.services import observation_ingest
from tests.conftest import make_station

NGSI = "/ngsi/v2"
T0 = datetime(2026, 11, 21, 12, 0, tzinfo=timezone.utc)
NOT_FOUND = {"error": "NotFound", "description": "The requested entity has not been found. Check type and id"}


def entity_id(code: str, kind: str = "river") -> str:
    entity_type = "WeatherObserved" if kind == "rain" else "WaterObserved"
    return f"urn:ngsi-ld:{entity_type}:{code}"


def bearer(token: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def codes(entities) -> list[str]:
    return sorted(entity["id"].rsplit(":", 1)[1] for entity in entities)


@pytest.fixture
def basin(towns):
    """In each town a private, a region and a public river gauge (all at 35.0 N, 140.0 E), plus a rain
    gauge and a dam in town A and a region rain gauge in town B, away from them; one reading each,
    A-PUBLIC above flood caution. Built here rather than from the shared `stations` fixture so that
    new visibility kinds elsewhere do not change what these tests count."""
    town_a, town_b = towns
    stations = {
        f"{prefix.lower()}-{visibility}": make_station(town, f"{prefix}-{visibility.upper()}", visibility=visibility)
        for town, prefix in ((town_a, "A"), (town_b, "B"))
        for visibility in (Visibility.PRIVATE, Visibility.REGION, Visibility.PUBLIC)
    }
    extra = {
        "a-rain": make_station(town_a, "A-RAIN", kind=StationKind.RAIN, lon=140.10, lat=35.05),
        "a-dam": make_station(town_a, "A-DAM", kind=StationKind.RESERVOIR, lon=140.50, lat=35.30),
        "b-rain": make_station(town_b, "B-RAIN", kind=StationKind.RAIN, lon=139.50, lat=34.60,
                               visibility=Visibility.REGION),
    }
    values = {"A-PRIVATE": 1.0, "A-REGION": 2.5, "A-PUBLIC": 3.2, "B-PRIVATE": 4.1, "B-REGION": 0.5,
              "B-PUBLIC": 2.0, "A-RAIN": 12.0, "A-DAM": 87.5, "B-RAIN": 3.0}
    report = observation_ingest(
        municipality=None,
        items=[{"station": code, "observed_at": T0, "value": value} for code, value in values.items()],
        source="seed",
        now=T0 + timedelta(minutes=1),
    )
    assert report.accepted == len(values), report.rejected
    # The basin's readings are its history, not news: subscriptions hear only of the tests' own.
    OutboxEvent.objects.all().delete()
    return {**stations, **extra}


class Receiver:
    """Records every POST; answers with the queued statuses first, then `default_status`."""

    def __init__(self):
        self.requests: list[dict] = []
        self.statuses: deque[int] = deque()
        self.default_status = 204
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver.lock:
                    status = receiver.statuses.popleft() if receiver.statuses else receiver.default_status
                    receiver.requests.append(
                        {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                         "json": json.loads(body), "status": status}
                    )
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/notify"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.requests) >= count:
                    return list(self.requests)
            time.sleep(0.02)
        return list(self.requests)


@pytest.fixture
def receiver(settings):
    server = Receiver()
    server.thread.start()
    settings.NGSI_NOTIFY_ALLOWED_HOSTS = [f"127.0.0.1:{server.port}"]
    yield server
    server.server.shutdown()
    server.server.server_close()


@pytest.fixture
def eager_celery():
    """Run notification tasks in-process also where a broker is configured (CI's Redis run has no worker)."""
    from config.celery import app

    saved = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager, app.conf.task_eager_propagates = True, True
    yield app
    app.conf.task_always_eager, app.conf.task_eager_propagates = saved
