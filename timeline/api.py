"""REST endpoints of the timeline: `GET /api/v1/events`, `GET /api/v1/shelters` (now or `?at=`) and
`GET /api/v1/replay/frames` (the map at many past moments, compactly, for playback)."""

from __future__ import annotations

from datetime import timedelta

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api_params import choice_param, int_param, slug_param
from dashboard.live_geo import shelter_features
from geo.selectors import shelter_list, shelter_list_at
from sensors.api import observation_window, parse_as_of
from sensors.models import StationKind
from sensors.selectors import FRAME_FIELDS, MAX_FRAMES, MAX_FRAMES_SPAN, local_iso, replay_frames
from tenancy.api_errors import REQUEST_ERROR
from tenancy.selectors import Viewer, viewer_for_request

from .selectors import KIND_GROUPS, KINDS, TimelineEvent, map_url, timeline_events

DEFAULT_LIMIT = 100
MAX_LIMIT = 500
MAX_OFFSET = 10**6

EVENT_FIELDS = {
    "id": serializers.CharField(),
    "at": serializers.DateTimeField(),
    "kind": serializers.ChoiceField(choices=KINDS),
    "municipality": serializers.CharField(),
    "subject": serializers.CharField(help_text="Station code, shelter code, station group name or order-<id>."),
    "name_ja": serializers.CharField(),
    "name_en": serializers.CharField(),
    "summary_ja": serializers.CharField(),
    "summary_en": serializers.CharField(),
    "level": serializers.IntegerField(allow_null=True),
    "previous_level": serializers.IntegerField(allow_null=True),
    "value": serializers.FloatField(allow_null=True),
    "actor": serializers.CharField(allow_null=True, help_text="Town staff only."),
    "alert": serializers.IntegerField(allow_null=True),
    "detail": serializers.DictField(),
    "map_url": serializers.CharField(),
}
EVENT_PAGE = inline_serializer(
    "TimelineEventPage",
    {
        "since": serializers.DateTimeField(),
        "until": serializers.DateTimeField(),
        "count": serializers.IntegerField(),
        "limit": serializers.IntegerField(),
        "offset": serializers.IntegerField(),
        "results": inline_serializer("TimelineEvent", EVENT_FIELDS, many=True),
    },
)


def event_document(event: TimelineEvent, *, viewer: Viewer) -> dict:
    return {
        "id": event.id,
        "at": local_iso(event.at),
        "kind": event.kind,
        "municipality": event.municipality,
        "subject": event.subject,
        "name_ja": event.name_ja,
        "name_en": event.name_en,
        "summary_ja": event.summary_ja,
        "summary_en": event.summary_en,
        "level": event.level,
        "previous_level": event.previous_level,
        "value": event.value,
        "actor": event.actor,
        "alert": event.alert,
        "detail": event.detail,
        "map_url": map_url(event.at, viewer=viewer),
    }


def parse_kinds(raw: str | None) -> list[str] | None:
    """`kind=level.up,alert` → those kinds; a group name (the part before the dot) means all its kinds."""
    if not raw:
        return None
    kinds: list[str] = []
    for part in raw.split(","):
        part = part.strip()
        if part in KINDS:
            kinds.append(part)
        elif part in KIND_GROUPS:
            kinds += [kind for kind in KINDS if kind.startswith(part + ".")]
        else:
            raise ValidationError({"kind": f"{part[:40]!r} is not an event kind; use {', '.join(KIND_GROUPS)} or one of {', '.join(KINDS)}."})
    return kinds


class EventListAPI(APIView):
    @extend_schema(
        operation_id="events_list",
        summary="What happened in a window (default: the last 24 hours), oldest first, as the caller may see it.",
        parameters=[
            OpenApiParameter("since", OpenApiTypes.DATETIME, required=False),
            OpenApiParameter("until", OpenApiTypes.DATETIME, required=False),
            OpenApiParameter("municipality", str, required=False, description="Town slug."),
            OpenApiParameter("kind", str, required=False, description="Comma-separated kinds or groups: " + ", ".join(KIND_GROUPS)),
            OpenApiParameter(
                "limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}, required=False,
                description=f"Default {DEFAULT_LIMIT}.",
            ),
            OpenApiParameter("offset", {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET}, required=False),
        ],
        responses={200: EVENT_PAGE, 400: REQUEST_ERROR},
    )
    def get(self, request):
        query = request.query_params
        limit = int_param(query, "limit", low=1, high=MAX_LIMIT, default=DEFAULT_LIMIT)
        offset = int_param(query, "offset", low=0, high=MAX_OFFSET, default=0)
        kinds = parse_kinds(query.get("kind"))
        since, until = observation_window(query)
        viewer = viewer_for_request(request)
        events = timeline_events(
            viewer=viewer, since=since, until=until, municipality=slug_param(query), kinds=kinds
        )
        return Response({
            "since": local_iso(since),
            "until": local_iso(until),
            "count": len(events),
            "limit": limit,
            "offset": offset,
            "results": [event_document(event, viewer=viewer) for event in events[offset : offset + limit]],
        })


class ShelterListAPI(APIView):
    @extend_schema(
        operation_id="shelters_list",
        summary="Every shelter as GeoJSON (public information), now or as it stood at `at`.",
        parameters=[OpenApiParameter("at", OpenApiTypes.DATETIME, required=False)],
        responses={(200, "application/geo+json"): OpenApiTypes.OBJECT, 400: REQUEST_ERROR},
    )
    def get(self, request):
        if "at" in request.query_params:
            shelters = shelter_list_at(parse_as_of("at", request.query_params["at"]))
        else:
            shelters = shelter_list()
        return Response({"type": "FeatureCollection", "features": shelter_features(shelters)},
                        content_type="application/geo+json")


MAX_STEP_SECONDS = 3600
FRAMES_PAGE = inline_serializer(
    "ReplayFrames",
    {
        "fields": serializers.ListField(child=serializers.ChoiceField(choices=FRAME_FIELDS)),
        "step_seconds": serializers.FloatField(),
        "frames": inline_serializer(
            "ReplayFrame",
            {
                "at": serializers.DateTimeField(),
                "stations": serializers.DictField(
                    child=serializers.ListField(),
                    help_text="Station code → its values of `fields`, in that order. The first frame has every "
                    "station the caller may see; later frames only those whose values changed.",
                ),
            },
            many=True,
        ),
    },
)


class ReplayFramesAPI(APIView):
    @extend_schema(
        operation_id="replay_frames",
        summary="The map at since, since + step, … until, compactly: per moment what changed of each station.",
        parameters=[
            OpenApiParameter("since", OpenApiTypes.DATETIME, required=True),
            OpenApiParameter("until", OpenApiTypes.DATETIME, required=True),
            OpenApiParameter("step", {"type": "integer", "minimum": 1, "maximum": MAX_STEP_SECONDS}, required=True,
                             description="Seconds between moments."),
            OpenApiParameter("kind", enum=StationKind.values, required=False),
            OpenApiParameter("municipality", str, required=False, description="Owner town's slug."),
        ],
        responses={200: FRAMES_PAGE, 400: REQUEST_ERROR},
    )
    def get(self, request):
        query = request.query_params
        for name in ("since", "until", "step"):
            if not query.get(name):
                raise ValidationError({name: "Required."})
        since, until = parse_as_of("since", query["since"]), parse_as_of("until", query["until"])
        step = timedelta(seconds=int_param(query, "step", low=1, high=MAX_STEP_SECONDS))
        if until < since:
            raise ValidationError({"until": "Must not be before 'since'."})
        if until - since > MAX_FRAMES_SPAN:
            raise ValidationError({"until": f"At most {MAX_FRAMES_SPAN.total_seconds() / 3600:g} hours after 'since'."})
        count = (until - since) // step + 1
        if count > MAX_FRAMES:
            raise ValidationError({"step": f"At most {MAX_FRAMES} moments per request; take a longer step."})
        return Response(replay_frames(
            viewer=viewer_for_request(request), since=since, step=step, count=count,
            kind=choice_param(query, "kind", StationKind.values), municipality=slug_param(query),
        ))
