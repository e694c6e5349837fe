"""ASGI middleware: no request body above settings.REQUEST_MAX_BODY_BYTES reaches Django.

Django's ASGI handler copies the whole body into a temporary file before any view runs, whatever
its size; a chunked upload (Transfer-Encoding: chunked, no Content-Length) cannot be refused from
its headers. This reads the body messages, stops at the limit with a 413 JSON answer, and hands
the messages it read to the application otherwise. Endpoints keep their own, smaller limits.
"""

from __future__ import annotations

import json

from django.conf import settings


def _declared_length(scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _refuse(send, limit: int) -> None:
    body = json.dumps({"detail": f"Request body exceeds {limit} bytes; split the batch."}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


class RequestBodyLimit:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = settings.REQUEST_MAX_BODY_BYTES
        declared = _declared_length(scope)
        if declared is not None and declared > limit:
            return await _refuse(send, limit)
        received, size = [], 0
        while True:
            message = await receive()
            received.append(message)
            if message["type"] != "http.request":
                break  # http.disconnect: the application sees it and stops
            size += len(message.get("body", b""))
            if size > limit:
                return await _refuse(send, limit)
            if not message.get("more_body", False):
                break
        pending = iter(received)

        async def replay():
            for message in pending:
                return message
            return await receive()

        return await self.app(scope, replay, send)
