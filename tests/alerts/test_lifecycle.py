"""Acknowledging and resolving, alone and at the same time, and the one-open-alert invariant."""

import threading
from datetime import timedelta

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from alerts.models import Alert, AlertEvent, AlertRule
from alerts.services import AlertStateError, alert_acknowledge, alert_resolve
from tests.conftest import make_station

from .conftest import ingest, ingest_confirmed, minute_now


def open_alert(station, value=3.6):
    ingest_confirmed(station.code, minute_now() - timedelta(minutes=5), value)
    return Alert.objects.get(station=station, state="open")


def acks(alert):
    return list(
        AlertEvent.objects.filter(alert=alert, kind="acknowledged").order_by("pk").values_list("actor__username", flat=True)
    )


@pytest.mark.django_db(transaction=True)
def test_acknowledge_is_idempotent_per_user(towns, operator_a, operator_a2):
    alert = open_alert(make_station(towns[0], "R1"))
    first = alert_acknowledge(alert, operator_a)
    assert first is not None and alert.state == "acknowledged"
    assert alert_acknowledge(alert, operator_a) is None
    assert alert_acknowledge(alert, operator_a2) is not None
    alert.refresh_from_db()
    assert (alert.state, alert.acknowledged_by) == ("acknowledged", operator_a)
    assert acks(alert) == ["a-operator", "a-operator-2"]


@pytest.mark.django_db(transaction=True)
def test_acknowledgement_survives_escalation_and_resolved_alerts_refuse_it(towns, operator_a):
    station = make_station(towns[0], "R1")
    alert = open_alert(station)
    alert_acknowledge(alert, operator_a)
    ingest(station.code, [(minute_now() - timedelta(minutes=2), 4.1)])
    alert.refresh_from_db()
    assert (alert.level, alert.state) == (4, "acknowledged")
    assert alert_resolve(alert, operator_a).actor == operator_a
    assert alert_resolve(alert, operator_a) is None  # already resolved: nothing recorded
    with pytest.raises(AlertStateError):
        alert_acknowledge(alert, operator_a)
    assert [(e.kind, e.level, e.actor_id) for e in alert.events.order_by("pk")] == [
        ("opened", 3, None), ("acknowledged", 3, operator_a.pk), ("escalated", 4, None), ("resolved", 4, operator_a.pk),
    ]


def run_at_once(*calls):
    barrier = threading.Barrier(len(calls))
    results, errors = [None] * len(calls), []

    def run(index, call):
        try:
            barrier.wait()
            results[index] = call()
        except Exception as exc:  # pragma: no cover - reported by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    return results


@pytest.mark.django_db(transaction=True)
def test_two_operators_acknowledging_at_once_are_both_recorded_once(towns, operator_a, operator_a2):
    alert = open_alert(make_station(towns[0], "R1"))
    for _ in range(3):  # each round adds nothing after the first
        run_at_once(lambda: alert_acknowledge(Alert.objects.get(pk=alert.pk), operator_a),
                    lambda: alert_acknowledge(Alert.objects.get(pk=alert.pk), operator_a2))
    assert sorted(acks(alert)) == ["a-operator", "a-operator-2"]
    alert.refresh_from_db()
    assert alert.state == "acknowledged" and alert.acknowledged_by in (operator_a, operator_a2)


@pytest.mark.django_db(transaction=True)
def test_the_same_operator_acknowledging_twice_at_once_is_recorded_once(towns, operator_a):
    alert = open_alert(make_station(towns[0], "R1"))
    results = run_at_once(*(lambda: alert_acknowledge(Alert.objects.get(pk=alert.pk), operator_a) for _ in range(4)))
    assert sum(result is not None for result in results) == 1
    assert acks(alert) == ["a-operator"]


@pytest.mark.django_db(transaction=True)
def test_acknowledge_and_resolve_racing_leave_a_consistent_trail(towns, operator_a, operator_a2):
    alert = open_alert(make_station(towns[0], "R1"))

    def acknowledge():
        try:
            return alert_acknowledge(Alert.objects.get(pk=alert.pk), operator_a)
        except AlertStateError:
            return "refused"

    run_at_once(acknowledge, lambda: alert_resolve(Alert.objects.get(pk=alert.pk), operator_a2))
    kinds = [e.kind for e in alert.events.order_by("pk")]
    assert kinds in (["opened", "acknowledged", "resolved"], ["opened", "resolved"])
    alert.refresh_from_db()
    assert alert.state == "resolved"


def test_database_refuses_a_second_unresolved_alert_for_a_rule(towns):
    station = make_station(towns[0], "R1")
    rule = AlertRule.objects.create(station=station, kind="threshold", name="x")
    now = timezone.now()
    fields = dict(station=station, rule=rule, level=2, peak_level=2, opened_at=now, updated_at=now)
    Alert.objects.create(state="resolved", **fields)
    Alert.objects.create(state="resolved", **fields)
    Alert.objects.create(state="open", **fields)
    with pytest.raises(IntegrityError), transaction.atomic():
        Alert.objects.create(state="acknowledged", **fields)


def test_database_refuses_a_second_acknowledgement_by_the_same_user(towns, operator_a):
    station = make_station(towns[0], "R1")
    rule = AlertRule.objects.create(station=station, kind="threshold", name="x")
    now = timezone.now()
    alert = Alert.objects.create(station=station, rule=rule, level=2, peak_level=2, opened_at=now, updated_at=now)
    AlertEvent.objects.create(alert=alert, kind="acknowledged", level=2, actor=operator_a, at=now)
    AlertEvent.objects.create(alert=alert, kind="escalated", level=3, at=now)
    AlertEvent.objects.create(alert=alert, kind="escalated", level=4, at=now)  # system events repeat freely
    with pytest.raises(IntegrityError), transaction.atomic():
        AlertEvent.objects.create(alert=alert, kind="acknowledged", level=3, actor=operator_a, at=now)
