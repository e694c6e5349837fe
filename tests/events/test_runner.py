"""Running the drain: in the ASGI server's own loop (embedded default) and as a worker loop."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import OperationalError, connections
from django.utils import timezone

from dashboard.consumers import LiveConsumer
from events import runner
from events.runner import InProcessDrain, drain_forever
from events.services import DrainReport
from sensors.services import observation_ingest
from tests.conftest import make_station


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_the_in_process_drain_starts_with_the_first_connection_and_publishes(towns, settings):
    settings.EVENTS_DRAIN = "in-process"
    # The snapshot is built off the consumers' sync thread, in the loop's default executor
    # (dashboard.consumers.send_snapshot); one thread there, so the test can close what it opens.
    snapshot_thread = ThreadPoolExecutor(max_workers=1)
    asyncio.get_running_loop().set_default_executor(snapshot_thread)
    await database_sync_to_async(make_station)(towns[0], "IP-1")
    app = InProcessDrain(LiveConsumer.as_asgi())
    ws = WebsocketCommunicator(app, "/ws/live/")
    try:
        assert (await ws.connect())[0]
        assert app._task is not None and not app._task.done()
        await ws.send_json_to({"type": "subscribe", "layers": ["river"]})
        assert (await ws.receive_json_from(timeout=5))["type"] == "subscribed"
        assert (await ws.receive_json_from(timeout=5))["type"] == "snapshot"
        await database_sync_to_async(observation_ingest)(
            municipality=None, items=[{"station": "IP-1", "observed_at": timezone.now() - timedelta(minutes=1), "value": 2.5}],
            source="http",
        )
        message = await ws.receive_json_from(timeout=10)
        assert message["type"] == "stations" and message["features"][0]["properties"]["value"] == 2.5
    finally:
        await ws.disconnect()
        app._stop.set()
        await asyncio.wait_for(app._task, timeout=10)
        # Open sessions keep PostgreSQL from dropping the test database: close them in each thread.
        await database_sync_to_async(connections.close_all)()
        await asyncio.get_running_loop().run_in_executor(snapshot_thread, connections.close_all)
        snapshot_thread.shutdown()


@pytest.mark.asyncio
async def test_the_drain_loop_outlives_a_database_outage_with_one_warning(monkeypatch, caplog):
    """Three failing passes (database down) then success: one warning, one recovery line, no traceback."""
    outcomes = [OperationalError("the database system is shutting down")] * 3 + [DrainReport()] * 50
    calls = []

    def fake_tick():
        calls.append(1)
        outcome = outcomes[min(len(calls) - 1, len(outcomes) - 1)]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    monkeypatch.setattr(runner, "_drain_tick", fake_tick)
    monkeypatch.setattr(runner, "_start_listening", lambda *args: None)  # the poll alone; no database here
    monkeypatch.setattr(runner, "OUTAGE_BACKOFF_MAX_SECONDS", 0.02)
    stop = asyncio.Event()
    caplog.set_level(logging.INFO, logger="events.runner")
    task = asyncio.create_task(drain_forever(stop=stop, idle_seconds=0.01, name="test drain"))
    for _ in range(200):
        if len(calls) >= 6:
            break
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, timeout=5)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "database or Redis unavailable" in warnings[0].getMessage()
    assert "the database system is shutting down" in warnings[0].getMessage() and not warnings[0].exc_info
    assert any("reachable again after" in r.getMessage() for r in caplog.records)


postgres_only = pytest.mark.skipif(
    connections["default"].vendor != "postgresql", reason="LISTEN/NOTIFY is PostgreSQL's; SQLite workers poll"
)


@postgres_only
@pytest.mark.django_db
def test_a_committed_change_log_row_notifies_the_listening_workers():
    import psycopg

    with psycopg.connect(autocommit=True, **runner._listen_params()) as conn:
        conn.execute(f"LISTEN {runner.NOTIFY_CHANNEL}")
        conn.execute(
            "INSERT INTO events_outboxevent (kind, handler, payload, created_at, available_at, attempts, last_error) "
            "VALUES ('test.kind', 'test.handler', '{}', now(), now(), 0, '')"
        )
        conn.execute("DELETE FROM events_outboxevent WHERE handler = 'test.handler'")
        heard = [note.channel for note in conn.notifies(timeout=5, stop_after=1)]
    assert heard == [runner.NOTIFY_CHANNEL]


@postgres_only
@pytest.mark.asyncio
@pytest.mark.django_db
async def test_a_notification_wakes_an_idle_worker_before_its_next_poll(monkeypatch):
    """Polling every 30 s, the worker still runs a pass as soon as a commit notifies it."""
    import psycopg

    calls = []
    more = asyncio.Event()
    loop = asyncio.get_running_loop()

    def fake_tick():  # in the drain's worker thread
        calls.append(1)
        loop.call_soon_threadsafe(more.set)
        return DrainReport()

    async def ticks(count):
        while len(calls) < count:
            await asyncio.wait_for(more.wait(), timeout=10)
            more.clear()

    monkeypatch.setattr(runner, "_drain_tick", fake_tick)
    stop = asyncio.Event()
    task = asyncio.create_task(drain_forever(stop=stop, idle_seconds=30, name="test drain"))
    try:
        await ticks(2)  # the first pass, and the one the listener asks for once it listens
        async with await psycopg.AsyncConnection.connect(autocommit=True, **runner._listen_params()) as conn:
            await conn.execute(f"NOTIFY {runner.NOTIFY_CHANNEL}")
        await ticks(3)
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=5)
    assert len(calls) == 3
