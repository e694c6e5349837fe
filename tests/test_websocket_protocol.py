"""`bin/serve`'s websocket protocol (config.websocket): permessage-deflate with a 4 KiB window and a
small memLevel, negotiated with a real client; still uncompressed for a client that does not ask."""

import asyncio
import socket

import pytest
import uvicorn
import websockets

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
        assert reply == '{"type":"stations","features":[]}' * 50
        extensions, reply = await handshake(port, None)
        assert extensions is None and reply.startswith('{"type":"stations"')
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 20)
