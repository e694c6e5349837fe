"""The periodic commands the embedded default runs instead of Celery beat."""

import logging
import os
import signal
import threading
from datetime import timedelta
from io import StringIO

import pytest
from django.core import mail
from django.core.management import call_command
from django.utils import timezone

from alerts.models import AlertEvent, Delivery, NotificationChannel
from sensors.models import Station
from tests.conftest import make_station

from .conftest import make_event


def stop_soon(seconds=0.6):
    timer = threading.Timer(seconds, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    return timer


@pytest.mark.django_db(transaction=True)
def test_check_stale_sensors_loops_until_told_to_stop(towns):
    station = make_station(towns[0], "NEVER")  # commissioned a day ago, never heard from
    Station.objects.filter(pk=station.pk).update(created_at=timezone.now() - timedelta(days=1))
    make_station(towns[0], "BUTTON", expected_interval=None)  # reports only above a start level
    out = StringIO()
    stop_soon()
    call_command("check_stale_sensors", "--loop", "--interval", "0.1", stdout=out)
    assert [(e.alert.station.code, e.kind, e.level) for e in AlertEvent.objects.select_related("alert__station")] == [
        ("NEVER", "opened", 1)
    ]
    assert out.getvalue().count("opened") == 1
    # The previous SIGTERM handler is back: the command cleaned up after itself.
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


@pytest.mark.django_db(transaction=True)
def test_dispatch_alerts_sends_what_is_due(towns):
    station = make_station(towns[0], "R1")
    channel = NotificationChannel.objects.create(municipality=towns[0], kind="email", target="hq@town-a.example")
    now = timezone.now()
    for _ in range(3):
        Delivery.objects.create(event=make_event(station), channel=channel, next_attempt_at=now, created_at=now)
    Delivery.objects.create(event=make_event(station), channel=channel, next_attempt_at=now + timedelta(hours=1),
                            created_at=now)
    out = StringIO()
    call_command("dispatch_alerts", "--worker-id", "cli-1", stdout=out)
    assert len(mail.outbox) == 3
    assert sorted(Delivery.objects.values_list("state", flat=True)) == ["pending", "sent", "sent", "sent"]
    assert set(Delivery.objects.filter(state="sent").values_list("claimed_by", flat=True)) == {"cli-1"}
    stop_soon()
    call_command("dispatch_alerts", "--loop", "--interval", "0.1", stdout=StringIO())
    assert len(mail.outbox) == 3


@pytest.mark.django_db(transaction=True)
def test_dispatch_alerts_loop_survives_a_database_restart(towns, monkeypatch, caplog):
    """dispatch_alerts --loop exited on `OperationalError: the database system is shutting down`."""
    from django.db import OperationalError

    import alerts.management.commands.dispatch_alerts as command
    from events import loops

    real_dispatch = command.deliveries_dispatch
    calls = []

    def dispatch_through_a_restart(**kwargs):
        calls.append(1)
        if len(calls) <= 3:
            raise OperationalError("the database system is shutting down")
        if len(calls) == 5:
            os.kill(os.getpid(), signal.SIGTERM)
        return real_dispatch(**kwargs)

    monkeypatch.setattr(command, "deliveries_dispatch", dispatch_through_a_restart)
    monkeypatch.setattr(loops, "backoff_delay", lambda failures, **kwargs: 0.0)
    caplog.set_level(logging.INFO, logger="events.loops")
    call_command("dispatch_alerts", "--loop", "--interval", "0", stdout=StringIO())
    assert len(calls) == 5
    assert [r.levelname for r in caplog.records if r.name == "events.loops"] == ["WARNING", "INFO"]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
