from .api_usage import api_call_count
from .models import IngestToken
from .selectors import viewer_for_request

COUNTED_PREFIXES = ("/api/", "/ngsi/")


class ApiUsageMiddleware:
    """Counts API and NGSI calls against the town that made them (its gateway token, or the member's
    acting town). Counting is an increment in Redis or memory; `tenancy.api_usage` flushes it."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if request.path.startswith(COUNTED_PREFIXES):
            municipality_id = counted_town(request)
            if municipality_id is not None:
                api_call_count(municipality_id)
        return response


def counted_town(request) -> int | None:
    """The town a finished API request counts against, or None (anonymous, or refused before anyone
    was recognised). DRF copies its authentication onto the request, so a gateway token's town is
    known even for views that never built a viewer (the ingest POST)."""
    viewer = getattr(request, "_mizumori_viewer", None)
    if viewer is None:
        auth = getattr(request, "auth", None)
        if isinstance(auth, IngestToken):
            return auth.municipality_id
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return None
        viewer = viewer_for_request(request)
    return viewer.acting_municipality_id
