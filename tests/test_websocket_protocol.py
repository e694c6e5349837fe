"""`bin/serve`'s websocket protocol (config.websocket): permessage-deflate with a 4 KiB window and a
small memLevel, negotiated with a real client; still uncompressed for a client that does not ask."""

import asyncio
import socket

import pytest
import uvicorn
import websockets

from config import websocket
from config.websocket import WINDOW_BITS


async def echo_app(scope, receive, send):
    assert scope["type"] == "websocket"
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] != "websocket.receive":
            return
        await send({"type": "websocket.send", "text": message["text"] * 50})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def handshake(port: int, compression):
    async with websockets.connect(f"ws://127.0.0.1:{port}/", compression=compression, open_timeout=20) as ws:
        await ws.send('{"type":"stations","features":[]}')
        reply = await asyncio.wait_for(ws.recv(), 20)
        return ws.response.headers.get("Sec-WebSocket-Extensions"), reply


@pytest.mark.asyncio
async def test_the_served_protocol_negotiates_a_small_deflate_window():
    port = free_port()
    config = uvicorn.Config(echo_app, host="127.0.0.1", port=port, ws="config.websocket:WebSocketProtocol",
                            lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(200):
            if server.started:
                break
            await asyncio.sleep(0.05)
        extensions, reply = await handshake(port, "deflate")
        assert extensions is not None and "permessage-deflate" in extensions
        assert f"server_max_window_bits={WINDOW_BITS}" in extensions
        # No compression context kept between messages: what lets one message's bytes be shared.
        assert "server_no_context_takeover" in extensions
        assert reply == '{"type":"stations","features":[]}' * 50
        extensions, reply = await handshake(port, None)
        assert extensions is None and reply.startswith('{"type":"stations"')
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 20)


async def serve(app):
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, ws="config.websocket:WebSocketProtocol",
                            lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(200):
        if server.started:
            break
        await asyncio.sleep(0.05)
    return port, server, task


@pytest.mark.asyncio
async def test_a_shared_text_is_framed_once_per_framing_and_reaches_every_client_intact(monkeypatch):
    """The live fan-out's path (SHARED_TEXT): the same bytes to every socket of one framing, built
    once, decoded by each client to exactly the text, compressed or not, message after message."""
    texts = ['{"type":"stations","features":[{"name":"警戒レベル4相当 観測所"}]}' * 40, '{"type":"stations","seq":2}' * 30]
    wires = [{}, {}]
    built = []

    class CountingFrame(websocket.Frame):
        def serialize(self, **kwargs):
            built.append(kwargs["extensions"])
            return super().serialize(**kwargs)

    monkeypatch.setattr(websocket, "Frame", CountingFrame)

    async def app(scope, receive, send):
        await receive()
        await send({"type": "websocket.accept"})
        send_shared = scope["extensions"][websocket.SHARED_TEXT]["send"]
        while (await receive())["type"] == "websocket.receive":
            for text, wire in zip(texts, wires):
                await send_shared(text, wire)

    port, server, task = await serve(app)
    try:
        clients = [await websockets.connect(f"ws://127.0.0.1:{port}/", compression=c, open_timeout=20)
                   for c in ("deflate", "deflate", None, "deflate", None)]
        for ws in clients:
            await ws.send("go")
            assert [await asyncio.wait_for(ws.recv(), 20) for _ in texts] == texts
        plain, deflate = ("plain",), ("deflate", websocket.WINDOW_BITS, (("memLevel", websocket.MEM_LEVEL),))
        for wire in wires:
            assert set(wire) == {plain, deflate}
            assert len(wire[deflate]) < len(wire[plain]) / 3
        # Two texts, two framings: four frames built for five clients.
        assert len(built) == 4
        for ws in clients:
            await ws.close()
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 20)
