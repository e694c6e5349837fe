"""How the change log is stored on PostgreSQL (events migration 0004)."""

import pytest
from django.db import connection

from events import registry
from events.models import OutboxEvent
from events.services import emit


@pytest.fixture
def workers(settings):
    settings.EVENTS_DRAIN = "workers"


@pytest.mark.parametrize("stations", [300, 1000])
def test_a_batchs_payload_is_stored_uncompressed(db, workers, stations):
    """300 station ids are 4 KB of jsonb, 1,000 are 16 KB: pglz compressed every such row on insert,
    for a row the drain reads and deletes moments later."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite has no TOAST")
    registry.register("test.storage", kinds=["test.batch"], func=lambda events: None)
    try:
        emit("test.batch", {"stations": list(range(100_000, 100_000 + stations))})
    finally:
        registry.unregister("test.storage")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT reloptions FROM pg_class WHERE relname = %s", [OutboxEvent._meta.db_table]
        )
        assert "toast_tuple_target=8160" in cursor.fetchone()[0]
        cursor.execute(f"SELECT pg_column_size(payload), octet_length(payload::text) FROM {OutboxEvent._meta.db_table}")
        stored, text = cursor.fetchone()
    assert stored > text > 2000  # the jsonb as it is (larger than its text), not a compressed datum


def test_vacuum_leaves_the_change_logs_empty_pages_in_place(db):
    """A queue's tail pages are empty between vacuums and needed again seconds later: giving them
    back would take a lock that blocks every append (events migration 0005)."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite has no VACUUM options")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.reloptions, t.reloptions FROM pg_class c JOIN pg_class t ON t.oid = c.reltoastrelid "
            "WHERE c.relname = %s",
            [OutboxEvent._meta.db_table],
        )
        table, toast = cursor.fetchone()
    assert "vacuum_truncate=false" in table and "vacuum_truncate=false" in toast
