"""NGSI-v2 endpoints at /ngsi (see docs/ngsi.md). Thin: read headers, query and body, call a
selector or a service, render; every error leaves as Orion's `{"error", "description"}`."""

from __future__ import annotations

import json

from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import exceptions, serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView

from sensors.parsers import json_integer
from tenancy.authentication import BearerTokenAuthentication
from tenancy.models import IngestToken
from tenancy.selectors import viewer_for_request

from .conf import ngsi_setting
from .documents import render_subscription
from .entities import render_attribute, render_attrs, render_entity, type_descriptions
from .errors import (
    ATTRIBUTE_NOT_FOUND,
    ENTITY_NOT_FOUND,
    BadRequest,
    Forbidden,
    MethodNotAllowed,
    NgsiError,
    NotFound,
    REGISTRATION_NOT_FOUND,
    REGISTRATIONS_UNSUPPORTED,
    RequestEntityTooLarge,
    Unauthorized,
    Unprocessable,
    UnsupportedMediaType,
)
from .filters import (
    READ_OPTIONS,
    attrs_format_of,
    parse_entity_filter,
    parse_names,
    parse_options,
    parse_order_by,
    parse_page,
    parse_query_document,
    sort_entities,
    unique_values,
)
from .order_entities import is_order_id, order_entities, order_entity_get
from .release_entities import ALERT_TYPE, is_release_id, release_entities, release_entity_create, release_entity_get
from .selectors import (
    Tenant,
    entity_get,
    entity_query,
    entity_search,
    subscription_get,
    subscriptions_of,
    tenant_for,
)
from .services import (
    attribute_write,
    entities_batch_update,
    entity_attributes_write,
    entity_create,
    notification_ingest,
    subscription_check_manager,
    subscription_create,
    subscription_delete,
    subscription_update,
)
from .version import version_document

WRITE_OPTIONS = {"keyValues", "normalized", "forcedUpdate", "overrideMetadata", "skipForwarding"}


# --- responses ------------------------------------------------------------------------------------


def ngsi_json(data, status: int = 200, headers: dict | None = None) -> HttpResponse:
    response = HttpResponse(
        json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":")),
        status=status,
        content_type="application/json",
    )
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def ngsi_error(error: NgsiError) -> HttpResponse:
    response = ngsi_json(error.as_body(), status=error.status)
    if error.status == 401:
        response["WWW-Authenticate"] = "Bearer"
    return response


def no_content() -> HttpResponse:
    return HttpResponse(status=204)


@csrf_exempt
def service_not_found(request, *args, **kwargs) -> HttpResponse:
    """Anything else under /ngsi/ (Orion's answer for a path it does not serve). CSRF-exempt so that a
    POST from a client with a stale session cookie also gets this JSON, not Django's CSRF page."""
    return ngsi_error(BadRequest("service not found"))


# --- request helpers -----------------------------------------------------------------------------------


def _tenant(request) -> Tenant:
    return tenant_for(request.META.get("HTTP_FIWARE_SERVICE"), request.META.get("HTTP_FIWARE_SERVICEPATH"))


def _gateway_token(request) -> IngestToken:
    if isinstance(request.auth, IngestToken):
        return request.auth
    if request.user.is_authenticated:
        raise Forbidden("NGSI writes take a gateway token (Authorization: Bearer <token>), not a browser session")
    raise Unauthorized("A gateway token is required: Authorization: Bearer <token>")


def _token_or_none(request) -> IngestToken | None:
    return request.auth if isinstance(request.auth, IngestToken) else None


def _identity(request):
    viewer = viewer_for_request(request)
    if viewer.is_anonymous:
        raise Unauthorized("Subscriptions need a gateway token (Authorization: Bearer <token>) or a logged-in member")
    return viewer


def _no_duplicate_keys(pairs):
    keys = [key for key, _ in pairs]
    if len(keys) != len(set(keys)):
        raise BadRequest("Duplicate key in a JSON object")
    return dict(pairs)


def _not_a_number(constant: str):
    raise BadRequest(f"{constant} is not valid JSON")


def _json(text: str):
    try:
        return json.loads(
            text, object_pairs_hook=_no_duplicate_keys, parse_constant=_not_a_number, parse_int=json_integer
        )
    except json.JSONDecodeError as exc:
        raise BadRequest(f"Parse Error: malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except ValueError as exc:  # e.g. an integer literal longer than Python converts
        raise BadRequest(f"Parse Error: {str(exc)[:120]}") from None
    except RecursionError:
        raise BadRequest("Parse Error: JSON nested too deeply") from None


def read_body(request, *, text_plain: bool = False):
    """The request body as JSON (or, where Orion allows it, a text/plain JSON literal)."""
    limit = ngsi_setting("NGSI_MAX_BODY_BYTES")
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise BadRequest("Invalid Content-Length") from None
    if declared > limit:
        raise RequestEntityTooLarge(f"Payload size: {declared}, max size supported: {limit}")
    stream = request.stream
    raw = stream.read(limit + 1) if stream is not None else b""
    if len(raw) > limit:
        raise RequestEntityTooLarge(f"Payload size over the max size supported: {limit}")
    if not raw.strip():
        raise BadRequest("Empty payload")
    media_type = (request.content_type or "").split(";")[0].strip().lower()
    accepted = ("application/json", "text/plain") if text_plain else ("application/json",)
    if media_type not in accepted:
        raise UnsupportedMediaType(f"not supported content type: {media_type[:60] or 'none'} (use {' or '.join(accepted)})")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"Payload is not valid UTF-8 (byte {exc.start})") from None
    return _json(text)


# --- base view ------------------------------------------------------------------------------------------


class NgsiAPIView(APIView):
    authentication_classes = [BearerTokenAuthentication, SessionAuthentication]
    permission_classes = [AllowAny]
    parser_classes: list = []  # bodies are read by read_body, with NGSI errors
    renderer_classes = [JSONRenderer]

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        # Settle who is calling once per request (cached on it): reads are scoped to this viewer,
        # and the API usage middleware counts the call against its town, writes included.
        viewer_for_request(request)

    def perform_content_negotiation(self, request, force=False):
        # Replies are JSON whatever Accept says (clients such as filip send text/plain on writes).
        return super().perform_content_negotiation(request, force=True)

    def handle_exception(self, exc):
        if isinstance(exc, NgsiError):
            return ngsi_error(exc)
        if isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)):
            return ngsi_error(Unauthorized(str(exc.detail)))
        if isinstance(exc, exceptions.MethodNotAllowed):
            return ngsi_error(MethodNotAllowed(f"Method {self.request.method} is not allowed here"))
        if isinstance(exc, exceptions.PermissionDenied):
            return ngsi_error(Forbidden(str(exc.detail)))
        if isinstance(exc, exceptions.APIException):
            error = NgsiError(str(exc.detail))
            error.status = exc.status_code
            return ngsi_error(error)
        return super().handle_exception(exc)


# --- OpenAPI description ---------------------------------------------------------------------------------

NGSI_ERROR = inline_serializer("NgsiError", {"error": serializers.CharField(), "description": serializers.CharField()})
NGSI_SUBSCRIPTIONS = inline_serializer(
    "NgsiSubscriptionSummary", {"id": serializers.CharField(), "status": serializers.CharField()}, many=True
)
ERRORS = {
    400: OpenApiResponse(NGSI_ERROR, description="BadRequest"),
    401: OpenApiResponse(NGSI_ERROR, description="Unauthorized: missing or invalid token"),
    404: OpenApiResponse(NGSI_ERROR, description="NotFound (also for what the caller may not see)"),
}
WRITE_ERRORS = {
    **ERRORS,
    403: OpenApiResponse(NGSI_ERROR, description="Forbidden: a session instead of a gateway token"),
    413: OpenApiResponse(NGSI_ERROR, description="RequestEntityTooLarge"),
    415: OpenApiResponse(NGSI_ERROR, description="UnsupportedMediaType"),
    422: OpenApiResponse(NGSI_ERROR, description="Unprocessable / PartialUpdate"),
}
TENANT = [
    OpenApiParameter(
        "Fiware-Service", str, OpenApiParameter.HEADER, required=False,
        description="Tenant: a municipality slug ('-' may be written '_'). Narrows to stations that town owns.",
    ),
    OpenApiParameter(
        "Fiware-ServicePath", str, OpenApiParameter.HEADER, required=False,
        description="'/' (default) or '/#'; stations live at '/', so deeper paths find nothing.",
    ),
]
ENTITY_ID = OpenApiParameter("entity_id", str, OpenApiParameter.PATH, description="e.g. urn:ngsi-ld:WaterObserved:<code>")
ATTR_NAME = OpenApiParameter("attr_name", str, OpenApiParameter.PATH)
TYPE_QUERY = OpenApiParameter("type", str, required=False)
OPTIONS_QUERY = OpenApiParameter("options", str, required=False, description="Comma list, e.g. count,keyValues")
RENDER_QUERY = [
    TYPE_QUERY,
    OpenApiParameter("attrs", str, required=False),
    OpenApiParameter("metadata", str, required=False),
    OPTIONS_QUERY,
]
LIST_QUERY = [
    OpenApiParameter(name, str, required=False)
    for name in ("id", "idPattern", "type", "typePattern", "q", "georel", "geometry", "coords", "attrs",
                 "metadata", "orderBy", "options")
] + [OpenApiParameter("limit", int, required=False), OpenApiParameter("offset", int, required=False)]


def ngsi_schema(operation_id: str, summary: str, **kwargs):
    kwargs.setdefault("responses", {200: OpenApiTypes.OBJECT, **ERRORS})
    return extend_schema(operation_id=operation_id, summary=summary, tags=["ngsi"], **kwargs)


# --- endpoints --------------------------------------------------------------------------------------------


class VersionAPI(NgsiAPIView):
    @ngsi_schema("ngsi_version", "Orion-style version document.", responses={200: OpenApiTypes.OBJECT})
    def get(self, request):
        return ngsi_json(version_document())


class ResourcesAPI(NgsiAPIView):
    @ngsi_schema("ngsi_resources", "Entry points of the NGSI-v2 API.", responses={200: OpenApiTypes.OBJECT})
    def get(self, request):
        return ngsi_json(
            {
                "entities_url": "/v2/entities",
                "types_url": "/v2/types",
                "subscriptions_url": "/v2/subscriptions",
                "registrations_url": "/v2/registrations",
            }
        )


class EntityListAPI(NgsiAPIView):
    @ngsi_schema(
        "ngsi_entities_list",
        "Stations the caller may see, as entities, filtered (id, idPattern, type, q, georel ...) and paged.",
        parameters=[*TENANT, *LIST_QUERY],
        responses={200: OpenApiTypes.ANY, 400: ERRORS[400], 401: ERRORS[401]},
    )
    def get(self, request):
        params = request.query_params
        options = parse_options(params.get("options"), READ_OPTIONS)
        page = parse_page(params, max_limit=ngsi_setting("NGSI_MAX_LIMIT"), options=options)
        entity_filter = parse_entity_filter(params)
        names = parse_names(params.get("attrs"), "attrs")
        metadata = parse_names(params.get("metadata"), "metadata")
        order_by = parse_order_by(params.get("orderBy"))
        if entity_filter.types == {ALERT_TYPE}:
            # Dam release notices and evacuation orders in force: public, the same for every tenant.
            _tenant(request)
            alerts = [*release_entities(), *order_entities(viewer=viewer_for_request(request))]
            entities = sort_entities([e for e in alerts if entity_filter.matches(e)], order_by)
        else:
            entities = entity_search(
                viewer=viewer_for_request(request), tenant=_tenant(request), entity_filter=entity_filter,
                order_by=order_by,
            )
        return entity_page(entities, options=options, page=page, names=names, metadata=metadata)

    @ngsi_schema(
        "ngsi_entities_create",
        "Entity creation is refused (stations are registered in the platform); with options=upsert an "
        "existing station of the token's town gets a reading.",
        parameters=[*TENANT, OPTIONS_QUERY],
        request=OpenApiTypes.OBJECT,
        responses={201: None, 204: None, **WRITE_ERRORS},
    )
    def post(self, request):
        options = parse_options(request.query_params.get("options"), WRITE_OPTIONS | {"upsert"})
        token = _gateway_token(request)
        document = read_body(request)
        if isinstance(document, dict) and document.get("type") == ALERT_TYPE:
            # A dam release notice (docs/ngsi.md): created here, with an id of ours.
            _tenant(request)
            entity = release_entity_create(token=token, document=document, key_values="keyValues" in options)
            response = HttpResponse(status=201)
            response["Location"] = f"/v2/entities/{entity.id}?type={ALERT_TYPE}"
            return response
        entity_create(
            token=token,
            tenant=_tenant(request),
            document=document,
            key_values="keyValues" in options,
            upsert="upsert" in options,
        )
        return no_content()


def entity_page(entities, *, options: set[str], page, names, metadata) -> HttpResponse:
    """One page of entities in the format `options` asks for (GET /v2/entities, POST /v2/op/query)."""
    attrs_format = attrs_format_of(options)
    rows = [
        render_entity(entity, attrs_format, names, metadata) for entity in entities[page.offset : page.offset + page.limit]
    ]
    if "unique" in options:
        rows = unique_values(rows)
    headers = {"Fiware-Total-Count": str(len(entities))} if page.count else {}
    return ngsi_json(rows, headers=headers)


def _any_entity(request, entity_id: str, entity_type: str | None):
    """A station entity the caller may see, a dam release notice or an evacuation order (public)."""
    if is_release_id(entity_id) or is_order_id(entity_id):
        _tenant(request)
        if entity_type and entity_type != ALERT_TYPE:
            raise NotFound(ENTITY_NOT_FOUND)
        if is_order_id(entity_id):
            return order_entity_get(entity_id, viewer=viewer_for_request(request))
        return release_entity_get(entity_id)
    return entity_get(viewer=viewer_for_request(request), tenant=_tenant(request), entity_id=entity_id,
                      entity_type=entity_type)


def _render_one(request, entity_id: str, render):
    """One visible entity (or its attributes) in the format the query asks for."""
    params = request.query_params
    options = parse_options(params.get("options"), READ_OPTIONS - {"count"})
    entity = _any_entity(request, entity_id, params.get("type"))
    return ngsi_json(
        render(
            entity, attrs_format_of(options), parse_names(params.get("attrs"), "attrs"),
            parse_names(params.get("metadata"), "metadata"),
        )
    )


class EntityAPI(NgsiAPIView):
    @ngsi_schema("ngsi_entity_get", "One entity.", parameters=[ENTITY_ID, *TENANT, *RENDER_QUERY])
    def get(self, request, entity_id: str):
        return _render_one(request, entity_id, render_entity)


class EntityAttrsAPI(NgsiAPIView):
    @ngsi_schema("ngsi_entity_attrs_get", "The attributes of one entity.", parameters=[ENTITY_ID, *TENANT, *RENDER_QUERY])
    def get(self, request, entity_id: str):
        return _render_one(request, entity_id, render_attrs)

    def _write(self, request, entity_id: str, *, allow_append: bool):
        options = parse_options(request.query_params.get("options"), WRITE_OPTIONS | ({"append"} if allow_append else set()))
        token = _gateway_token(request)
        entity_attributes_write(
            token=token,
            tenant=_tenant(request),
            entity_id=entity_id,
            entity_type=request.query_params.get("type"),
            attrs=read_body(request),
            key_values="keyValues" in options,
            append_strict="append" in options,
        )
        return no_content()

    @ngsi_schema(
        "ngsi_entity_attrs_post",
        "Add a reading: the measured attribute (height, precipitation or fillingLevel), optionally with dateObserved.",
        parameters=[ENTITY_ID, *TENANT, TYPE_QUERY, OPTIONS_QUERY],
        request=OpenApiTypes.OBJECT,
        responses={204: None, **WRITE_ERRORS},
    )
    def post(self, request, entity_id: str):
        return self._write(request, entity_id, allow_append=True)

    @ngsi_schema(
        "ngsi_entity_attrs_patch",
        "Add a reading (as POST; the attributes must exist, which the measured one always does).",
        parameters=[ENTITY_ID, *TENANT, TYPE_QUERY, OPTIONS_QUERY],
        request=OpenApiTypes.OBJECT,
        responses={204: None, **WRITE_ERRORS},
    )
    def patch(self, request, entity_id: str):
        return self._write(request, entity_id, allow_append=False)


class AttributeAPI(NgsiAPIView):
    @ngsi_schema("ngsi_entity_attr_get", "One attribute of an entity.", parameters=[ENTITY_ID, ATTR_NAME, *TENANT, TYPE_QUERY])
    def get(self, request, entity_id: str, attr_name: str):
        entity = _any_entity(request, entity_id, request.query_params.get("type"))
        if attr_name not in entity.attrs:
            raise NotFound(ATTRIBUTE_NOT_FOUND)
        return ngsi_json(render_attribute(entity.attrs[attr_name]))

    @ngsi_schema(
        "ngsi_entity_attr_put",
        "Add a reading given as one attribute object (its TimeInstant metadata is the observation time).",
        parameters=[ENTITY_ID, ATTR_NAME, *TENANT, TYPE_QUERY],
        request=OpenApiTypes.OBJECT,
        responses={204: None, **WRITE_ERRORS},
    )
    def put(self, request, entity_id: str, attr_name: str):
        token = _gateway_token(request)
        attribute_write(
            token=token, tenant=_tenant(request), entity_id=entity_id, entity_type=request.query_params.get("type"),
            name=attr_name, payload=read_body(request), value_only=False,
        )
        return no_content()


class AttributeValueAPI(NgsiAPIView):
    @ngsi_schema(
        "ngsi_entity_attr_value_get", "The value of one attribute (JSON).",
        parameters=[ENTITY_ID, ATTR_NAME, *TENANT, TYPE_QUERY], responses={200: OpenApiTypes.ANY, **ERRORS},
    )
    def get(self, request, entity_id: str, attr_name: str):
        entity = _any_entity(request, entity_id, request.query_params.get("type"))
        if attr_name not in entity.attrs:
            raise NotFound(ATTRIBUTE_NOT_FOUND)
        return ngsi_json(entity.attrs[attr_name].value)

    @ngsi_schema(
        "ngsi_entity_attr_value_put",
        "Add a reading given as a bare number (text/plain or JSON), observed now.",
        parameters=[ENTITY_ID, ATTR_NAME, *TENANT, TYPE_QUERY],
        request={"text/plain": OpenApiTypes.STR, "application/json": OpenApiTypes.NUMBER},
        responses={204: None, **WRITE_ERRORS},
    )
    def put(self, request, entity_id: str, attr_name: str):
        token = _gateway_token(request)
        attribute_write(
            token=token, tenant=_tenant(request), entity_id=entity_id, entity_type=request.query_params.get("type"),
            name=attr_name, payload=read_body(request, text_plain=True), value_only=True,
        )
        return no_content()


class BatchUpdateAPI(NgsiAPIView):
    @ngsi_schema(
        "ngsi_op_update",
        "Readings of several entities in one batch (actionType append, update or replace).",
        parameters=[*TENANT, OPTIONS_QUERY],
        request=OpenApiTypes.OBJECT,
        responses={204: None, **WRITE_ERRORS},
    )
    def post(self, request):
        options = parse_options(request.query_params.get("options"), WRITE_OPTIONS)
        token = _gateway_token(request)
        document = read_body(request)
        if not isinstance(document, dict):
            raise BadRequest('The body must be {"actionType": ..., "entities": [...]}')
        unknown = sorted(set(document) - {"actionType", "entities"})
        if unknown:
            raise BadRequest(f"Unrecognized field: /{unknown[0][:40]}/")
        entities_batch_update(
            token=token,
            tenant=_tenant(request),
            action_type=document.get("actionType"),
            entities=document.get("entities"),
            key_values="keyValues" in options,
        )
        return no_content()


class BatchQueryAPI(NgsiAPIView):
    @ngsi_schema(
        "ngsi_op_query",
        "The entity list as a query document: entities (id / idPattern with type / typePattern, any one "
        "matches), attrs, expression (q, georel, geometry, coords) and metadata; paged and ordered by the "
        "query string. A read: anonymous callers see public stations.",
        parameters=[
            *TENANT,
            OPTIONS_QUERY,
            OpenApiParameter("orderBy", str, required=False),
            OpenApiParameter("limit", int, required=False),
            OpenApiParameter("offset", int, required=False),
        ],
        request=OpenApiTypes.OBJECT,
        responses={
            200: OpenApiTypes.ANY,
            400: ERRORS[400],
            401: ERRORS[401],
            413: WRITE_ERRORS[413],
            415: WRITE_ERRORS[415],
        },
    )
    def post(self, request):
        params = request.query_params
        options = parse_options(params.get("options"), READ_OPTIONS)
        page = parse_page(params, max_limit=ngsi_setting("NGSI_MAX_LIMIT"), options=options)
        order_by = parse_order_by(params.get("orderBy"))
        query = parse_query_document(read_body(request))
        entities = entity_query(viewer=viewer_for_request(request), tenant=_tenant(request), query=query, order_by=order_by)
        return entity_page(entities, options=options, page=page, names=query.attrs, metadata=query.metadata)


class TypeListAPI(NgsiAPIView):
    @ngsi_schema(
        "ngsi_types_list", "Entity types among the stations the caller may see.",
        parameters=[*TENANT, OPTIONS_QUERY, OpenApiParameter("limit", int, required=False),
                    OpenApiParameter("offset", int, required=False)],
        responses={200: OpenApiResponse(OpenApiTypes.ANY, description="An array of types, or of type names "
                                        "with options=values."), **ERRORS},
    )
    def get(self, request):
        options = parse_options(request.query_params.get("options"), {"count", "values", "noAttrDetail"})
        page = parse_page(request.query_params, max_limit=ngsi_setting("NGSI_MAX_LIMIT"), options=options)
        types = type_descriptions(
            entity_search(viewer=viewer_for_request(request), tenant=_tenant(request), entity_filter=parse_entity_filter({}))
        )
        rows = types[page.offset : page.offset + page.limit]
        if "values" in options:
            rows = [row["type"] for row in rows]
        headers = {"Fiware-Total-Count": str(len(types))} if page.count else {}
        return ngsi_json(rows, headers=headers)


class TypeAPI(NgsiAPIView):
    @ngsi_schema(
        "ngsi_type_get", "One entity type: its attributes and how many visible entities have it.",
        parameters=[OpenApiParameter("entity_type", str, OpenApiParameter.PATH), *TENANT],
    )
    def get(self, request, entity_type: str):
        types = type_descriptions(
            entity_search(
                viewer=viewer_for_request(request), tenant=_tenant(request),
                entity_filter=parse_entity_filter({"type": entity_type}),
            )
        )
        if not types:
            raise NotFound("Entity type not found")
        return ngsi_json({"attrs": types[0]["attrs"], "count": types[0]["count"]})


class RegistrationListAPI(NgsiAPIView):
    """Context-source registrations: this broker forwards to none, so the list is always empty (as an
    Orion without registrations answers) and creating one is refused."""

    @ngsi_schema(
        "ngsi_registrations_list", "Context-source registrations: always an empty list (none are supported).",
        parameters=[*TENANT, OPTIONS_QUERY, OpenApiParameter("limit", int, required=False),
                    OpenApiParameter("offset", int, required=False)],
        responses={200: OpenApiResponse(OpenApiTypes.ANY, description="[]"), **ERRORS},
    )
    def get(self, request):
        options = parse_options(request.query_params.get("options"), {"count"})
        page = parse_page(request.query_params, max_limit=ngsi_setting("NGSI_MAX_LIMIT"), options=options)
        _tenant(request)  # malformed tenant headers are still 400
        return ngsi_json([], headers={"Fiware-Total-Count": "0"} if page.count else {})

    @ngsi_schema(
        "ngsi_registrations_create", "Refused: this broker does not forward to context sources.",
        parameters=TENANT, request=OpenApiTypes.OBJECT,
        responses={422: OpenApiResponse(NGSI_ERROR, description="Unprocessable"), **ERRORS},
    )
    def post(self, request):
        raise Unprocessable(REGISTRATIONS_UNSUPPORTED)


class RegistrationAPI(NgsiAPIView):
    @ngsi_schema(
        "ngsi_registration_get", "No registration exists: always NotFound.",
        parameters=[OpenApiParameter("registration_id", str, OpenApiParameter.PATH), *TENANT],
        responses={404: ERRORS[404], 400: ERRORS[400]},
    )
    def get(self, request, registration_id: str):
        raise NotFound(REGISTRATION_NOT_FOUND)


class SubscriptionListAPI(NgsiAPIView):
    @ngsi_schema(
        "ngsi_subscriptions_list", "Subscriptions of the caller's municipality.",
        parameters=[*TENANT, OPTIONS_QUERY, OpenApiParameter("limit", int, required=False),
                    OpenApiParameter("offset", int, required=False)],
        responses={200: NGSI_SUBSCRIPTIONS, **ERRORS},
    )
    def get(self, request):
        options = parse_options(request.query_params.get("options"), {"count"})
        page = parse_page(request.query_params, max_limit=ngsi_setting("NGSI_MAX_LIMIT"), options=options)
        subscriptions = subscriptions_of(viewer=_identity(request), tenant=_tenant(request))
        total = subscriptions.count() if page.count else None
        rows = [render_subscription(s) for s in subscriptions[page.offset : page.offset + page.limit]]
        return ngsi_json(rows, headers={"Fiware-Total-Count": str(total)} if page.count else {})

    @ngsi_schema(
        "ngsi_subscriptions_create",
        "Create a subscription (gateway token or logged-in member); its URL must be allow-listed.",
        parameters=TENANT,
        request=OpenApiTypes.OBJECT,
        responses={201: None, **WRITE_ERRORS},
    )
    def post(self, request):
        viewer = _identity(request)
        subscription = subscription_create(
            viewer=viewer,
            token=_token_or_none(request),
            user_id=request.user.pk if request.user.is_authenticated else None,
            tenant=_tenant(request),
            document=read_body(request),
        )
        response = HttpResponse(status=201)
        response["Location"] = f"/v2/subscriptions/{subscription.public_id}"
        return response


class SubscriptionAPI(NgsiAPIView):
    def _subscription(self, request, subscription_id: str, *, to_change: bool = False):
        viewer = _identity(request)
        subscription = subscription_get(viewer=viewer, tenant=_tenant(request), public_id=subscription_id)
        if to_change:
            subscription_check_manager(viewer=viewer, token=_token_or_none(request), subscription=subscription)
        return subscription

    @ngsi_schema(
        "ngsi_subscription_get", "One subscription with its delivery record.",
        parameters=[OpenApiParameter("subscription_id", str, OpenApiParameter.PATH), *TENANT],
    )
    def get(self, request, subscription_id: str):
        return ngsi_json(render_subscription(self._subscription(request, subscription_id)))

    @ngsi_schema(
        "ngsi_subscription_patch", "Change top-level fields of a subscription (status=active re-arms a failed one).",
        parameters=[OpenApiParameter("subscription_id", str, OpenApiParameter.PATH), *TENANT],
        request=OpenApiTypes.OBJECT,
        responses={204: None, **WRITE_ERRORS},
    )
    def patch(self, request, subscription_id: str):
        subscription = self._subscription(request, subscription_id, to_change=True)
        subscription_update(subscription=subscription, document=read_body(request))
        return no_content()

    @ngsi_schema(
        "ngsi_subscription_delete", "Delete a subscription.",
        parameters=[OpenApiParameter("subscription_id", str, OpenApiParameter.PATH), *TENANT],
        responses={204: None, **ERRORS},
    )
    def delete(self, request, subscription_id: str):
        subscription_delete(subscription=self._subscription(request, subscription_id, to_change=True))
        return no_content()


NOTIFY_REPORT = inline_serializer(
    "NgsiNotifyReport",
    {
        "subscriptionId": serializers.CharField(allow_null=True),
        "accepted": serializers.IntegerField(),
        "duplicates": serializers.IntegerField(),
        "rejected": serializers.ListField(child=serializers.DictField()),
        "unmapped": serializers.ListField(child=serializers.DictField()),
    },
)


class NotifyAPI(NgsiAPIView):
    @ngsi_schema(
        "ngsi_notify",
        "Receive an Orion notification (normalized or keyValues); mapped attributes become readings.",
        parameters=[OpenApiParameter("Ngsiv2-AttrsFormat", str, OpenApiParameter.HEADER, required=False)],
        request=OpenApiTypes.OBJECT,
        responses={200: NOTIFY_REPORT, **WRITE_ERRORS},
    )
    def post(self, request):
        token = _gateway_token(request)
        report = notification_ingest(
            token=token, document=read_body(request), attrs_format=request.META.get("HTTP_NGSIV2_ATTRSFORMAT") or None
        )
        return ngsi_json(report)


# filip asks for `v2/entities/` and `v2/subscriptions/` with a trailing slash: the same views,
# left out of the OpenAPI document so each operation is described once.
class EntityListSlashAPI(EntityListAPI):
    schema = None


class SubscriptionListSlashAPI(SubscriptionListAPI):
    schema = None


# The NGSI-v2 specification writes the type list as `/v2/types/`; filip lists registrations at
# `/v2/registrations/`.
class TypeListSlashAPI(TypeListAPI):
    schema = None


class RegistrationListSlashAPI(RegistrationListAPI):
    schema = None


# Orion's own path for notifications from another broker (`/ngsi/notify` is the older one here).
class OpNotifyAPI(NotifyAPI):
    schema = None
