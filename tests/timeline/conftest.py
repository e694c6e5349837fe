"""A controllable clock for replaying a storm "live": the code under test reads django.utils.timezone.now."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from sensors.services import observation_ingest


class Clock:
    def __init__(self, start: datetime):
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@pytest.fixture
def clock(monkeypatch):
    """Starts 12 hours ago on a whole minute; `clock.now = …` or `clock.advance(minutes=10)` moves it."""
    real = timezone.now()
    fake = Clock(real.replace(second=0, microsecond=0) - timedelta(hours=12))
    monkeypatch.setattr(timezone, "now", fake)
    fake.real = real
    return fake


def ingest(code: str, at: datetime, value: float, capture=None):
    """One gateway batch of one reading; with `capture` (django_capture_on_commit_callbacks) the
    change-log handlers (alert evaluation) run as after a real commit."""
    items = [{"station": code, "observed_at": at, "value": value}]
    if capture is None:
        return observation_ingest(municipality=None, items=items, source="sim")
    with capture(execute=True):
        return observation_ingest(municipality=None, items=items, source="sim")
