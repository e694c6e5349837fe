"""`/health/` and the HQ page's processing line: the change log's lag, for monitoring and for staff."""

from datetime import timedelta

from django.utils import timezone

from events.models import OutboxEvent
from sensors.services import observation_ingest
from tests.conftest import make_station


def ingest_without_draining(settings, station):
    settings.EVENTS_DRAIN = "workers"
    observation_ingest(
        municipality=None, items=[{"station": station.code, "observed_at": timezone.now() - timedelta(minutes=1), "value": 1.0}],
        source="http",
    )


def test_health_is_ok_when_nothing_waits(client, db):
    response = client.get("/health/")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["database"] == "ok" and body["events"]["lag_seconds"] == 0
    assert "no-cache" in response["Cache-Control"]


def test_health_degrades_when_the_change_log_lags_and_names_no_station(client, towns, settings):
    station = make_station(towns[0], "SECRET-1", visibility="private")
    ingest_without_draining(settings, station)
    OutboxEvent.objects.update(created_at=timezone.now() - timedelta(seconds=30))
    response = client.get("/health/")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "degraded" and body["events"]["lag_seconds"] >= 30
    assert body["events"]["handlers"]["alerts.evaluate"]["pending"] == 1
    assert b"SECRET" not in response.content and b"town-a" not in response.content


def test_hq_shows_the_processing_lag(client, towns, user_a, settings):
    ingest_without_draining(settings, make_station(towns[0], "R1"))
    OutboxEvent.objects.update(created_at=timezone.now() - timedelta(seconds=12))
    client.force_login(user_a)
    page = client.get("/hq/").content.decode()
    assert "mz-pipeline-degraded" in page and "処理遅延" in page


def test_hq_says_when_postgresql_does_not_vacuum_and_health_does_not_ask(client, towns, user_a, monkeypatch):
    from dashboard import health

    asked = []
    monkeypatch.setattr(health, "autovacuum_state", lambda: asked.append(1) or "off")
    client.force_login(user_a)
    page = client.get("/hq/").content.decode()
    assert "autovacuum" in page and "docs/deployment.md" in page and asked == [1]
    client.get("/health/")
    assert asked == [1]
    monkeypatch.setattr(health, "autovacuum_state", lambda: "on")
    assert "autovacuum" not in client.get("/hq/").content.decode()
    monkeypatch.setattr(health, "autovacuum_state", lambda: None)  # SQLite, or the database not answering
    assert "autovacuum" not in client.get("/hq/").content.decode()
