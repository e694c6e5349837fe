"""The whole path: a request stores and emits; workers evaluate alerts and publish, once, in batches."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import fields
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone, translation

from alerts.handlers import EVALUATE, evaluation_handlers, station_changes_evaluate
from alerts.models import Alert, AlertEvent, AlertRule
from events import registry
from events.models import OutboxEvent
from events.services import drain_once, drain_pending
from sensors.services import observation_ingest
from tests.conftest import make_station
from tests.events.workers import drain_in_threads

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def workers(settings):
    settings.EVENTS_DRAIN = "workers"


@pytest.fixture
def evaluation_shards():
    """`use(n)` registers the evaluator as n shards, as ALERT_EVALUATION_SHARDS=n does at start, and
    returns their names; the registration is restored afterwards."""

    def evaluators():
        return [handler for handler in registry.handlers() if handler.name.split("/")[0] == EVALUATE]

    saved = evaluators()

    def use(shards: int) -> list[str]:
        for handler in evaluators():
            registry.unregister(handler.name)
        for name, route in evaluation_handlers(shards):
            registry.register(name, kinds=saved[0].kinds, func=station_changes_evaluate, route=route)
        return [name for name, _ in evaluation_handlers(shards)]

    yield use
    for handler in evaluators():
        registry.unregister(handler.name)
    for handler in saved:
        registry.register(**{f.name: getattr(handler, f.name) for f in fields(handler)})


def river_stations(town, count, prefix="R"):
    return [make_station(town, f"{prefix}{i:03d}") for i in range(count)]


def tick(stations, value, minutes_ago=5):
    """A gateway tick: one reading for each station in one batch."""
    at = timezone.now().replace(microsecond=0) - timedelta(minutes=minutes_ago)
    return observation_ingest(
        municipality=None, items=[{"station": s.code, "observed_at": at, "value": value} for s in stations], source="http"
    )


def opened_per_station():
    return sorted(AlertEvent.objects.filter(kind="opened").values_list("alert__station__code", flat=True))


@pytest.mark.django_db(transaction=True)
def test_two_workers_evaluate_a_batch_exactly_once(towns, workers):
    stations = river_stations(towns[0], 30)
    tick(stations, 4.2)  # above 氾濫危険水位: level 4 equivalent at once
    assert not Alert.objects.exists()  # the request only stored
    errors = drain_in_threads()
    assert not errors
    assert opened_per_station() == sorted(s.code for s in stations)
    assert Alert.objects.filter(level=4).count() == 30
    assert not OutboxEvent.objects.exists()  # the alert events were published too


@pytest.mark.django_db(transaction=True)
def test_evaluation_shards_split_stations_and_two_workers_evaluate_each_once(towns, workers, evaluation_shards):
    names = evaluation_shards(2)
    stations = river_stations(towns[0], 30)
    tick(stations, 4.2)
    shards = {
        handler: payload["stations"]
        for handler, payload in OutboxEvent.objects.filter(handler__in=names).values_list("handler", "payload")
    }
    assert sorted(shards) == sorted(names)  # one row per shard, each with its own stations
    assert sorted(pk for part in shards.values() for pk in part) == sorted(s.pk for s in stations)
    assert all(pk % 2 == names.index(handler) for handler, part in shards.items() for pk in part)
    errors = drain_in_threads()
    assert not errors
    assert opened_per_station() == sorted(s.code for s in stations)
    assert Alert.objects.filter(level=4).count() == 30
    assert not OutboxEvent.objects.exists()


def test_an_evaluator_that_waited_for_rule_locks_judges_what_was_committed_meanwhile(towns, workers, monkeypatch):
    """Two evaluators of one station (a shard count changed under a backlog, a re-run batch): the one
    that got the rule locks second must not set the open alert's figures back to the newest reading
    it saw before it waited."""
    import alerts.services

    station = river_stations(towns[0], 1, "W")
    tick(station, 4.2, minutes_ago=10)
    drain_pending()
    tick(station, 4.3, minutes_ago=5)
    real = alerts.services._locked_rules

    def another_evaluator_first(station_ids):
        monkeypatch.setattr(alerts.services, "_locked_rules", real)
        tick(station, 4.4, minutes_ago=0)  # stored by a later request and evaluated by another worker
        alerts.services.evaluate_stations(station_ids)
        return real(station_ids)

    monkeypatch.setattr(alerts.services, "_locked_rules", another_evaluator_first)
    station_changes_evaluate([("station.changed", {"stations": [station[0].pk]})])
    alert = Alert.objects.get(station=station[0], rule__kind=AlertRule.Kind.THRESHOLD)
    newest = station[0].observations.order_by("-observed_at").first()
    assert (alert.last_value, alert.last_observed_at) == (4.4, newest.observed_at)


@pytest.mark.parametrize("shards", [1, 2])
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_batch_loses_nothing_and_repeats_nothing(towns, workers, evaluation_shards, shards):
    names = evaluation_shards(shards)
    stations = river_stations(towns[0], 5)
    tick(stations, 4.2)
    database = connection.settings_dict
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ALERT_EVALUATION_SHARDS": str(shards)}
    if connection.vendor == "postgresql":
        env["DATABASE_URL"] = (
            f"postgres://{database['USER']}@{database['HOST'] or '127.0.0.1'}:{database['PORT'] or 5432}/{database['NAME']}"
        )
    else:
        env.pop("DATABASE_URL", None)
        env["SQLITE_PATH"] = str(database["NAME"])
    script = (
        "import os, signal, django\n"
        "django.setup()\n"
        "from events import registry\n"
        "from events.services import drain_once\n"
        "real = registry.get('alerts.evaluate')\n"
        "def evaluate_then_die(events):\n"
        "    real.func(events)  # every alert written, not yet committed\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "registry.register('alerts.evaluate', kinds=real.kinds, func=evaluate_then_die)\n"
        "drain_once(handler_names=['alerts.evaluate'])\n"
    )
    connection.close()
    died = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, timeout=120, capture_output=True)
    assert died.returncode == -9, died.stderr.decode()[-2000:]
    assert not Alert.objects.exists()
    assert OutboxEvent.objects.filter(handler__in=names).count() == shards

    drain_pending()
    assert opened_per_station() == sorted(s.code for s in stations)
    drain_pending()
    assert len(opened_per_station()) == 5


def queries_per_drain(town, count, prefix, evaluators):
    stations = river_stations(town, count, prefix)
    tick(stations, 1.0, minutes_ago=20)
    drain_pending()
    # An implausible jump to level 3 everywhere: unconfirmed alerts open at once for HQ, live
    # messages, NGSI notifications.
    tick(stations, 3.6, minutes_ago=10)
    counts = {}
    for name in [*evaluators, "dashboard.live", "ngsi.notify"]:
        with CaptureQueriesContext(connection) as queries:
            drain_once(handler_names=[name])
        counts[name] = len(queries)
    with CaptureQueriesContext(connection) as queries:
        drain_pending()  # the alert events, published
    counts["alerts published"] = len(queries)
    return counts


@pytest.mark.parametrize("shards", [1, 2])
def test_queries_per_drain_batch_do_not_grow_with_the_number_of_stations(towns, workers, monkeypatch, evaluation_shards, shards):
    evaluators = evaluation_shards(shards)
    # The live log trims itself once every TRIM_EVERY messages: a few queries amortised over a
    # hundred messages, which would land in one of the two measured batches by chance.
    monkeypatch.setattr("livelog.services.TRIM_EVERY", 10**9)
    small = queries_per_drain(towns[0], 5, "S", evaluators)
    # 40, not more: on SQLite Django splits a bulk INSERT at 999 parameters, about 49 alert rows, so
    # a larger batch costs one more INSERT there (PostgreSQL has no such split).
    large = queries_per_drain(towns[1], 40, "L", evaluators)
    assert small == large, (small, large)


def test_a_calm_station_costs_no_reading_by_reading_evaluation(towns, workers, monkeypatch):
    """In a storm most stations of a batch stay below every rung: no rule steps through their readings
    one by one (`next_level`) nor walks their jumps, however many there are; a station that crosses
    is stepped."""
    import alerts.evaluation
    import alerts.services

    calls = {"next_level": 0, "is_jump": 0}

    def counting(name, real):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return real(*args, **kwargs)

        return wrapper

    # `levels` judges every step (`level`, one step, goes through it too).
    monkeypatch.setattr(alerts.evaluation.LevelSteps, "levels", counting("next_level", alerts.evaluation.LevelSteps.levels))
    monkeypatch.setattr(alerts.evaluation, "is_jump", counting("is_jump", alerts.evaluation.is_jump))
    calm = river_stations(towns[0], 20, "C")
    for minutes_ago, value in ((40, 1.0), (30, 1.05), (20, 1.1), (10, 1.2)):
        tick(calm, value, minutes_ago=minutes_ago)
        drain_pending()
    assert calls == {"next_level": 0, "is_jump": 0}

    rising = river_stations(towns[1], 1, "X")
    tick(rising, 2.9, minutes_ago=10)
    tick(rising, 3.2, minutes_ago=5)  # past 氾濫注意水位 two readings in a row: level 2 equivalent
    tick(rising, 3.3, minutes_ago=0)
    drain_pending()
    assert calls["next_level"] > 0
    assert Alert.objects.filter(station=rising[0]).exists()


def test_the_live_publishers_features_are_the_stations_features(towns):
    """`live_features_of` (cached stations, states as tuples) gives exactly `station_feature`, for a
    river with a flagged reading, a rain gauge, a station that never reported; and sees an edit."""
    from sensors.models import Threshold
    from sensors.selectors import live_features_of, station_feature, station_list
    from tenancy.selectors import Viewer

    river = make_station(towns[0], "F-RIVER", expected_interval=timedelta(minutes=10))
    rain = make_station(towns[0], "F-RAIN", kind="rain")
    silent = make_station(towns[1], "F-SILENT")
    at = timezone.now().replace(microsecond=0)
    observation_ingest(
        municipality=None, source="http",
        items=[{"station": "F-RIVER", "observed_at": at - timedelta(minutes=m), "value": v}
               for m, v in ((30, 1.0), (20, 1.1), (10, 1.2))]
        + [{"station": "F-RIVER", "observed_at": at, "value": 3.9},  # a jump: flagged, unconfirmed level
           {"station": "F-RAIN", "observed_at": at - timedelta(minutes=10), "value": 12.0},
           {"station": "F-RAIN", "observed_at": at, "value": 25.5}],
    )
    # Readings before, inside and at the edges of the trend window, up and down: the live publisher
    # fetches only the window's edges for a river (sensors.trends.trend_reads_edges_only).
    long = make_station(towns[1], "F-LONG", expected_interval=timedelta(minutes=5))
    observation_ingest(
        municipality=None, source="http",
        items=[{"station": "F-LONG", "observed_at": at - timedelta(minutes=m), "value": v}
               for m, v in ((55, 2.0), (45, 1.0), (30, 1.30), (25, 1.6), (15, 1.1), (5, 1.34), (0, 1.33))],
    )
    ids = [river.pk, rain.pk, silent.pk, long.pk]
    platform = Viewer(is_platform_admin=True)

    def expected():
        stations = station_list(viewer=platform).filter(pk__in=ids)
        return {station.pk: station_feature(station, now=at) for station in stations}

    first = live_features_of(ids, now=at)
    assert first == expected()
    assert first[long.pk]["properties"]["trend"] == "rising"  # 1.30 at the window's start, 1.33 now
    Threshold.objects.filter(station=river, level=4).update(value=3.8)  # the stamp moves: reloaded
    river.refresh_from_db()
    features = live_features_of(ids, now=at)
    assert features == expected()
    assert list(features) == [long.pk, rain.pk, river.pk, silent.pk]  # by code, as the map lists them
    # Each station's fixed parts are kept per language until the stamp moves; a town renamed (towns
    # are not under the stamp) shows its new name in the very next batch.
    assert live_features_of(ids, now=at) == expected()
    with translation.override("en"):
        assert live_features_of(ids, now=at) == expected()
        assert live_features_of(ids, now=at)[river.pk]["properties"]["name"] == "F-RIVER gauge"
    towns[0].slug = "renamed-town"
    towns[0].save(update_fields=["slug"])
    features = live_features_of(ids, now=at)
    assert features == expected()
    assert features[river.pk]["properties"]["municipality"] == "renamed-town"
