"""FIWARE's Python client, filip, against a live Mizumori: list, filter, read, update, subscribe.

filip pins pydantic, pandas, paho-mqtt and requests versions that clash with the project's, so it
lives in its own virtualenv (var/venv-filip, from requirements-filip.txt; see docs/ngsi.md) and
tests/ngsi/filip_script.py runs there as a subprocess. With MIZUMORI_REQUIRE_SERVICES=1 (CI) a
missing filip venv fails this test; elsewhere it skips with the command that creates it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from ngsi.models import NotifyMapping
from sensors.models import Observation, StationState
from tests.ngsi.conftest import entity_id

FILIP_VERSION = "0.8.1"
SCRIPT = Path(__file__).with_name("filip_script.py")
DEFAULT_FILIP_PYTHON = Path(settings.BASE_DIR) / "var" / "venv-filip" / "bin" / "python"
CREATE_VENV = (
    "python3 -m venv var/venv-filip && var/venv-filip/bin/python -m pip install -r requirements-filip.txt"
)


def services_required() -> bool:
    return os.environ.get("MIZUMORI_REQUIRE_SERVICES", "").strip().lower() in {"1", "true", "yes", "on"}


def filip_python() -> str:
    python = Path(os.environ.get("MIZUMORI_FILIP_PYTHON") or DEFAULT_FILIP_PYTHON)
    problem = None
    if not python.exists():
        problem = f"no filip virtualenv at {python}"
    else:
        probe = subprocess.run(
            [str(python), "-c", "import importlib.metadata as m; print(m.version('filip'))"],
            capture_output=True, text=True, timeout=60,
        )
        if probe.returncode != 0:
            problem = f"{python} cannot import filip: {probe.stderr.strip()[-300:]}"
        elif probe.stdout.strip() != FILIP_VERSION:
            problem = f"{python} has filip {probe.stdout.strip()}, expected {FILIP_VERSION}"
    if problem:
        message = f"{problem}. Create it with: {CREATE_VENV}"
        if services_required():
            pytest.fail(f"MIZUMORI_REQUIRE_SERVICES=1 and {message}", pytrace=False)
        pytest.skip(message)
    return str(python)


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(300)
def test_filip_lists_filters_reads_updates_and_subscribes(live_server, basin, token_a, receiver, eager_celery, settings):
    python = filip_python()
    river, other = entity_id("A-PUBLIC"), entity_id("A-PRIVATE")
    foreign = "urn:ngsi-ld:WaterLevelSensor:upstream-001"
    NotifyMapping.objects.create(entity_id=foreign, attribute="waterLevel", station=basin["a-region"], scale=0.01)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C.UTF-8",
        "MIZUMORI_NGSI_URL": f"{live_server.url}/ngsi",
        "MIZUMORI_TOKEN": token_a,
        "MIZUMORI_SERVICE": "town_a",
        "MIZUMORI_RECEIVER_URL": receiver.url,
        "MIZUMORI_RIVER_ID": river,
        "MIZUMORI_OTHER_ID": other,
        "MIZUMORI_FOREIGN_ID": foreign,
    }
    run = subprocess.run([python, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, f"filip script failed:\n{run.stderr[-4000:]}"
    out = json.loads(run.stdout.strip().splitlines()[-1])

    town_a = sorted(entity_id(code, "rain" if code == "A-RAIN" else "river")
                    for code in ("A-DAM", "A-PRIVATE", "A-PUBLIC", "A-RAIN", "A-REGION"))
    assert out["filip"] == FILIP_VERSION
    assert out["version"] == "3.12.0"
    assert out["all_ids"] == town_a  # Fiware-Service town_a: the town's own stations, private ones included
    assert out["paged_ids"] == [entity_id("A-DAM"), entity_id("A-PRIVATE")]
    assert out["water_over_3"] == [river]
    assert out["pattern_public"] == [river]
    assert out["near"] == [entity_id("A-PRIVATE"), river, entity_id("A-REGION")]
    assert out["key_values"] == {"id": river, "type": "WaterObserved", "height": 3.2, "alertLevel": 2}
    assert out["entity"] == {"id": river, "type": "WaterObserved", "height": 3.2, "location": [140.0, 35.0],
                             "alertLevel": 2}
    assert out["height_value"] == 3.2
    assert out["types"] == ["WaterObserved", "WeatherObserved"]
    assert out["op_query"] == [{"id": river, "height": 3.2}]
    assert out["op_query_normalized"] == [[river, 2]]
    assert out["registrations_url"] == "/v2/registrations"
    assert out["registrations"] == []
    assert out["types_slash"] == [200, ["WaterObserved", "WeatherObserved"]]
    assert out["bad_q"]["status"] == 400 and out["bad_q"]["body"]["error"] == "BadRequest"
    # The notification filip sent to /v2/op/notify became a reading of the mapped station (125 cm).
    assert StationState.objects.get(station__code="A-REGION").value == 1.25

    # The three writes became observations through the ingestion service.
    assert out["height_after"] == 4.5
    written = Observation.objects.filter(source=Observation.Source.NGSI).exclude(station__code="A-REGION")
    assert sorted(written.values_list("station__code", "value")) == [
        ("A-PRIVATE", 1.5), ("A-PRIVATE", 1.75), ("A-PUBLIC", 4.25), ("A-PUBLIC", 4.5)
    ]
    assert StationState.objects.get(station__code="A-PUBLIC").value == 4.5

    # One notification per write batch, in the format the filip subscription asked for.
    notifications = receiver.wait_for(3)
    assert len(notifications) == 3
    assert all(n["json"]["subscriptionId"] == out["subscription_id"] for n in notifications)
    assert all(n["headers"]["fiware-service"] == "town_a" for n in notifications)
    assert notifications[0]["json"]["data"] == [{"id": river, "type": "WaterObserved", "height": 4.25, "alertLevel": 4}]
    assert notifications[1]["json"]["data"] == [{"id": other, "type": "WaterObserved", "height": 1.75, "alertLevel": 0}]
    assert sorted(e["id"] for e in notifications[2]["json"]["data"]) == sorted([river, other])
    assert out["subscription"] == {"status": "active", "timesSent": 3, "url": receiver.url, "attrsFormat": "keyValues"}
    assert out["subscription_ids"] == [out["subscription_id"]]
    assert out["derived_write"]["status"] == 422
    assert out["derived_write"]["body"]["error"] == "Unprocessable"
    assert out["after_delete"] == []


def test_the_filip_script_is_valid_python():
    compile(SCRIPT.read_text(), str(SCRIPT), "exec")
    assert sys.version_info >= (3, 11)
