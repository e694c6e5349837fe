"""REST for dam release notices: anyone reads them; the dam's town posts, updates and ends them."""

from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.exceptions import NotAuthenticated, NotFound, PermissionDenied, ValidationError
from rest_framework.parsers import JSONParser
from rest_framework.response import Response
from rest_framework.views import APIView

from alerts.api import CapXMLRenderer
from alerts.cap import CONTENT_TYPE as CAP_CONTENT_TYPE
from rest_framework.renderers import JSONRenderer
from sensors.api import ERROR
from tenancy.api_errors import REQUEST_ERROR
from tenancy.models import IngestToken, Municipality
from tenancy.selectors import viewer_for_request

from .cap import cap_release
from .models import DamRelease
from .selectors import may_manage, release_document, release_get, releases_in_force
from .services import ReleaseError, release_discharge_set, release_end, release_post

RELEASE = OpenApiResponse(OpenApiTypes.OBJECT, description="One dam release notice (release_document).")
DENIED = {
    401: OpenApiResponse(ERROR, description="No token and not logged in."),
    403: OpenApiResponse(ERROR, description="Not the dam's town (its gateway token, or its operators acting for it)."),
}


def _token(request) -> IngestToken | None:
    return request.auth if isinstance(request.auth, IngestToken) else None


def _acting_town(request) -> Municipality:
    token = _token(request)
    if token is not None:
        return token.municipality
    viewer = viewer_for_request(request)
    if viewer.is_anonymous:
        raise NotAuthenticated("A gateway token or a logged-in operator of the dam's town is required.")
    if viewer.acting_municipality_id is None or not may_manage(
        viewer=viewer, token=None, release_town_id=viewer.acting_municipality_id
    ):
        raise PermissionDenied("Only operators and admins of the dam's town, acting for it, post release notices.")
    return Municipality.objects.get(pk=viewer.acting_municipality_id)


def _release_for_change(request, release_id: int) -> DamRelease:
    try:
        release = release_get(pk=release_id)
    except DamRelease.DoesNotExist:
        raise NotFound("No release notice with this id.") from None
    token, viewer = _token(request), viewer_for_request(request)
    if token is None and viewer.is_anonymous:
        raise NotAuthenticated("A gateway token or a logged-in operator of the dam's town is required.")
    if not may_manage(viewer=viewer, token=token, release_town_id=release.municipality_id):
        raise PermissionDenied("Only the dam's town changes its release notices.")
    return release


def _invalid(exc: ReleaseError) -> ValidationError:
    return ValidationError(exc.errors)


class ReleaseListAPI(APIView):
    parser_classes = [JSONParser]

    @extend_schema(operation_id="releases_list", summary="Dam release notices in force (public).",
                   responses={200: OpenApiResponse(OpenApiTypes.OBJECT, description='{"releases": [...]}')})
    def get(self, request):
        return Response({"releases": [release_document(release) for release in releases_in_force()]})

    @extend_schema(
        operation_id="releases_post",
        summary="Post a dam release notice (the dam's gateway token, or an operator of its town).",
        request=OpenApiTypes.OBJECT,
        responses={201: RELEASE, 400: REQUEST_ERROR, **DENIED},
    )
    def post(self, request):
        town = _acting_town(request)
        try:
            release = release_post(
                municipality=town, document=request.data,
                user=request.user if request.user.is_authenticated else None,
            )
        except ReleaseError as exc:
            raise _invalid(exc) from None
        return Response(release_document(release_get(pk=release.pk)), status=201)


class ReleaseDetailAPI(APIView):
    parser_classes = [JSONParser]

    @extend_schema(operation_id="releases_get", summary="One dam release notice (public).",
                   responses={200: RELEASE, 404: ERROR})
    def get(self, request, release_id: int):
        try:
            return Response(release_document(release_get(pk=release_id)))
        except DamRelease.DoesNotExist:
            raise NotFound("No release notice with this id.") from None

    @extend_schema(
        operation_id="releases_update", summary="Report the current discharge (m³/s).",
        request=OpenApiTypes.OBJECT, responses={200: RELEASE, 400: REQUEST_ERROR, 404: ERROR, **DENIED},
    )
    def patch(self, request, release_id: int):
        release = _release_for_change(request, release_id)
        if not isinstance(request.data, dict) or set(request.data) != {"current_discharge"}:
            raise ValidationError({"detail": 'Send {"current_discharge": <m³/s>}.'})
        try:
            release_discharge_set(release=release, current_discharge=request.data["current_discharge"])
        except ReleaseError as exc:
            raise _invalid(exc) from None
        return Response(release_document(release))


class ReleaseEndAPI(APIView):
    @extend_schema(operation_id="releases_end", summary="End a release notice now (repeating it is harmless).",
                   request=None, responses={200: RELEASE, 404: ERROR, **DENIED})
    def post(self, request, release_id: int):
        release = _release_for_change(request, release_id)
        release_end(release=release, user=request.user if request.user.is_authenticated else None)
        return Response(release_document(release))


class ReleaseCapAPI(APIView):
    renderer_classes = [JSONRenderer, CapXMLRenderer]

    @extend_schema(operation_id="releases_cap", summary="The notice as an OASIS CAP 1.2 message (event 放流).",
                   responses={(200, CAP_CONTENT_TYPE): OpenApiTypes.STR, 404: ERROR})
    def get(self, request, release_id: int):
        try:
            release = release_get(pk=release_id)
        except DamRelease.DoesNotExist:
            raise NotFound("No release notice with this id.") from None
        return HttpResponse(cap_release(release), content_type=f"{CAP_CONTENT_TYPE}; charset=utf-8")
