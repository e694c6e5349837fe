from django.contrib.auth.models import AnonymousUser
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from .selectors import ingest_token_by_secret
from .services import ingest_token_mark_used


class BearerTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <token>` for sensor gateways; `request.auth` becomes the IngestToken."""

    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Authorization header must be 'Bearer <token>'.")
        try:
            secret = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Token contains non-ASCII characters.") from None
        token = ingest_token_by_secret(secret)
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked token.")
        ingest_token_mark_used(token=token)
        return AnonymousUser(), token

    def authenticate_header(self, request):
        return self.keyword


class BearerTokenScheme(OpenApiAuthenticationExtension):
    """Documents gateway tokens in /api/schema/ (drf-spectacular finds it by `target_class`)."""

    target_class = "tenancy.authentication.BearerTokenAuthentication"
    name = "gatewayToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A municipality's gateway token from `manage.py create_ingest_token <slug>`.",
        }
