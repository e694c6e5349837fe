"""Nothing is cacheable unless it says so: a response without Cache-Control (every staff page, API
answer and error) gets `private, no-store`, so neither a shared proxy nor a browser's back button
keeps a town's private data. The public shell, its base map and the public snapshot set their own
public Cache-Control (public.http); WhiteNoise answers for static files before this runs."""

from __future__ import annotations

NOT_STORED = "private, no-store"


class CachePolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if not response.has_header("Cache-Control"):
            response["Cache-Control"] = NOT_STORED
        return response
