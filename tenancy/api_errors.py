"""Error bodies of the REST API under /api/v1/, as OpenAPI responses that every app's views declare
(one description of each shape, so the schema and the replies cannot drift apart per app)."""

from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers

# A refused request: {"detail": "..."} for the request as a whole, or {"<parameter>": "..."} naming
# the query parameter at fault (DRF's ValidationError with a dict), so `detail` is not always there.
REQUEST_ERROR = OpenApiResponse(
    inline_serializer("RequestError", {"detail": serializers.CharField(required=False)}),
    description='{"detail": "..."}, or {"<parameter>": "..."} naming the query parameter at fault.',
)
