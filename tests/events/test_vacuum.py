"""events.vacuum: the deploy check that warns when PostgreSQL does not vacuum, and the benchmarks' stand-in."""

from __future__ import annotations

import pytest
from django.core.checks import run_checks
from django.db import OperationalError, connection

from events import vacuum

on_postgresql = pytest.mark.skipif(connection.vendor != "postgresql", reason="autovacuum is PostgreSQL's")
on_sqlite = pytest.mark.skipif(connection.vendor != "sqlite", reason="the SQLite case")


def deploy_warnings():
    return [message for message in run_checks(include_deployment_checks=True) if message.id == "events.W001"]


@pytest.fixture
def as_postgresql(monkeypatch):
    """Whatever the test database is, the check sees PostgreSQL and reads `setting` from the stub."""
    answers = []

    def answer(setting):
        def fake(cursor):
            answers.append(setting)
            if isinstance(setting, Exception):
                raise setting
            return setting

        monkeypatch.setattr(connection, "vendor", "postgresql")
        monkeypatch.setattr(vacuum, "autovacuum_setting", fake)
        return answers

    return answer


def test_autovacuum_off_is_a_deploy_warning_naming_the_hot_tables_and_the_docs(db, as_postgresql):
    asked = as_postgresql("off")
    [warning] = deploy_warnings()
    assert asked == ["off"]
    assert "autovacuum = off" in warning.msg
    assert all(table in warning.msg for table in ("sensors_stationstate", "events_outboxevent", "livelog_livemessage"))
    assert "docs/deployment.md" in warning.hint


def test_autovacuum_on_is_no_warning(db, as_postgresql):
    asked = as_postgresql("on")
    assert deploy_warnings() == []
    assert asked == ["on"]


def test_an_unreachable_database_is_no_warning_and_no_failure(db, as_postgresql):
    as_postgresql(OperationalError("connection refused"))
    assert deploy_warnings() == []


def test_the_check_is_a_deploy_check_only(db, as_postgresql):
    asked = as_postgresql("off")
    assert not [message for message in run_checks() if message.id == "events.W001"]
    assert asked == []


@on_postgresql
def test_the_check_reads_the_real_setting(db):
    with connection.cursor() as cursor:
        setting = vacuum.autovacuum_setting(cursor)
    assert setting in ("on", "off")
    assert len(deploy_warnings()) == (1 if setting == "off" else 0)


@on_sqlite
def test_sqlite_is_no_warning_and_no_query(db, django_assert_num_queries):
    with django_assert_num_queries(0):
        assert deploy_warnings() == []


def test_a_table_is_due_past_autovacuums_default_threshold():
    # 50 + 0.2 × live dead tuples, as PostgreSQL's autovacuum_vacuum_threshold and _scale_factor.
    assert not vacuum.vacuum_due(live=0, dead=50)
    assert vacuum.vacuum_due(live=0, dead=51)
    assert not vacuum.vacuum_due(live=1026, dead=255)
    assert vacuum.vacuum_due(live=1026, dead=256)
    assert vacuum.vacuum_due(live=1026, dead=104_000)


@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_the_worker_vacuums_a_bloated_hot_table_and_leaves_a_clean_one():
    from django.utils import timezone

    from events.models import OutboxEvent

    dsn = " ".join(f"{key}={value}" for key, value in connection.get_connection_params().items()
                   if key in ("host", "port", "user", "dbname", "password") and value)
    with connection.cursor() as cursor:
        # Should the server vacuum by itself, it must not get to this table first.
        cursor.execute("ALTER TABLE events_outboxevent SET (autovacuum_enabled = false)")
    try:
        now = timezone.now()
        # Handled change-log rows, deleted as the drain does: 500 dead tuples, far past 50 + 0.2 × 0.
        OutboxEvent.objects.bulk_create(
            OutboxEvent(kind="test.thing", handler="test.record", payload={}, created_at=now, available_at=now)
            for _ in range(500)
        )
        OutboxEvent.objects.all().delete()
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_stat_force_next_flush()")
        worker = vacuum.VacuumWorker(dsn, interval=0.05, tables=("events_outboxevent", "alerts_alertrule"))
        worker.start()
        try:
            for _ in range(200):
                if worker.vacuums:
                    break
                worker.join(0.05)
        finally:
            worker.stop()
    finally:
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE events_outboxevent RESET (autovacuum_enabled)")
    assert worker.error is None
    assert worker.vacuums == {"events_outboxevent": 1}  # once: the vacuum cleared what made it due
    assert worker.summary().startswith("1 VACUUM (ANALYZE) in ")
