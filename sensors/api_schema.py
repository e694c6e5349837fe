"""OpenAPI descriptions of the station API's non-JSON-object bodies: the GeoJSON FeatureCollection
of `/api/v1/stations` (RFC 7946) and the CSV tables, so clients and validators know their shape."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, OpenApiResponse

from .models import Observation, StationKind, Visibility

_NULLABLE_NUMBER = {"type": "number", "nullable": True}
_NULLABLE_TEXT = {"type": "string", "nullable": True}
QUALITY_DESCRIPTION = (
    "Quality flag of the reading: ok; suspect (an implausible jump, a spike until the next reading confirms "
    "it); range (outside the station's plausible range, stored flagged, never dropped); flatline (identical "
    "readings for too long: a stuck sensor). A silent gauge is not a reading flag: see `stale`."
)
QUALITY = {"type": "string", "enum": list(Observation.Quality.values), "description": QUALITY_DESCRIPTION}
# null (in the enum too, as OpenAPI 3.0 asks) while a station has no reading yet.
NULLABLE_QUALITY = {**QUALITY, "enum": [*Observation.Quality.values, None], "nullable": True}

STATION_FEATURE_COLLECTION = {
    "type": "object",
    "description": "RFC 7946 GeoJSON FeatureCollection: one Point Feature per station, coordinates [lon, lat] (WGS 84).",
    "required": ["type", "features"],
    "properties": {
        "type": {"type": "string", "enum": ["FeatureCollection"]},
        "features": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["type", "id", "geometry", "properties"],
                "properties": {
                    "type": {"type": "string", "enum": ["Feature"]},
                    "id": {"type": "string", "description": "The station code."},
                    "geometry": {
                        "type": "object",
                        "required": ["type", "coordinates"],
                        "properties": {
                            "type": {"type": "string", "enum": ["Point"]},
                            "coordinates": {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2},
                        },
                    },
                    "properties": {
                        "type": "object",
                        "required": ["code", "name", "kind", "municipality", "unit", "value", "observed_at", "level",
                                     "stale", "visibility", "thresholds"],
                        "properties": {
                            "code": {"type": "string"},
                            "name": {"type": "string", "description": "name_ja or name_en, by the request's language"},
                            "name_ja": {"type": "string"},
                            "name_en": {"type": "string"},
                            "kind": {"type": "string", "enum": list(StationKind.values)},
                            "municipality": {"type": "string", "description": "The owner town's slug."},
                            "river": {"type": "string"},
                            "unit": {"type": "string"},
                            "datum": {"type": "string", "description": "Reference datum of a stage or tide "
                                      "level, e.g. T.P.; empty: the gauge's own zero."},
                            "value": _NULLABLE_NUMBER,
                            "observed_at": {**_NULLABLE_TEXT, "format": "date-time"},
                            "level": {"type": "integer", "nullable": True, "minimum": 0, "maximum": 5},
                            "quality": NULLABLE_QUALITY,
                            "trend": _NULLABLE_TEXT,
                            "accumulations": {"type": "object", "additionalProperties": True},
                            "thresholds": {"type": "array", "items": {"type": "object", "additionalProperties": True}},
                            "stale": {"type": "boolean"},
                            "stale_after": {**_NULLABLE_TEXT, "format": "date-time"},
                            "visibility": {"type": "string", "enum": list(Visibility.values)},
                        },
                    },
                },
            },
        },
    },
}


def csv_response(description: str, example: str) -> OpenApiResponse:
    return OpenApiResponse(
        response={"type": "string", "description": description},
        description=description,
        examples=[OpenApiExample("csv", value=example, media_type="text/csv", response_only=True)],
    )


STATIONS_CSV = csv_response(
    "UTF-8 CSV with a header row: code,name_ja,name_en,kind,municipality,river,unit,value,observed_at,level,"
    "stale,visibility,lon,lat. Text cells a spreadsheet would run as a formula start with an apostrophe.",
    "code,name_ja,name_en,kind,municipality,river,unit,value,observed_at,level,stale,visibility,lon,lat\r\n"
    "A-PUBLIC,本町,Honmachi,river,town-a,水森川,m,3.2,2026-11-21T21:00:00+09:00,2,False,public,140.0,35.0\r\n",
)
OBSERVATIONS_CSV = csv_response(
    "UTF-8 CSV with a header row: station,observed_at,value,quality (observed_at in ISO 8601 with offset).",
    "station,observed_at,value,quality\r\nA-PUBLIC,2026-11-21T21:00:00+09:00,3.2,ok\r\n",
)

OBSERVATION_HISTORY = {
    "type": "object",
    "description": "Readings of one station, oldest first, flagged readings included (with their flag).",
    "required": ["station", "unit", "since", "until", "observations"],
    "properties": {
        "station": {"type": "string"},
        "unit": {"type": "string"},
        "since": {"type": "string", "format": "date-time"},
        "until": {"type": "string", "format": "date-time"},
        "observations": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["observed_at", "value", "quality"],
                "properties": {
                    "observed_at": {"type": "string", "format": "date-time"},
                    "value": {"type": "number"},
                    "quality": QUALITY,
                },
            },
        },
    },
}
