"""uvicorn's websocket protocol with a lighter permessage-deflate (`bin/serve` passes `--ws
config.websocket:WebSocketProtocol`).

uvicorn offers the extension with zlib's defaults: a 32 KiB window and memLevel 8, about 256 KiB of
compressor state per connection, most of it touched once a snapshot has gone through. With a
thousand live browsers per process that alone was most of the ASGI worker's memory (docs/
performance.md). These are the settings the websockets library itself recommends for servers
(`enable_server_permessage_deflate`): a 4 KiB window and memLevel 5, about 32 KiB per connection;
live messages and snapshot parts are JSON features of under 1 KiB each, whose repeated keys fit in
the smaller window.
"""

from __future__ import annotations

from uvicorn.protocols.websockets import websockets_impl
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory

WINDOW_BITS = 12
MEM_LEVEL = 5


def light_deflate() -> ServerPerMessageDeflateFactory:
    return ServerPerMessageDeflateFactory(
        server_max_window_bits=WINDOW_BITS,
        client_max_window_bits=WINDOW_BITS,
        compress_settings={"memLevel": MEM_LEVEL},
    )


class WebSocketProtocol(websockets_impl.WebSocketProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # uvicorn's own choice (None when --ws-per-message-deflate is off), replaced, not added to.
        if self.available_extensions:
            self.available_extensions = [light_deflate()]
