"""REST endpoints for observations and stations. Thin: parse, call a service or selector, render."""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.http import HttpResponse, StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import NotAuthenticated, NotFound, ParseError, ValidationError
from rest_framework.permissions import BasePermission
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api_params import choice_param, slug_param
from tenancy.api_errors import REQUEST_ERROR
from tenancy.authentication import BearerTokenAuthentication
from tenancy.models import IngestToken
from tenancy.selectors import viewer_for_request

from .api_schema import OBSERVATION_HISTORY, OBSERVATIONS_CSV, STATION_FEATURE_COLLECTION, STATIONS_CSV
from .models import Observation, Station, StationKind
from .parsers import EMPTY_BODY, ObservationCSVParser, ObservationJSONParser
from .selectors import (
    local_iso,
    observation_history,
    observation_history_text,
    station_feature_collection,
    station_feature_collection_at,
    station_feature_collection_at_json,
    station_get,
    tide_anomaly_series,
    visible_station_get,
)
from .services import observation_ingest


class HasIngestToken(BasePermission):
    message = "A gateway token is required: 'Authorization: Bearer <token>'."

    def has_permission(self, request, view):
        return isinstance(request.auth, IngestToken)


ERROR = inline_serializer("Error", {"detail": serializers.CharField()})
INGEST_REPLY = inline_serializer(
    "IngestReply",
    {
        "accepted": serializers.IntegerField(),
        "duplicates": serializers.IntegerField(),
        "rejected": inline_serializer(
            "IngestRejection", {"index": serializers.IntegerField(), "error": serializers.CharField()}, many=True
        ),
    },
)
INGEST_REQUEST = inline_serializer(
    "IngestRequest",
    {
        "observations": inline_serializer(
            "IngestObservation",
            {
                "station": serializers.CharField(),
                "observed_at": serializers.DateTimeField(help_text="ISO 8601 with a UTC offset"),
                "value": serializers.FloatField(),
            },
            many=True,
        )
    },
)


class ChunkedBodyRequest(Request):
    """DRF reads no body from a request without Content-Length; a chunked upload (gateways send them)
    has none but says Transfer-Encoding (daphne and uvicorn pass the header on, decoded bodies).
    Its body is read like any other, through the parsers' size limit."""

    def _load_stream(self):
        super()._load_stream()
        meta = self._request.META
        if self._stream is None and meta.get("HTTP_TRANSFER_ENCODING") and not self._request._read_started:
            self._stream = self._request


class ObservationIngestAPI(APIView):
    authentication_classes = [BearerTokenAuthentication]
    permission_classes = [HasIngestToken]
    parser_classes = [ObservationJSONParser, ObservationCSVParser]

    def initialize_request(self, request, *args, **kwargs):
        return ChunkedBodyRequest(
            request,
            parsers=self.get_parsers(),
            authenticators=self.get_authenticators(),
            negotiator=self.get_content_negotiator(),
            parser_context=self.get_parser_context(request),
        )

    def permission_denied(self, request, message=None, code=None):
        # Say what is needed in the API's own words, whatever the Accept-Language.
        if not isinstance(request.auth, IngestToken):
            raise NotAuthenticated(HasIngestToken.message)
        super().permission_denied(request, message, code)

    @extend_schema(
        operation_id="observations_ingest",
        summary="Push readings from a gateway (JSON or text/csv with header station,observed_at,value).",
        request={"application/json": INGEST_REQUEST, "text/csv": OpenApiTypes.STR},
        responses={
            200: INGEST_REPLY,
            400: OpenApiResponse(ERROR, description="Malformed document; nothing was stored."),
            401: OpenApiResponse(ERROR, description="Missing, invalid or revoked token."),
            413: OpenApiResponse(ERROR, description="More than INGEST_MAX_BATCH items or INGEST_MAX_BODY_BYTES."),
            415: OpenApiResponse(ERROR, description="Content type other than JSON or CSV."),
        },
    )
    def post(self, request):
        items = request.data
        if not isinstance(items, list):
            # DRF hands an empty body over as an empty form, not to our parsers.
            raise ParseError(EMPTY_BODY)
        source = Observation.Source.CSV if request.content_type.startswith("text/csv") else Observation.Source.HTTP
        report = observation_ingest(municipality=request.auth.municipality, items=items, source=source)
        return Response(report.as_dict())


class StationListAPI(APIView):
    @extend_schema(
        operation_id="stations_list",
        summary="GeoJSON FeatureCollection of the stations the caller may see (anonymous: public only).",
        parameters=[
            OpenApiParameter("kind", enum=StationKind.values, required=False),
            OpenApiParameter("municipality", str, required=False, description="Owner town's slug."),
            OpenApiParameter("format", enum=["geojson", "csv"], required=False),
            OpenApiParameter(
                "at", OpenApiTypes.DATETIME, required=False,
                description="The map as it stood at this past moment (ISO 8601 with a UTC offset); "
                "visibility is today's.",
            ),
        ],
        responses={
            (200, "application/geo+json"): OpenApiResponse(STATION_FEATURE_COLLECTION, description="GeoJSON"),
            (200, "text/csv"): STATIONS_CSV,
            400: REQUEST_ERROR,
        },
    )
    def get(self, request):
        query = request.query_params
        output = query.get("format", "geojson")
        if output not in ("geojson", "json", "csv"):
            raise ValidationError({"format": "Must be geojson or csv."})
        filters = {"kind": choice_param(query, "kind", StationKind.values), "municipality": slug_param(query)}
        viewer = viewer_for_request(request)
        if "at" in request.query_params:
            at = parse_as_of("at", request.query_params["at"])
            if output != "csv" and self._renders_compact(request):
                # Written from JSON text the process keeps per station, not rendered from dicts.
                body = station_feature_collection_at_json(viewer=viewer, at=at, **filters)
                return HttpResponse(body, content_type="application/geo+json")
            collection = station_feature_collection_at(viewer=viewer, at=at, **filters)
        else:
            collection = station_feature_collection(viewer=viewer, **filters)
        if output == "csv":
            return self._csv(collection)
        return Response(collection, content_type="application/geo+json")

    def _renders_compact(self, request) -> bool:
        """Whether the JSON renderer would write compact JSON (not asked for `indent` in Accept)."""
        return request.accepted_renderer.get_indent(request.accepted_media_type, {}) is None

    CSV_COLUMNS = ("code", "name_ja", "name_en", "kind", "municipality", "river", "unit", "value", "observed_at",
                   "level", "stale", "visibility")

    def _csv(self, collection) -> HttpResponse:
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="stations.csv"'
        writer = csv.writer(response)
        writer.writerow([*self.CSV_COLUMNS, "lon", "lat"])
        for feature in collection["features"]:
            props = feature["properties"]
            writer.writerow([*(csv_cell(props[column]) for column in self.CSV_COLUMNS), *feature["geometry"]["coordinates"]])
        return response


def csv_cell(value):
    """Text cells that a spreadsheet would run as a formula are prefixed with an apostrophe."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value


# A '+' in an unencoded query string arrives as a space: "10:00:00 09:00" meant "10:00:00+09:00".
SPACE_FOR_PLUS = re.compile(r" (\d{2}:?\d{2})$")


def parse_query_time(name: str, raw: str) -> datetime:
    text = SPACE_FOR_PLUS.sub(r"+\1", raw.strip())
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError({name: f"{raw[:40]!r} is not an ISO 8601 time."}) from None
    if parsed.tzinfo is None:
        raise ValidationError({name: "Needs a UTC offset, e.g. 2026-11-22T09:00:00+09:00 (encode '+' as %2B)."})
    return parsed


# Clock skew between a browser's slider and the server: an `at` this little ahead means "now".
AS_OF_SKEW = timedelta(minutes=5)
AS_OF_EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)


def parse_as_of(name: str, raw: str, *, now: datetime | None = None) -> datetime:
    """A past moment to read the state at: ISO 8601 with an offset, not before 1900, not in the
    future (beyond AS_OF_SKEW, which is read as now); in UTC."""
    now = now or timezone.now()
    if len(raw) > 64 or any(not character.isprintable() for character in raw):
        raise ValidationError({name: f"{raw[:40]!r} is not an ISO 8601 time."})
    parsed = parse_query_time(name, raw)
    try:
        parsed = parsed.astimezone(UTC)
    except OverflowError:
        raise ValidationError({name: f"{raw[:40]!r} is outside the representable range of times."}) from None
    if parsed < AS_OF_EARLIEST:
        raise ValidationError({name: f"{raw[:40]!r} is before 1900."})
    if parsed > now + AS_OF_SKEW:
        raise ValidationError({name: f"{raw[:40]!r} is in the future; leave '{name}' out for the present."})
    return min(parsed, now)


def observation_window(query) -> tuple[datetime, datetime]:
    until = parse_query_time("until", query["until"]) if query.get("until") else timezone.now()
    since = parse_query_time("since", query["since"]) if query.get("since") else until - timedelta(hours=24)
    if since > until:
        raise ValidationError({"since": "Must not be after 'until'."})
    if until - since > timedelta(days=settings.OBSERVATIONS_MAX_DAYS):
        raise ValidationError({"since": f"At most {settings.OBSERVATIONS_MAX_DAYS} days per request."})
    return since, until


class _Echo:
    def write(self, value):
        return value


class StationObservationsAPI(APIView):
    @extend_schema(
        operation_id="station_observations",
        summary="Readings of one station in a time range (default: the last 24 hours).",
        parameters=[
            OpenApiParameter("since", OpenApiTypes.DATETIME, required=False),
            OpenApiParameter("until", OpenApiTypes.DATETIME, required=False),
            OpenApiParameter("format", enum=["json", "csv"], required=False),
        ],
        responses={
            (200, "application/json"): OBSERVATION_HISTORY,
            (200, "text/csv"): OBSERVATIONS_CSV,
            400: REQUEST_ERROR,
            404: ERROR,
        },
    )
    def get(self, request, code: str):
        output = request.query_params.get("format", "json")
        if output not in ("json", "csv"):
            raise ValidationError({"format": "Must be json or csv."})
        try:
            station = visible_station_get(viewer=viewer_for_request(request), code=code)
        except Station.DoesNotExist:
            # Identical for "no such station" and "not yours to see".
            raise NotFound("No station with this code.") from None
        since, until = observation_window(request.query_params)
        if output == "csv":
            writer = csv.writer(_Echo())
            rows = observation_history_text(
                station=station, since=since, until=until, csv_code=writer.writerow([station.code])[:-2]
            )
            if rows is not None:
                response = HttpResponse(CSV_HEADER + rows, content_type="text/csv; charset=utf-8")
            else:
                chunks = observation_history(station=station, since=since, until=until)
                response = StreamingHttpResponse(history_csv(station, chunks), content_type="text/csv; charset=utf-8")
            response["Content-Disposition"] = f'attachment; filename="{station.code}.csv"'
            return response
        envelope = {"station": station.code, "unit": station.unit, "since": local_iso(since), "until": local_iso(until)}
        rows = observation_history_text(station=station, since=since, until=until)
        if rows is not None:
            head = JSONRenderer().render({**envelope, "observations": []})[: -len(b"]}")]
            return HttpResponse(head + rows.encode() + b"]}", content_type="application/json")
        chunks = observation_history(station=station, since=since, until=until)
        return HttpResponse(b"".join(history_json(envelope, chunks)), content_type="application/json")


TIDE_SERIES = inline_serializer("TideSeries", {
    "station": serializers.CharField(),
    "unit": serializers.CharField(),
    "datum": serializers.CharField(help_text="What 0 m means, e.g. T.P."),
    "since": serializers.DateTimeField(),
    "until": serializers.DateTimeField(),
    "harmonics": inline_serializer("TideHarmonics", {
        "mean_level": serializers.FloatField(),
        "epoch": serializers.DateTimeField(),
        "constituents": inline_serializer("TideConstituent", {
            "name": serializers.CharField(), "amplitude": serializers.FloatField(),
            "phase": serializers.FloatField(help_text="degrees at the epoch"),
        }, many=True),
    }, allow_null=True),
    "series": inline_serializer("TidePoint", {
        "observed_at": serializers.DateTimeField(),
        "observed": serializers.FloatField(),
        "predicted": serializers.FloatField(allow_null=True),
        "anomaly": serializers.FloatField(allow_null=True),
    }, many=True),
})


class StationTideAPI(APIView):
    @extend_schema(
        operation_id="station_tide",
        summary="A tide gauge's readings with the astronomical tide and the anomaly (observed − predicted).",
        description=(
            "The anomaly (潮位偏差) shows a storm surge. `harmonics` is the gauge's baseline (mean level "
            "and constituents, sensors.tide) or null when none is set; then `predicted` and `anomaly` are null."
        ),
        parameters=[
            OpenApiParameter("since", OpenApiTypes.DATETIME, required=False),
            OpenApiParameter("until", OpenApiTypes.DATETIME, required=False),
        ],
        responses={200: TIDE_SERIES, 400: REQUEST_ERROR, 404: ERROR},
    )
    def get(self, request, code: str):
        try:
            station = station_get(viewer=viewer_for_request(request), code=code)
        except Station.DoesNotExist:
            raise NotFound("No station with this code.") from None
        if station.kind != StationKind.TIDE:
            raise NotFound(f"{station.code} is not a tide gauge.")
        since, until = observation_window(request.query_params)
        body = tide_anomaly_series(station=station, since=since, until=until)
        return Response({
            "station": station.code, "unit": station.unit, "datum": station.datum,
            "since": local_iso(since), "until": local_iso(until), **body,
        })


# The history renderers write each row with one f-string. They give the same bytes as DRF's
# JSONRenderer and csv.writer would (tests/sensors/test_history_output.py holds them to that):
# times, reprs of finite floats and quality codes need no escaping or quoting, and whatever might
# (the station code, the unit, a quality code) goes through those writers once per response.

def history_json(envelope: dict, chunks) -> Iterator[bytes]:
    """{"station", "unit", "since", "until", "observations": [...]} as UTF-8 JSON, in pieces."""
    renderer = JSONRenderer()
    head = renderer.render({**envelope, "observations": []})
    yield head[: -len(b"]}")]
    quality_json = _Memo(lambda quality: renderer.render(quality).decode())
    separator = ""
    for chunk in chunks:
        text = ",".join(
            f'{{"observed_at":"{observed_at}","value":{_json_float(value)},"quality":{quality_json[quality]}}}'
            for observed_at, value, quality in chunk
        )
        yield (separator + text).encode()
        separator = ","
    yield b"]}"


CSV_HEADER = "station,observed_at,value,quality\r\n"


def history_csv(station: Station, chunks) -> Iterator[str]:
    """station,observed_at,value,quality rows (CRLF-terminated, as csv.writer writes them)."""
    writer = csv.writer(_Echo())
    yield CSV_HEADER
    code = writer.writerow([station.code])[:-2]
    quality_cell = _Memo(lambda quality: writer.writerow([quality])[:-2])
    for chunk in chunks:
        yield "".join(
            f"{code},{observed_at},{value!r},{quality_cell[quality]}\r\n" for observed_at, value, quality in chunk
        )


class _Memo(dict):
    def __init__(self, compute):
        super().__init__()
        self.compute = compute

    def __missing__(self, key):
        self[key] = value = self.compute(key)
        return value


def _json_float(value: float) -> str:
    if -math.inf < value < math.inf:
        return repr(value)
    # What json.dumps(allow_nan=False), and so DRF's strict renderer, says of NaN and infinities.
    raise ValueError(f"Out of range float values are not JSON compliant: {value!r}")
