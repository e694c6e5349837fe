"""REST endpoints for alerts and their CAP documents. Thin: parse, call a selector or service, render."""

from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, NotFound, PermissionDenied, ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api_params import choice_param, int_param, slug_param
from sensors.api import parse_as_of
from tenancy.api_errors import REQUEST_ERROR
from tenancy.permissions import Action, permits
from tenancy.selectors import viewer_for_request

from .cap import CONTENT_TYPE as CAP_CONTENT_TYPE
from .cap import cap_document
from .models import Alert, AlertEvent, AlertRule
from .selectors import alert_document, alert_events, alert_get, alert_list, alert_list_at, event_document
from .services import AlertNoteError, AlertStateError, alert_acknowledge, alert_note_add, alert_resolve

DEFAULT_LIMIT = 100
MAX_LIMIT = 500
MAX_OFFSET = 10**9
# The alert levels, as the schema declares them and the query parameters check them.
LEVEL = {"type": "integer", "minimum": 1, "maximum": 5}

ERROR = inline_serializer("AlertError", {"detail": serializers.CharField()})
STATION = inline_serializer(
    "AlertStation",
    {
        "code": serializers.CharField(),
        "name_ja": serializers.CharField(),
        "name_en": serializers.CharField(),
        "kind": serializers.CharField(),
        "municipality": serializers.CharField(help_text="Owner town's slug."),
        "visibility": serializers.CharField(),
        "unit": serializers.CharField(),
        "lon": serializers.FloatField(),
        "lat": serializers.FloatField(),
    },
)
RULE = inline_serializer(
    "AlertRuleSummary",
    {
        "id": serializers.IntegerField(),
        "kind": serializers.ChoiceField(choices=AlertRule.Kind.choices),
        "name": serializers.CharField(),
        "window_minutes": serializers.FloatField(allow_null=True),
    },
)
ALERT_FIELDS = {
    "id": serializers.IntegerField(),
    "state": serializers.ChoiceField(choices=Alert.State.choices),
    "level": serializers.IntegerField(min_value=1, max_value=5),
    "peak_level": serializers.IntegerField(min_value=1, max_value=5),
    "level_name_ja": serializers.CharField(help_text="Gauge state in the scheme's words, e.g. 警戒レベル4相当."),
    "level_name_en": serializers.CharField(help_text="e.g. Level 4 equivalent."),
    "reached_ja": serializers.CharField(help_text="What the reading reached, e.g. 危険な水位に到達 (may be empty)."),
    "reached_en": serializers.CharField(help_text="e.g. Danger level reached (may be empty)."),
    "action_ja": serializers.CharField(help_text="Plain-language advice for residents (may be empty)."),
    "action_en": serializers.CharField(help_text="Plain-language advice in English (may be empty)."),
    "level_scheme": serializers.CharField(allow_null=True, help_text="Version of the level words used."),
    "unconfirmed": serializers.BooleanField(
        help_text="Raised by an implausible jump, not yet confirmed by the next reading (HQ only)."
    ),
    "station": STATION,
    "rule": RULE,
    "value": serializers.FloatField(allow_null=True, help_text="The rule's measure at the latest reading."),
    "unit": serializers.CharField(),
    "observed_at": serializers.DateTimeField(allow_null=True),
    "rate_of_rise_per_hour": serializers.FloatField(allow_null=True, help_text="Over the last 30 minutes."),
    "next_level": serializers.IntegerField(allow_null=True),
    "time_to_next_level_minutes": serializers.FloatField(
        allow_null=True, help_text="Linear trend; absent when the trend does not support a forecast."
    ),
    "time_to_next_level_uncertainty_minutes": serializers.FloatField(allow_null=True, help_text="One sigma."),
    "opened_at": serializers.DateTimeField(),
    "updated_at": serializers.DateTimeField(),
    "acknowledged_at": serializers.DateTimeField(allow_null=True),
    "resolved_at": serializers.DateTimeField(allow_null=True),
    "cap_url": serializers.URLField(),
    "url": serializers.URLField(),
    "station_page_url": serializers.URLField(help_text="The station's page, for people (hydrograph, thresholds)."),
    "board_url": serializers.URLField(help_text="The HQ alert board at this alert's row (#row-<station>-<concern>), for people who may act on it."),
}
ALERT = inline_serializer("Alert", ALERT_FIELDS)
EVENT_FIELDS = {
    "id": serializers.IntegerField(),
    "kind": serializers.ChoiceField(choices=AlertEvent.Kind.choices),
    "level": serializers.IntegerField(),
    "value": serializers.FloatField(allow_null=True),
    "observed_at": serializers.DateTimeField(allow_null=True),
    "at": serializers.DateTimeField(),
    "actor": serializers.CharField(allow_null=True, help_text="Username; null for the system."),
    "note": serializers.CharField(),
}
EVENT = inline_serializer("AlertEvent", EVENT_FIELDS, many=True)
ALERT_DETAIL = inline_serializer("AlertDetail", {**ALERT_FIELDS, "events": EVENT})
ALERT_PAGE = inline_serializer(
    "AlertPage",
    {
        "count": serializers.IntegerField(),
        "limit": serializers.IntegerField(),
        "offset": serializers.IntegerField(),
        "results": inline_serializer("AlertPageItem", ALERT_FIELDS, many=True),
    },
)
ACTION_REPLY = inline_serializer(
    "AlertActionReply",
    {
        "recorded": serializers.BooleanField(help_text="False when this was a repeat (nothing changed)."),
        "alert": ALERT,
    },
)


OWNER_ONLY = "Not of the owner town acting for it, the viewer role, a gateway token, or the CSRF token missing."


def action_responses(replies: dict, *, denied: str) -> dict:
    """The responses of an action endpoint: its own replies, and the refusals every action shares."""
    return {
        **replies,
        401: OpenApiResponse(ERROR, description="Not logged in."),
        403: OpenApiResponse(ERROR, description=denied),
        404: OpenApiResponse(ERROR, description="No such alert, or not one the caller may see."),
    }


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The alert cannot make this transition."
    default_code = "conflict"


class CapXMLRenderer(BaseRenderer):
    """Lets clients ask for `Accept: application/cap+xml`; errors still come as a short XML text."""

    media_type = CAP_CONTENT_TYPE
    format = "cap"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if isinstance(data, bytes):
            return data
        from xml.sax.saxutils import escape

        detail = data.get("detail", "") if isinstance(data, dict) else str(data)
        return f'<?xml version="1.0" encoding="utf-8"?><error>{escape(str(detail))}</error>'.encode()


def _visible_alert(request, alert_id: int) -> Alert:
    try:
        return alert_get(viewer=viewer_for_request(request), alert_id=alert_id)
    except Alert.DoesNotExist:
        # Identical for "no such alert" and "not yours to see".
        raise NotFound("No alert with this id.") from None


class AlertListAPI(APIView):
    @extend_schema(
        operation_id="alerts_list",
        summary="Alerts the caller may see, newest first (anonymous: public stations, level 3 and above).",
        parameters=[
            OpenApiParameter("state", enum=Alert.State.values, required=False),
            OpenApiParameter("municipality", str, required=False, description="Owner town's slug."),
            OpenApiParameter("kind", enum=AlertRule.Kind.values, required=False, description="Rule kind."),
            OpenApiParameter("level", LEVEL, required=False, description="Current level, exactly."),
            OpenApiParameter("min_level", LEVEL, required=False, description="Current level, at least."),
            OpenApiParameter("station", str, required=False, description="Station code."),
            OpenApiParameter(
                "limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}, required=False,
                description=f"Default {DEFAULT_LIMIT}.",
            ),
            OpenApiParameter("offset", {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET}, required=False),
            OpenApiParameter(
                "at", OpenApiTypes.DATETIME, required=False,
                description="The alerts open at this past moment, as they stood then (state and level filters "
                "apply to then); visibility is today's.",
            ),
        ],
        responses={200: ALERT_PAGE, 400: REQUEST_ERROR},
    )
    def get(self, request):
        query = request.query_params
        limit = int_param(query, "limit", low=1, high=MAX_LIMIT, default=DEFAULT_LIMIT)
        offset = int_param(query, "offset", low=0, high=MAX_OFFSET, default=0)
        if "at" in query:
            return self._as_of(request, parse_as_of("at", query["at"]), limit, offset)
        alerts = alert_list(
            viewer=viewer_for_request(request),
            state=choice_param(query, "state", Alert.State.values),
            municipality=slug_param(query),
            kind=choice_param(query, "kind", AlertRule.Kind.values),
            level=int_param(query, "level", low=LEVEL["minimum"], high=LEVEL["maximum"]),
            min_level=int_param(query, "min_level", low=LEVEL["minimum"], high=LEVEL["maximum"]),
            station=query.get("station") or None,
        )
        return Response(
            {
                "count": alerts.count(),
                "limit": limit,
                "offset": offset,
                "results": [alert_document(alert) for alert in alerts[offset : offset + limit]],
            }
        )


    def _as_of(self, request, at, limit: int, offset: int) -> Response:
        query = request.query_params
        state = choice_param(query, "state", Alert.State.values)
        level = int_param(query, "level", low=LEVEL["minimum"], high=LEVEL["maximum"])
        min_level = int_param(query, "min_level", low=LEVEL["minimum"], high=LEVEL["maximum"])
        alerts = [
            alert
            for alert in alert_list_at(
                viewer=viewer_for_request(request),
                at=at,
                municipality=slug_param(query),
                kind=choice_param(query, "kind", AlertRule.Kind.values),
                station=query.get("station") or None,
            )
            if (state is None or alert.state == state)
            and (level is None or alert.level == level)
            and (min_level is None or alert.level >= min_level)
        ]
        page = alerts[offset : offset + limit]
        return Response(
            {"count": len(alerts), "limit": limit, "offset": offset, "results": [alert_document(a) for a in page]}
        )


class AlertDetailAPI(APIView):
    @extend_schema(
        operation_id="alerts_detail",
        summary="One alert with its audit trail of events.",
        responses={200: ALERT_DETAIL, 404: ERROR},
    )
    def get(self, request, alert_id: int):
        alert = _visible_alert(request, alert_id)
        events = alert_events(alert, viewer=viewer_for_request(request))
        return Response({**alert_document(alert), "events": [event_document(e) for e in events]})


def _alert_for(request, alert_id: int, action: Action) -> Alert:
    """The alert, if the caller may see it (else 404) and may do `action` to it (else 403)."""
    alert = _visible_alert(request, alert_id)
    if not permits(viewer_for_request(request), action, alert):
        raise PermissionDenied(ACTION_DENIED[action])
    return alert


ACTION_DENIED = {
    Action.ACKNOWLEDGE: "Only operators and admins of the town that owns this station, acting for it, can do this.",
    Action.RESOLVE: "Only operators and admins of the town that owns this station, acting for it, can do this.",
    Action.ADD_NOTE: "Notes take the operator or admin role in the town you are acting for.",
}


class _AlertActionAPI(APIView):
    permission_classes = [IsAuthenticated]
    action = None
    # The service making the transition: (alert, user) -> the recorded event, or None for a repeat.
    transition = None

    def post(self, request, alert_id: int):
        alert = _alert_for(request, alert_id, type(self).action)
        try:
            event = type(self).transition(alert, request.user)
        except AlertStateError as exc:
            raise Conflict(str(exc)) from None
        return Response({"recorded": event is not None, "alert": alert_document(alert)})


class AlertAcknowledgeAPI(_AlertActionAPI):
    action = Action.ACKNOWLEDGE
    transition = staticmethod(alert_acknowledge)

    @extend_schema(
        operation_id="alerts_acknowledge",
        summary="Acknowledge an alert (operators and admins). Repeating it is harmless.",
        request=None,
        responses=action_responses(
            {200: ACTION_REPLY, 409: OpenApiResponse(ERROR, description="The alert is resolved.")},
            denied=OWNER_ONLY,
        ),
    )
    def post(self, request, alert_id: int):
        return super().post(request, alert_id)


class AlertResolveAPI(_AlertActionAPI):
    action = Action.RESOLVE
    transition = staticmethod(alert_resolve)

    @extend_schema(
        operation_id="alerts_resolve",
        summary="Resolve an alert by hand (operators and admins). Resolving a resolved alert is harmless.",
        request=None,
        responses=action_responses(
            {200: ACTION_REPLY},
            denied=OWNER_ONLY,
        ),
    )
    def post(self, request, alert_id: int):
        return super().post(request, alert_id)


NOTE_REQUEST = inline_serializer("AlertNoteRequest", {"note": serializers.CharField(max_length=200)})
NOTE_REPLY = inline_serializer("AlertNoteReply", {"event": inline_serializer("AlertNoteEvent", EVENT_FIELDS)})


class AlertNoteAPI(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="alerts_note",
        summary="Add a note to an alert's trail (operators and admins of any town that sees the station).",
        request=NOTE_REQUEST,
        responses=action_responses(
            {201: NOTE_REPLY, 400: OpenApiResponse(ERROR, description="No note, too long, or control characters.")},
            denied="The viewer role in the town you act for, a gateway token, or the CSRF token missing.",
        ),
    )
    def post(self, request, alert_id: int):
        alert = _alert_for(request, alert_id, Action.ADD_NOTE)
        note = request.data.get("note") if isinstance(request.data, dict) else None
        if not isinstance(note, str):
            raise ValidationError({"note": "Send {\"note\": \"<text>\"}."})
        try:
            event = alert_note_add(alert, request.user, note)
        except AlertNoteError as exc:
            raise ValidationError({"note": str(exc)}) from None
        return Response({"event": event_document(event)}, status=status.HTTP_201_CREATED)


class AlertCapAPI(APIView):
    renderer_classes = [JSONRenderer, CapXMLRenderer]

    @extend_schema(
        operation_id="alerts_cap",
        summary="The alert as an OASIS CAP 1.2 message (newest version, or the version of ?event=<id>).",
        parameters=[OpenApiParameter("event", int, required=False, description="Event id of an earlier version.")],
        responses={(200, CAP_CONTENT_TYPE): OpenApiTypes.STR, 400: REQUEST_ERROR, 404: ERROR},
    )
    def get(self, request, alert_id: int):
        alert = _visible_alert(request, alert_id)
        event_id = int_param(request.query_params, "event", low=1, high=2**63 - 1)
        document = cap_document(alert, event_id=event_id)
        if document is None:
            raise NotFound("No CAP message for this alert version.")
        return HttpResponse(document, content_type=f"{CAP_CONTENT_TYPE}; charset=utf-8")
