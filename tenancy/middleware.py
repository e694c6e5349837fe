from .services import api_usage_count

COUNTED_PREFIXES = ("/api/", "/ngsi/")


class ApiUsageMiddleware:
    """Counts API and NGSI calls against the town that made them (its token, or the member's town)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if request.path.startswith(COUNTED_PREFIXES):
            viewer = getattr(request, "_mizumori_viewer", None)
            if viewer is not None and viewer.acting_municipality_id is not None:
                api_usage_count(municipality_id=viewer.acting_municipality_id)
        return response
