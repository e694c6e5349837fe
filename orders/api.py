"""REST endpoints of evacuation decisions. Thin: parse, call a selector or service, render."""

from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import NotAuthenticated, NotFound, PermissionDenied, ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from alerts.api import CapXMLRenderer, Conflict
from alerts.cap import CONTENT_TYPE as CAP_CONTENT_TYPE
from config.api_params import choice_param, flag_param, int_param, slug_param
from sensors.api import parse_as_of
from tenancy.api_errors import REQUEST_ERROR
from tenancy.selectors import viewer_for_request

from .cap import cap_document
from .documents import district_feature, draft_document, order_document, order_feature, recommendation_document
from .models import Order, OrderDraft, OrderEvent, Recommendation
from .selectors import (
    district_list,
    order_draft_get,
    order_draft_list,
    order_get,
    order_list,
    order_list_at,
    recommendation_get,
    recommendation_list,
)
from .services import (
    OrderConflict,
    OrderError,
    OrderForbidden,
    order_change,
    order_draft_confirm,
    order_draft_withdraw,
    order_issue,
    order_lift,
    recommendation_dismiss,
    recommendation_issue,
    recommendation_manual,
)

ERROR = inline_serializer("OrderError", {"detail": serializers.CharField()})
FIELD_ERROR = OpenApiResponse(
    inline_serializer("OrderFieldError", {"<field>": serializers.CharField(required=False)}),
    description='{"<field>": "..."} naming the field at fault (level, districts, shelters, reason), or {"detail": "..."}.',
)
DISTRICT_PROPERTIES = inline_serializer(
    "DistrictProperties",
    {
        "code": serializers.CharField(),
        "name_ja": serializers.CharField(),
        "name_en": serializers.CharField(),
        "municipality": serializers.CharField(help_text="Owner town's slug."),
    },
)
GEOMETRY = serializers.JSONField(help_text="GeoJSON geometry, [lon, lat].")
DISTRICT_COLLECTION = inline_serializer(
    "DistrictCollection",
    {
        "type": serializers.CharField(default="FeatureCollection"),
        "features": inline_serializer(
            "DistrictFeature",
            {"type": serializers.CharField(), "id": serializers.CharField(), "geometry": GEOMETRY,
             "properties": DISTRICT_PROPERTIES},
            many=True,
        ),
    },
)
NAMED = {"code": serializers.CharField(), "name_ja": serializers.CharField(), "name_en": serializers.CharField()}
ORDER_EVENT = inline_serializer(
    "OrderEvent",
    {
        "id": serializers.IntegerField(),
        "kind": serializers.ChoiceField(choices=OrderEvent.Kind.choices),
        "level": serializers.IntegerField(min_value=3, max_value=5),
        "districts": serializers.ListField(child=serializers.CharField()),
        "shelters": serializers.ListField(child=serializers.CharField()),
        "reason": serializers.CharField(),
        "evidence": serializers.JSONField(help_text="What the decision was shown: gauge, reading, threshold, time."),
        "at": serializers.DateTimeField(),
        "actor": serializers.CharField(allow_null=True),
        "cap_url": serializers.CharField(),
    },
    many=True,
)
ORDER_FIELDS = {
    "id": serializers.IntegerField(),
    "level": serializers.IntegerField(min_value=3, max_value=5),
    "municipality": serializers.CharField(help_text="Issuing town's slug."),
    "municipality_name_ja": serializers.CharField(),
    "municipality_name_en": serializers.CharField(),
    "name_ja": serializers.CharField(help_text="The order's official name in the level scheme, e.g. 避難指示."),
    "name_en": serializers.CharField(),
    "title_ja": serializers.CharField(help_text="警戒レベルN and the name."),
    "title_en": serializers.CharField(),
    "action_ja": serializers.CharField(help_text="What to do, from the level scheme."),
    "action_en": serializers.CharField(),
    "level_scheme": serializers.CharField(allow_null=True),
    "districts": inline_serializer("OrderDistrict", NAMED, many=True),
    "shelters": inline_serializer(
        "OrderShelter",
        {**NAMED, "status": serializers.CharField(), "lon": serializers.FloatField(), "lat": serializers.FloatField()},
        many=True,
    ),
    "gauges": inline_serializer(
        "OrderGauge",
        {**NAMED, "lon": serializers.FloatField(), "lat": serializers.FloatField(), "url": serializers.CharField()},
        many=True,
        help_text="Gauges in the evidence that the caller may see.",
    ),
    "reason": serializers.CharField(),
    "issued_at": serializers.DateTimeField(),
    "updated_at": serializers.DateTimeField(),
    "lifted_at": serializers.DateTimeField(allow_null=True),
    "in_force": serializers.BooleanField(),
    "cap_url": serializers.URLField(),
    "events": ORDER_EVENT,
}
ORDER_PROPERTIES = inline_serializer("OrderProperties", ORDER_FIELDS)
ORDER_FEATURE = inline_serializer(
    "OrderFeature",
    {"type": serializers.CharField(), "id": serializers.IntegerField(), "geometry": GEOMETRY,
     "properties": ORDER_PROPERTIES},
)
ORDER_COLLECTION = inline_serializer(
    "OrderCollection",
    {"type": serializers.CharField(default="FeatureCollection"),
     "features": inline_serializer("OrderFeatureList", {"type": serializers.CharField(), "id": serializers.IntegerField(),
                                                       "geometry": GEOMETRY, "properties": ORDER_PROPERTIES}, many=True)},
)
CODES = serializers.ListField(child=serializers.CharField(max_length=40))
ISSUE_REQUEST = inline_serializer(
    "OrderIssueRequest",
    {
        "level": serializers.IntegerField(min_value=3, max_value=5),
        "districts": CODES,
        "reason": serializers.CharField(required=False, max_length=1000),
        "shelters": serializers.ListField(child=serializers.CharField(max_length=40), required=False),
        "open_shelters": serializers.BooleanField(required=False, help_text="Open the linked shelters in the same step."),
    },
)
CHANGE_FIELDS = {
    "level": serializers.IntegerField(min_value=3, max_value=5, required=False),
    "districts": serializers.ListField(child=serializers.CharField(max_length=40), required=False),
    "shelters": serializers.ListField(child=serializers.CharField(max_length=40), required=False),
    "reason": serializers.CharField(required=False, max_length=1000),
    "open_shelters": serializers.BooleanField(required=False),
}
CHANGE_REQUEST = inline_serializer("OrderChangeRequest", CHANGE_FIELDS)
LIFT_REQUEST = inline_serializer("OrderLiftRequest", {"reason": serializers.CharField(required=False, max_length=1000)})
# A single order as the write endpoints answer: the feature's properties, flat, with its geometry.
ORDER_DOCUMENT = inline_serializer("Order", {**ORDER_FIELDS, "geometry": GEOMETRY})
ACTION_REPLY = inline_serializer(
    "OrderActionReply",
    {"recorded": serializers.BooleanField(help_text="False when nothing changed."), "order": ORDER_DOCUMENT},
)
DENIED = "Not an operator or admin of the districts' own town acting for it, a gateway token, or the CSRF token missing."
DRAFT_FIELDS = {
    "id": serializers.IntegerField(),
    "municipality": serializers.CharField(),
    "level": serializers.IntegerField(min_value=3, max_value=5),
    "title_ja": serializers.CharField(),
    "title_en": serializers.CharField(),
    "districts": inline_serializer("OrderDraftDistrict", NAMED, many=True),
    "shelters": serializers.ListField(child=serializers.CharField()),
    "open_shelters": serializers.BooleanField(),
    "reason": serializers.CharField(),
    "evidence": serializers.JSONField(),
    "recommendation": serializers.IntegerField(allow_null=True),
    "state": serializers.ChoiceField(choices=OrderDraft.State.choices),
    "drafted_by": serializers.CharField(),
    "drafted_at": serializers.DateTimeField(),
    "handled_by": serializers.CharField(allow_null=True),
    "handled_at": serializers.DateTimeField(allow_null=True),
    "withdraw_reason": serializers.CharField(),
    "order": serializers.IntegerField(allow_null=True),
}
DRAFT = inline_serializer("OrderDraft", DRAFT_FIELDS)
DRAFTED = OpenApiResponse(
    inline_serializer("OrderDrafted", {"draft": DRAFT}),
    description="The town asks for a second person: the order is drafted, not issued, until another "
    "operator of the town confirms it (POST /api/v1/order-drafts/<id>/confirm).",
)


def _issued_or_drafted(result, viewer) -> Response:
    if isinstance(result, OrderDraft):
        return Response({"draft": draft_document(result)}, status=status.HTTP_202_ACCEPTED)
    order = order_get(viewer=viewer, order_id=result.pk)
    return Response(order_document(order, viewer=viewer), status=status.HTTP_201_CREATED)


def _body(request) -> dict:
    data = request.data
    if not isinstance(data, dict):
        raise ValidationError({"detail": "Send a JSON object."})
    return data


def _flag(value, field: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ValidationError({field: "Must be true or false."})
    return value


def _service_call(call):
    try:
        return call()
    except OrderError as exc:
        raise ValidationError({exc.field: exc.message}) from None
    except OrderForbidden as exc:
        raise PermissionDenied(str(exc)) from None
    except OrderConflict as exc:
        raise Conflict(str(exc)) from None


def _visible_order(request, order_id: int) -> Order:
    try:
        return order_get(viewer=viewer_for_request(request), order_id=order_id)
    except Order.DoesNotExist:
        raise NotFound("No order with this id.") from None


class DistrictListAPI(APIView):
    @extend_schema(
        operation_id="districts_list",
        summary="Evacuation districts (public geography) as GeoJSON.",
        parameters=[OpenApiParameter("municipality", str, required=False, description="Town's slug.")],
        responses={200: DISTRICT_COLLECTION, 400: REQUEST_ERROR},
    )
    def get(self, request):
        districts = district_list(municipality=slug_param(request.query_params))
        return Response({"type": "FeatureCollection", "features": [district_feature(d) for d in districts]})


class OrderListAPI(APIView):
    @extend_schema(
        operation_id="orders_list",
        summary="Evacuation orders in force, one GeoJSON feature per order (public); ?all=1 adds the lifted "
        "orders of the caller's town, with their history.",
        parameters=[
            OpenApiParameter("all", enum=["1"], required=False, description="Include lifted orders (town staff)."),
            OpenApiParameter("municipality", str, required=False, description="Issuing town's slug."),
            OpenApiParameter(
                "at", OpenApiTypes.DATETIME, required=False,
                description="The orders in force at this past moment, as they stood then (level, districts, "
                "shelters and their statuses, steps up to then); not with `all`.",
            ),
        ],
        responses={200: ORDER_COLLECTION, 400: REQUEST_ERROR},
    )
    def get(self, request):
        viewer = viewer_for_request(request)
        if "at" in request.query_params:
            if flag_param(request.query_params, "all"):
                raise ValidationError({"at": "Not with 'all': a moment has only the orders in force then."})
            at = parse_as_of("at", request.query_params["at"])
            orders = order_list_at(viewer=viewer, at=at, municipality=slug_param(request.query_params))
            return Response({"type": "FeatureCollection", "features": [order_feature(o, viewer=viewer) for o in orders]})
        orders = order_list(
            viewer=viewer,
            include_lifted=flag_param(request.query_params, "all"),
            municipality=slug_param(request.query_params),
        )
        return Response({"type": "FeatureCollection", "features": [order_feature(o, viewer=viewer) for o in orders]})

    @extend_schema(
        operation_id="orders_issue",
        summary="Issue an evacuation order for districts of one town (its operators and admins).",
        request=ISSUE_REQUEST,
        responses={
            201: ORDER_DOCUMENT, 202: DRAFTED, 400: FIELD_ERROR, 401: OpenApiResponse(ERROR, description="Not logged in."),
            403: OpenApiResponse(ERROR, description=DENIED),
        },
    )
    def post(self, request):
        if not request.user.is_authenticated:
            raise NotAuthenticated()
        data = _body(request)
        viewer = viewer_for_request(request)
        result = _service_call(
            lambda: order_issue(
                viewer=viewer, actor=request.user, level=data.get("level"), districts=data.get("districts"),
                reason=data.get("reason", ""), shelters=data.get("shelters"),
                open_shelters=_flag(data.get("open_shelters"), "open_shelters"), request=request,
            )
        )
        return _issued_or_drafted(result, viewer)


def _action_responses(replies: dict) -> dict:
    return {
        **replies,
        400: FIELD_ERROR,
        401: OpenApiResponse(ERROR, description="Not logged in."),
        403: OpenApiResponse(ERROR, description=DENIED),
        404: OpenApiResponse(ERROR, description="No such order, or not one the caller may see."),
    }


class OrderChangeAPI(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="orders_change",
        summary="Raise or lower an order, change its districts (extend) or linked shelters.",
        request=CHANGE_REQUEST,
        responses=_action_responses({200: ACTION_REPLY, 409: OpenApiResponse(ERROR, description="The order is lifted.")}),
    )
    def post(self, request, order_id: int):
        order = _visible_order(request, order_id)
        data = _body(request)
        viewer = viewer_for_request(request)
        event = _service_call(
            lambda: order_change(
                viewer=viewer, actor=request.user, order=order, level=data.get("level"),
                districts=data.get("districts"), shelters=data.get("shelters"), reason=data.get("reason", ""),
                open_shelters=_flag(data.get("open_shelters"), "open_shelters"), request=request,
            )
        )
        order = order_get(viewer=viewer, order_id=order.pk)
        return Response({"recorded": event is not None, "order": order_document(order, viewer=viewer)})


class OrderLiftAPI(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="orders_lift",
        summary="Lift an order. Lifting a lifted order is harmless (recorded: false).",
        request=LIFT_REQUEST,
        responses=_action_responses({200: ACTION_REPLY}),
    )
    def post(self, request, order_id: int):
        order = _visible_order(request, order_id)
        data = _body(request) if request.body else {}
        viewer = viewer_for_request(request)
        event = _service_call(
            lambda: order_lift(viewer=viewer, actor=request.user, order=order, reason=data.get("reason", ""), request=request)
        )
        order = order_get(viewer=viewer, order_id=order.pk)
        return Response({"recorded": event is not None, "order": order_document(order, viewer=viewer)})


class OrderCapAPI(APIView):
    renderer_classes = [JSONRenderer, CapXMLRenderer]

    @extend_schema(
        operation_id="orders_cap",
        summary="The order as an OASIS CAP 1.2 message (newest version, or the version of ?event=<id>).",
        parameters=[OpenApiParameter("event", int, required=False, description="Id of an earlier step.")],
        responses={(200, CAP_CONTENT_TYPE): OpenApiTypes.STR, 400: REQUEST_ERROR, 404: ERROR},
    )
    def get(self, request, order_id: int):
        order = _visible_order(request, order_id)
        event_id = int_param(request.query_params, "event", low=1, high=2**63 - 1)
        document = cap_document(order, event_id=event_id)
        if document is None:
            raise NotFound("No CAP message for this order version.")
        return HttpResponse(document, content_type=f"{CAP_CONTENT_TYPE}; charset=utf-8")


RECOMMENDATION_FIELDS = {
    "id": serializers.IntegerField(),
    "municipality": serializers.CharField(),
    "level": serializers.IntegerField(min_value=3, max_value=5),
    "title_ja": serializers.CharField(),
    "title_en": serializers.CharField(),
    "districts": inline_serializer("RecommendationDistrict", NAMED, many=True),
    "evidence": serializers.JSONField(help_text="fired_by (reading / forecast / jma / manual), station, value, threshold, jma_warning ..."),
    "state": serializers.ChoiceField(choices=Recommendation.State.choices),
    "created_at": serializers.DateTimeField(),
    "handled_at": serializers.DateTimeField(allow_null=True),
    "dismiss_reason": serializers.CharField(),
    "order": serializers.IntegerField(allow_null=True),
    "draft": inline_serializer(
        "RecommendationDraft",
        {"id": serializers.IntegerField(), "drafted_by": serializers.CharField(), "drafted_at": serializers.DateTimeField()},
        allow_null=True,
        help_text="The order drafted from it, waiting for a second operator (the town's second-person rule).",
    ),
}
RECOMMENDATION = inline_serializer("Recommendation", RECOMMENDATION_FIELDS)
RECOMMENDATION_LIST = inline_serializer(
    "RecommendationList", {"results": inline_serializer("RecommendationItem", RECOMMENDATION_FIELDS, many=True)}
)
MANUAL_REQUEST = inline_serializer(
    "RecommendationManualRequest",
    {"level": serializers.IntegerField(min_value=3, max_value=5), "districts": CODES,
     "note": serializers.CharField(required=False, max_length=300)},
)
RECOMMENDATION_ISSUE_REQUEST = inline_serializer(
    "RecommendationIssueRequest",
    {**CHANGE_FIELDS, "confirm": serializers.BooleanField(help_text="Must be true.")},
)
DISMISS_REQUEST = inline_serializer("RecommendationDismissRequest", {"reason": serializers.CharField(max_length=300)})


def _visible_recommendation(request, recommendation_id: int) -> Recommendation:
    try:
        return recommendation_get(viewer=viewer_for_request(request), recommendation_id=recommendation_id)
    except Recommendation.DoesNotExist:
        raise NotFound("No recommendation with this id.") from None


class RecommendationListAPI(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="recommendations_list",
        summary="The acting town's recommendations (open by default; ?state=issued|dismissed|all).",
        parameters=[OpenApiParameter("state", enum=[*Recommendation.State.values, "all"], required=False)],
        responses={
            200: RECOMMENDATION_LIST, 400: REQUEST_ERROR, 401: OpenApiResponse(ERROR, description="Not logged in."),
            403: OpenApiResponse(ERROR, description="A gateway token: recommendations are for the town's staff."),
        },
    )
    def get(self, request):
        state = choice_param(
            request.query_params, "state", [*Recommendation.State.values, "all"], default=Recommendation.State.OPEN
        )
        rows = recommendation_list(viewer=viewer_for_request(request), state=None if state == "all" else state)
        return Response({"results": [recommendation_document(r) for r in rows]})

    @extend_schema(
        operation_id="recommendations_manual",
        summary="The manual trigger: put a recommendation on the town's board (operators and admins).",
        request=MANUAL_REQUEST,
        responses={201: RECOMMENDATION, **_action_responses({})},
    )
    def post(self, request):
        data = _body(request)
        recommendation = _service_call(
            lambda: recommendation_manual(
                viewer=viewer_for_request(request), actor=request.user, level=data.get("level"),
                districts=data.get("districts"), note=data.get("note", ""), request=request,
            )
        )
        return Response(recommendation_document(recommendation), status=status.HTTP_201_CREATED)


class RecommendationIssueAPI(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="recommendations_issue",
        summary="Issue the recommended order (confirm: true), as recommended or with another level / districts.",
        request=RECOMMENDATION_ISSUE_REQUEST,
        responses=_action_responses({
            201: ORDER_DOCUMENT, 202: DRAFTED,
            409: OpenApiResponse(ERROR, description="Already handled, or already waiting for a second operator."),
        }),
    )
    def post(self, request, recommendation_id: int):
        recommendation = _visible_recommendation(request, recommendation_id)
        data = _body(request)
        viewer = viewer_for_request(request)
        result = _service_call(
            lambda: recommendation_issue(
                viewer=viewer, actor=request.user, recommendation=recommendation, confirm=data.get("confirm"),
                level=data.get("level"), districts=data.get("districts"), shelters=data.get("shelters"),
                open_shelters=_flag(data.get("open_shelters"), "open_shelters"), reason=data.get("reason", ""),
                request=request,
            )
        )
        return _issued_or_drafted(result, viewer)


class RecommendationDismissAPI(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="recommendations_dismiss",
        summary="Dismiss a recommendation with a reason (kept in the audit log with its evidence).",
        request=DISMISS_REQUEST,
        responses=_action_responses({200: RECOMMENDATION, 409: OpenApiResponse(ERROR, description="Already handled.")}),
    )
    def post(self, request, recommendation_id: int):
        recommendation = _visible_recommendation(request, recommendation_id)
        data = _body(request)
        _service_call(
            lambda: recommendation_dismiss(
                viewer=viewer_for_request(request), actor=request.user, recommendation=recommendation,
                reason=data.get("reason"), request=request,
            )
        )
        return Response(recommendation_document(_visible_recommendation(request, recommendation_id)))


DRAFT_LIST = inline_serializer(
    "OrderDraftList", {"results": inline_serializer("OrderDraftItem", DRAFT_FIELDS, many=True)}
)
CONFIRM_REQUEST = inline_serializer(
    "OrderDraftConfirmRequest", {"confirm": serializers.BooleanField(help_text="Must be true.")}
)
WITHDRAW_REQUEST = inline_serializer(
    "OrderDraftWithdrawRequest", {"reason": serializers.CharField(required=False, max_length=300)}
)
SECOND_PERSON_DENIED = (
    DENIED + " Or the caller drafted this order: a second operator must confirm it."
)


def _draft_responses(replies: dict, *, denied: str) -> dict:
    return {
        **_action_responses(replies),
        403: OpenApiResponse(ERROR, description=denied),
        404: OpenApiResponse(ERROR, description="No such draft, or not one of the caller's town."),
        409: OpenApiResponse(ERROR, description="Already confirmed or withdrawn."),
    }


def _visible_draft(request, draft_id: int) -> OrderDraft:
    try:
        return order_draft_get(viewer=viewer_for_request(request), draft_id=draft_id)
    except OrderDraft.DoesNotExist:
        raise NotFound("No order draft with this id.") from None


class OrderDraftListAPI(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="order_drafts_list",
        summary="The acting town's orders waiting for a second operator (pending by default; "
        "?state=confirmed|withdrawn|all).",
        parameters=[OpenApiParameter("state", enum=[*OrderDraft.State.values, "all"], required=False)],
        responses={
            200: DRAFT_LIST, 400: REQUEST_ERROR, 401: OpenApiResponse(ERROR, description="Not logged in."),
            403: OpenApiResponse(ERROR, description="A gateway token: drafts are for the town's staff."),
        },
    )
    def get(self, request):
        state = request.query_params.get("state") or OrderDraft.State.PENDING
        if state not in (*OrderDraft.State.values, "all"):
            raise ValidationError({"state": f"Must be one of {', '.join(OrderDraft.State.values)}, all."})
        rows = order_draft_list(viewer=viewer_for_request(request), state=None if state == "all" else state)
        return Response({"results": [draft_document(d) for d in rows]})


class OrderDraftConfirmAPI(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="order_drafts_confirm",
        summary="The second operator confirms a drafted order (confirm: true): it is issued, by them.",
        request=CONFIRM_REQUEST,
        responses=_draft_responses({201: ORDER_DOCUMENT}, denied=SECOND_PERSON_DENIED),
    )
    def post(self, request, draft_id: int):
        draft = _visible_draft(request, draft_id)
        data = _body(request)
        viewer = viewer_for_request(request)
        order = _service_call(
            lambda: order_draft_confirm(
                viewer=viewer, actor=request.user, draft=draft, confirm=data.get("confirm"), request=request
            )
        )
        return _issued_or_drafted(order, viewer)


class OrderDraftWithdrawAPI(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="order_drafts_withdraw",
        summary="Withdraw a drafted order (its drafter or another operator of the town).",
        request=WITHDRAW_REQUEST,
        responses=_draft_responses({200: DRAFT}, denied=DENIED),
    )
    def post(self, request, draft_id: int):
        draft = _visible_draft(request, draft_id)
        data = _body(request) if request.body else {}
        _service_call(
            lambda: order_draft_withdraw(
                viewer=viewer_for_request(request), actor=request.user, draft=draft, reason=data.get("reason", ""),
                request=request,
            )
        )
        return Response(draft_document(_visible_draft(request, draft_id)))
