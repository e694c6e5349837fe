"""outbound.http.get: the policy first, then a bounded read whether or not the size is announced."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from outbound import http as outbound_http
from outbound.destinations import RefusedDestination


@pytest.fixture
def server():
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # no Content-Length below: the body ends when the connection does

        def do_GET(self):
            self.send_response(200)
            if self.path == "/announced":
                self.send_header("Content-Length", "999999999")
            self.end_headers()
            try:
                self.wfile.write(b"y" * (5000 if self.path == "/unannounced" else 100))
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, *args):
            pass

    served = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=served.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{served.server_address[1]}"
    served.shutdown()
    served.server_close()


def test_bodies_within_the_limit_are_returned(settings, server):
    settings.OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1"]
    assert outbound_http.get(f"{server}/small", timeout=2, max_bytes=1000) == (200, b"y" * 100)


@pytest.mark.parametrize("path", ["/announced", "/unannounced"])
def test_a_longer_body_is_refused_announced_or_not(settings, server, path):
    settings.OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1"]
    with pytest.raises(outbound_http.ResponseTooLarge):
        outbound_http.get(f"{server}{path}", timeout=2, max_bytes=1000)


def test_an_unlisted_host_is_never_asked(settings, server):
    settings.OUTBOUND_ALLOWED_HOSTS = []
    with pytest.raises(RefusedDestination):
        outbound_http.get(f"{server}/small", timeout=2, max_bytes=1000)
