"""Django's ASGI handler, except that a few hot paths run their whole middleware chain and view in
one worker thread, as under WSGI.

Under ASGI Django's handler is async at the core: a sync middleware chain around a sync view hops
between the event loop and a worker thread at every boundary (sync middleware, the async-capable
axes middleware, the view, back out), several thread switches per request. On a loaded machine each
switch waits for the scheduler; for a gateway tick they cost more than storing its readings. The
paths listed here get one hop in and one out, through the same MIDDLEWARE (loaded in sync mode), so
headers, error handling, usage counting and lockouts behave as on every other path.
"""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.base import BaseHandler
from django.urls import reverse

# URL names of sync views only (an async view would be run through async_to_sync here).
SYNC_URL_NAMES = ("api-observations-ingest",)


class SyncPathsASGIHandler(ASGIHandler):
    def __init__(self, url_names=SYNC_URL_NAMES):
        super().__init__()
        self.sync_paths = frozenset(reverse(name) for name in url_names)
        self.sync_handler = BaseHandler()
        self.sync_handler.load_middleware(is_async=False)

    async def get_response_async(self, request):
        if request.path_info in self.sync_paths:
            return await sync_to_async(self.sync_handler.get_response, thread_sensitive=True)(request)
        return await super().get_response_async(request)
