"""One HTTP POST (or GET) to a user- or operator-chosen URL, connecting only to addresses the destination policy checked.

Resolving the name for the check and again for the connection would let a name that changes in
between (DNS rebinding) point the connection inside; here the connection goes to the checked
address itself, with the URL's host in the Host header and, for https, in SNI and the certificate
check. Redirects are never followed: a 3xx is an answer like any other.
"""

from __future__ import annotations

import http.client
import socket
from urllib.parse import urlsplit

from .destinations import Address, RefusedDestination, checked_addresses

MAX_RESPONSE_BYTES = 64 * 1024


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, address: Address, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self.pinned_address = str(address)

    def connect(self):
        self.sock = socket.create_connection((self.pinned_address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, address: Address, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self.pinned_address = str(address)

    def connect(self):
        sock = socket.create_connection((self.pinned_address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


class ResponseTooLarge(ValueError):
    """The answer was longer than the caller accepts; it was not read further."""


def _connection(url: str, timeout: float):
    addresses = checked_addresses(url, resolve_names=True)
    if not addresses:
        raise ConnectionError(f"{urlsplit(url).hostname} does not resolve to an address")
    parts = urlsplit(url)
    connection_class = _PinnedHTTPSConnection if parts.scheme.lower() == "https" else _PinnedHTTPConnection
    connection = connection_class(parts.hostname, parts.port or (443 if connection_class is _PinnedHTTPSConnection else 80),
                                  addresses[0], timeout)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return connection, target


def post(url: str, body: bytes, headers: dict[str, str], *, timeout: float) -> int:
    """POST and return the status code. RefusedDestination when the policy refuses the URL (nothing
    was sent); OSError or http.client.HTTPException when the exchange fails."""
    connection, target = _connection(url, timeout)
    try:
        connection.request("POST", target, body=body, headers=headers)
        response = connection.getresponse()
        response.read(MAX_RESPONSE_BYTES)
        return response.status
    finally:
        connection.close()


def get(url: str, *, timeout: float, max_bytes: int, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """GET and return (status, body). The same policy and pinning as `post`; `timeout` applies to
    connecting and to each read; ResponseTooLarge when the body (announced or read) exceeds
    `max_bytes`, so a hostile or broken server cannot fill memory."""
    connection, target = _connection(url, timeout)
    try:
        connection.request("GET", target, headers=headers or {})
        response = connection.getresponse()
        announced = response.getheader("Content-Length")
        if announced and announced.isdigit() and int(announced) > max_bytes:
            raise ResponseTooLarge(f"the answer announces {int(announced)} bytes, more than {max_bytes}")
        body = response.read(max_bytes + 1)
        if len(body) > max_bytes:
            raise ResponseTooLarge(f"the answer is longer than {max_bytes} bytes")
        return response.status, body
    finally:
        connection.close()


__all__ = ["RefusedDestination", "ResponseTooLarge", "get", "post"]
