"""Shared fixtures: two neighbouring towns, each with a private, a region-only and a public station."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model

from sensors.models import Station, StationKind, Threshold, Visibility
from tenancy.models import Membership, Municipality
from tenancy.services import ingest_token_create

RIVER_THRESHOLDS = [
    ("standby", "水防団待機水位", "Flood-fighting standby", None, 2.0),
    ("flood_caution", "氾濫注意水位", "Flood caution", 2, 3.0),
    ("evacuation_decision", "避難判断水位", "Evacuation decision", 3, 3.5),
    ("flood_danger", "氾濫危険水位", "Flood danger", 4, 4.0),
    ("flooding", "氾濫発生", "Flooding", 5, 5.0),
]
# A coastal tide gauge's ladder, in m above T.P.: 高潮注意 / 警戒 / 危険 levels as data, like a river's.
TIDE_THRESHOLDS = [
    ("storm_surge_caution", "高潮注意潮位", "Storm surge caution", 2, 1.2),
    ("storm_surge_alert", "高潮警戒潮位", "Storm surge alert", 3, 1.8),
    ("storm_surge_danger", "高潮危険潮位", "Storm surge danger", 4, 2.4),
]


def make_town(code: str, slug: str, name: str) -> Municipality:
    return Municipality.objects.create(code=code, slug=slug, name_ja=name, name_en=name.title())


def make_station(town, code, *, kind=StationKind.RIVER, visibility=Visibility.PUBLIC, **extra) -> Station:
    unit = {"river": "m", "rain": "mm", "reservoir": "%", "tide": "m"}[kind]
    station = Station.objects.create(
        code=code,
        name_ja=f"{code} 観測所",
        name_en=f"{code} gauge",
        kind=kind,
        municipality=town,
        lon=extra.pop("lon", 140.0),
        lat=extra.pop("lat", 35.0),
        unit=unit,
        visibility=visibility,
        **extra,
    )
    if kind in (StationKind.RIVER, StationKind.TIDE):
        Threshold.objects.bulk_create(
            Threshold(station=station, name=n, label_ja=ja, label_en=en, level=lv, value=v)
            for n, ja, en, lv, v in (RIVER_THRESHOLDS if kind == StationKind.RIVER else TIDE_THRESHOLDS)
        )
    elif kind == StationKind.RAIN:
        Threshold.objects.bulk_create(
            [
                Threshold(station=station, name="rain_1h_heavy", label_ja="大雨(1時間)", label_en="Heavy rain (1 h)",
                          level=3, value=30, window=timedelta(hours=1)),
                Threshold(station=station, name="rain_1h_violent", label_ja="猛烈な雨(1時間)",
                          label_en="Violent rain (1 h)", level=4, value=50, window=timedelta(hours=1)),
            ]
        )
    return station


@pytest.fixture(scope="session", autouse=True)
def celery_tasks_run_in_process():
    """Tasks run eagerly in tests, also when REDIS_URL gives Celery a broker (the service run): no
    worker runs during tests. That the broker answers is checked in tests/test_services_available.py."""
    from config.celery import app

    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True
    yield


@pytest.fixture(scope="session", autouse=True)
def change_log_drains_on_commit():
    """The change-log handlers (alert evaluation, live publishing, NGSI) run right after the writing
    transaction commits, in the test's thread, as Celery tasks run eagerly. Tests of the drain
    itself (tests/events) switch back to workers; the browser tests' servers drain in-process."""
    from django.test import override_settings

    with override_settings(EVENTS_DRAIN="eager"):
        yield


@pytest.fixture(scope="session", autouse=True)
def static_files_under_their_own_names():
    """This process renders pages with the static files' own names (WhiteNoise serves them from the
    source tree), not production's content-hashed ones: those need collectstatic's manifest, which a
    checkout has not (`make test` runs no collectstatic), and a manifest a `make demo` left in
    staticfiles/ would name files of older content. Production's names are tested against a
    collectstatic of the test's own (tests/public/test_static_build.py), and the servers the tests
    start use them (tests/server_settings.py)."""
    from django.conf import settings
    from django.test import override_settings

    from config.build import forget

    unhashed = {**settings.STORAGES, "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"}}
    with override_settings(STORAGES=unhashed):
        forget()
        yield
    forget()


@pytest.fixture(scope="session", autouse=True)
def fast_password_hashing():
    """Passwords are hashed with MD5 in tests, and the servers the tests start read those hashes
    (tests/server_settings.py says why)."""
    from django.test import override_settings

    from tests.server_settings import PASSWORD_HASHERS

    with override_settings(PASSWORD_HASHERS=PASSWORD_HASHERS):
        yield


@pytest.fixture(scope="session", autouse=True)
def api_usage_flushed_by_hand():
    """No background flusher thread writing API usage into the test database; tests call
    tenancy.api_usage.api_usage_flush themselves."""
    from django.conf import settings

    settings.API_USAGE_FLUSH_SECONDS = 0
    yield


@pytest.fixture(autouse=True)
def no_shared_snapshot_from_another_test():
    """Snapshots are shared per sequence number and audience within a process, and station features
    kept per audience (dashboard.features); each test starts afresh."""
    from dashboard import live
    from dashboard.features import forget_audiences
    from public.tick_cache import forget_all

    live._shared_snapshot.clear()
    forget_audiences()
    forget_all()


@pytest.fixture(autouse=True)
def no_recent_readings_from_another_test():
    """The evaluator's copies of recent readings (alerts.recent) trust only committed history; a test's
    rolled-back transaction is a delete of its readings that no trigger sees, and the next test may
    get the same station ids (SQLite)."""
    from alerts.services import recent_readings

    recent_readings.clear()


@pytest.fixture
def towns(db):
    # Fictional codes with valid check digits; prefecture 99 does not exist.
    return make_town("990001", "town-a", "town a"), make_town("990043", "town-b", "town b")


@pytest.fixture
def stations(towns):
    """{"a-private": Station, "a-shared": ..., "a-region": ..., "a-public": ..., "b-private": ...}

    A-SHARED is shared with town B and B-SHARED with town A, each by an active grant.
    """
    from sensors.models import SharingGrant

    result = {}
    for town, prefix in zip(towns, ("A", "B")):
        for visibility in Visibility.values:
            code = f"{prefix}-{visibility.upper()}"
            result[f"{prefix.lower()}-{visibility}"] = make_station(town, code, visibility=visibility)
    SharingGrant.objects.create(station=result["a-shared"], grantor=towns[0], grantee=towns[1])
    SharingGrant.objects.create(station=result["b-shared"], grantor=towns[1], grantee=towns[0])
    return result


@pytest.fixture
def token_a(towns):
    return ingest_token_create(municipality=towns[0], label="test gateway a")[1]


@pytest.fixture
def token_b(towns):
    return ingest_token_create(municipality=towns[1], label="test gateway b")[1]


@pytest.fixture
def user_a(towns):
    user = get_user_model().objects.create_user("a-viewer", password="pw-a-viewer-123")
    Membership.objects.create(user=user, municipality=towns[0], role=Membership.Role.VIEWER)
    return user


@pytest.fixture
def user_b(towns):
    user = get_user_model().objects.create_user("b-viewer", password="pw-b-viewer-123")
    Membership.objects.create(user=user, municipality=towns[1], role=Membership.Role.VIEWER)
    return user


def response_bytes(response) -> bytes:
    """A response's body, streamed or not (on PostgreSQL the database writes history CSV in one piece;
    elsewhere it streams)."""
    return b"".join(response.streaming_content) if response.streaming else response.content
