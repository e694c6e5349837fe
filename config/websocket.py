"""uvicorn's websocket protocol with a lighter permessage-deflate (`bin/serve` passes `--ws
config.websocket:WebSocketProtocol`).

uvicorn offers the extension with zlib's defaults: a 32 KiB window and memLevel 8, about 256 KiB of
compressor state per connection, most of it touched once a snapshot has gone through. With a
thousand live browsers per process that alone was most of the ASGI worker's memory (docs/
performance.md). These are the settings the websockets library itself recommends for servers
(`enable_server_permessage_deflate`): a 4 KiB window and memLevel 5, about 32 KiB per connection;
live messages and snapshot parts are JSON features of under 1 KiB each, whose repeated keys fit in
the smaller window.

The server does not keep its compression context between messages (`server_no_context_takeover`):
then a message's compressed bytes depend only on the text and the negotiated window, so a live
message going to a thousand browsers of one process is framed and compressed once per negotiated
framing and the same bytes are written to every socket (`send_shared_text`, offered to the
application as the ASGI scope extension SHARED_TEXT). Before, each connection compressed the same
text again through its own compressor, and every send went through channels' and uvicorn's send
wrappers; that per-browser work was most of a live message's cost in the process (docs/
performance.md). It also leaves an idle connection without a compressor (~37 KiB each). Small live
messages compress somewhat less without the shared window; snapshots, sent in large parts, barely.
"""

from __future__ import annotations

from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets import websockets_impl
from websockets.exceptions import ConnectionClosed
from websockets.extensions.permessage_deflate import PerMessageDeflate, ServerPerMessageDeflateFactory
from websockets.frames import Frame, Opcode

WINDOW_BITS = 12
MEM_LEVEL = 5
# The ASGI scope extension through which the application sends one text to many connections:
# scope["extensions"][SHARED_TEXT]["send"](text, wire) writes `text` as a text frame; `wire` is a dict
# the caller keeps with the text and shares between the connections it sends the text to, where the
# framed bytes are kept per negotiated framing.
SHARED_TEXT = "mizumori.shared_text"


def light_deflate() -> ServerPerMessageDeflateFactory:
    return ServerPerMessageDeflateFactory(
        server_no_context_takeover=True,
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
        self._framing: tuple | None = None

    async def run_asgi(self) -> None:
        # The scope is complete once the handshake request is read; the application starts here.
        self.scope.setdefault("extensions", {})[SHARED_TEXT] = {"send": self.send_shared_text}
        await super().run_asgi()

    def framing(self) -> tuple | None:
        """What a text frame's bytes depend on for this connection, or None when they depend on the
        connection itself (a compressor that keeps its context, an extension unknown here)."""
        if self._framing is None:
            if not self.extensions:
                self._framing = ("plain",)
            elif (
                len(self.extensions) == 1
                and isinstance(self.extensions[0], PerMessageDeflate)
                and self.extensions[0].local_no_context_takeover
            ):
                deflate = self.extensions[0]
                self._framing = ("deflate", deflate.local_max_window_bits, tuple(sorted(deflate.compress_settings.items())))
            else:
                self._framing = ("own",)
        return None if self._framing == ("own",) else self._framing

    async def send_shared_text(self, text: str, wire: dict) -> None:
        """Send `text` as one text frame; its bytes come from `wire` when a connection with the same
        framing built them already. Raises ClientDisconnected as uvicorn's `send` does."""
        await self.handshake_completed_event.wait()
        try:
            await self.ensure_open()
            framing = self.framing()
            if framing is None:
                await self.send(text)
                return
            data = wire.get(framing)
            if data is None:
                # A server's frames are not masked; with no context kept, this connection's extension
                # compresses exactly as any other of the same framing would.
                data = wire[framing] = Frame(Opcode.TEXT, text.encode("utf-8")).serialize(
                    mask=False, extensions=self.extensions)
            self.transport.write(data)
            await self.drain()
        except ConnectionClosed as exc:
            raise ClientDisconnected from exc
