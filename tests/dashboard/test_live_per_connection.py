"""What one more live websocket costs the process: no client of its own to the cache (Redis in
production) for counting public readers; the count stays right."""

import asyncio

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.core.cache import caches
from django.db import connections

from dashboard.consumers import LiveConsumer
from public import load


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_public_readers_are_counted_through_one_cache_client_per_process(monkeypatch):
    created = []
    real = caches.create_connection

    def counting(alias):
        created.append(alias)
        return real(alias)

    monkeypatch.setattr(caches, "create_connection", counting)
    load.socket_counter.cache_clear()
    await database_sync_to_async(load.socket_counter().delete)(load.PUBLIC_SOCKETS_KEY)

    async def reader():
        ws = WebsocketCommunicator(LiveConsumer.as_asgi(), "/ws/live/?view=public")
        assert (await ws.connect())[0]
        return ws

    try:
        # Each connection is its own task, as under uvicorn.
        readers = await asyncio.gather(*(asyncio.create_task(reader()) for _ in range(8)))
        counted = (await database_sync_to_async(load.current_load)()).public_sockets
        for ws in readers:
            await ws.disconnect()
        left = (await database_sync_to_async(load.current_load)()).public_sockets
    finally:
        load.socket_counter.cache_clear()
        await database_sync_to_async(connections.close_all)()

    assert counted == 8 and left == 0
    assert len(created) == 1
