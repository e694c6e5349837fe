"""Stations as NGSI-v2 entities shaped after FIWARE Smart Data Models.

| station kind | entity type       | id                                  | measured attribute | unit (unitCode)          |
| ------------ | ----------------- | ----------------------------------- | ------------------ | ------------------------ |
| river        | `WaterObserved`   | `urn:ngsi-ld:WaterObserved:<code>`  | `height`           | m (MTR)                  |
| reservoir    | `WaterObserved`   | `urn:ngsi-ld:WaterObserved:<code>`  | `fillingLevel`     | parts per one (C62)      |
| tide         | `WaterObserved`   | `urn:ngsi-ld:WaterObserved:<code>`  | `height`           | m above the datum (MTR)  |
| rain         | `WeatherObserved` | `urn:ngsi-ld:WeatherObserved:<code>`| `precipitation`    | mm per reading (MMT)     |

Reservoirs store their storage rate (貯水率) in percent; Smart Data Models' `fillingLevel` is a
ratio, so 87.5 % is `0.875` on this interface, both ways. A tide gauge is a `WaterObserved` whose
`height` carries the metadata `measurand` = `tideLevel` and `referenceDatum` (e.g. `T.P.`), so a
client that knows water levels reads it unchanged and one that cares can tell the sea from a river.
docs/ngsi.md is the prose version.

Nothing here touches the database: a selector loads the stations (through the visibility rules)
and this module only describes them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from django.core.exceptions import ObjectDoesNotExist
from django.utils import timezone

from sensors.models import Station, StationKind, StationState
from sensors.services import ItemError, parse_station_code

ID_PREFIX = "urn:ngsi-ld:"
WATER_OBSERVED = "WaterObserved"
WEATHER_OBSERVED = "WeatherObserved"
ENTITY_TYPES = (WATER_OBSERVED, WEATHER_OBSERVED)

TYPE_OF_KIND = {
    StationKind.RIVER: WATER_OBSERVED,
    StationKind.RESERVOIR: WATER_OBSERVED,
    StationKind.RAIN: WEATHER_OBSERVED,
    StationKind.TIDE: WATER_OBSERVED,
}
MEASURED_ATTRIBUTE = {
    StationKind.RIVER: "height",
    StationKind.RESERVOIR: "fillingLevel",
    StationKind.RAIN: "precipitation",
    StationKind.TIDE: "height",
}
# What the measured attribute measures, where the attribute's name alone is ambiguous.
MEASURAND = {StationKind.TIDE: "tideLevel"}
# UN/CEFACT common codes, as Smart Data Models ask for in the `unitCode` metadata.
UNIT_CODE = {StationKind.RIVER: "MTR", StationKind.RESERVOIR: "C62", StationKind.RAIN: "MMT", StationKind.TIDE: "MTR"}
# Stored value = NGSI value * factor (reservoirs: percent stored, ratio shown).
STORED_PER_NGSI_UNIT = {
    StationKind.RIVER: 1.0, StationKind.RESERVOIR: 100.0, StationKind.RAIN: 1.0, StationKind.TIDE: 1.0,
}

# The time of a written reading may come in either of these: `dateObserved` is the Smart Data
# Models name, `TimeInstant` what FIWARE IoT Agents add to every entity and attribute.
TIME_ATTRIBUTES = ("dateObserved", "TimeInstant")

# Attributes that exist on every entity but are not readings: why each one cannot be written.
READ_ONLY_ATTRIBUTES = {
    "name": "the station register",
    "alternateName": "the station register",
    "location": "the station register",
    "dataProvider": "the station register (the owner municipality)",
    "thresholds": "the station register (thresholds are versioned platform data)",
    "alertLevel": "the platform: it is derived from the latest reading and the station's thresholds",
    "forecast": "the platform: it is the gauge's water-level forecast (forecasts app)",
}

# Orion refuses these in attribute values (and NGSI clients such as filip refuse entities that
# carry them), so free text is shown with their full-width forms, which read the same in Japanese.
ORION_SAFE_TEXT = str.maketrans({'"': "＂", "'": "＇", "<": "＜", ">": "＞", "(": "（", ")": "）", "=": "＝",
                                 ";": "；", "\n": " ", "\r": " "})

NUMERIC_TYPES = ("Number", "Float", "Integer")
TIME_TYPES = ("DateTime", "Text", "ISO8601")
# Orion's rule for ids, types and attribute names: no control characters, whitespace or these.
FORBIDDEN_NAME_CHARACTERS = re.compile(r"[\x00-\x20<>\"'=;()&?/#\x7f]")
MAX_NAME_LENGTH = 256


@dataclass(frozen=True)
class Attribute:
    type: str
    value: Any
    metadata: dict = field(default_factory=dict)


@dataclass
class StationEntity:
    """One station seen as an entity; `attrs` keeps a stable attribute order for rendering."""

    id: str
    type: str
    station_pk: int
    code: str
    kind: str
    municipality_id: int
    lon: float
    lat: float
    attrs: dict[str, Attribute]

    @property
    def measured_attribute(self) -> str:
        return MEASURED_ATTRIBUTE[StationKind(self.kind)]

    @property
    def changed_by_a_reading(self) -> tuple[str, ...]:
        # alertLevel is re-derived with every reading, so it counts as updated by each one.
        return (self.measured_attribute, "dateObserved", "alertLevel")


def entity_id_of(station: Station) -> str:
    return f"{ID_PREFIX}{TYPE_OF_KIND[StationKind(station.kind)]}:{station.code}"


def parse_entity_id(entity_id: str) -> tuple[str, str] | None:
    """`urn:ngsi-ld:<Type>:<code>` -> (type, code); None for anything that cannot be one of ours."""
    if not isinstance(entity_id, str) or not entity_id.startswith(ID_PREFIX):
        return None
    entity_type, sep, code = entity_id[len(ID_PREFIX) :].partition(":")
    if not sep or entity_type not in ENTITY_TYPES:
        return None
    try:
        return entity_type, parse_station_code(code)
    except ItemError:  # empty, too long, a NUL...: no station of ours has such a code
        return None


def kinds_of_type(entity_type: str) -> list[str]:
    return [kind for kind, name in TYPE_OF_KIND.items() if name == entity_type]


def name_is_valid(name: Any) -> bool:
    return (
        isinstance(name, str)
        and 0 < len(name) <= MAX_NAME_LENGTH
        and not FORBIDDEN_NAME_CHARACTERS.search(name)
    )


def to_ngsi_value(kind: str, stored: float | None) -> float | None:
    if stored is None:
        return None
    factor = STORED_PER_NGSI_UNIT[StationKind(kind)]
    return stored if factor == 1.0 else round(stored / factor, 10)


def to_stored_value(kind: str, ngsi_value: float) -> float:
    factor = STORED_PER_NGSI_UNIT[StationKind(kind)]
    return ngsi_value if factor == 1.0 else round(ngsi_value * factor, 8)


def orion_safe_text(text: str) -> str:
    return text.translate(ORION_SAFE_TEXT)


def _state_of(station: Station) -> StationState | None:
    try:
        return station.state
    except StationState.DoesNotExist:
        return None


def _forecast_of(station: Station):
    """The gauge's current forecast when the selector loaded it (ngsi.selectors does), else None:
    never a query per station."""
    if not Station.forecast.is_cached(station):
        return None
    try:
        return station.forecast
    except ObjectDoesNotExist:
        return None


def _iso(seconds: float | None) -> str | None:
    from datetime import UTC, datetime

    return timezone.localtime(datetime.fromtimestamp(seconds, UTC)).isoformat() if seconds is not None else None


def forecast_value(kind: str, forecast) -> dict:
    """WaterObserved's `forecast`: median and 80 % band per step (in the measured attribute's unit),
    the next threshold's predicted crossing, P(氾濫危険水位 within 1 h). A forecast, not an observation."""
    crossing = forecast.crossing
    return {
        "method": forecast.method,
        "basedOn": timezone.localtime(forecast.based_on).isoformat(),
        "interval": 0.8,
        "points": [
            {"time": _iso(t), "median": to_ngsi_value(kind, m), "lower": to_ngsi_value(kind, lo), "upper": to_ngsi_value(kind, up)}
            for t, m, lo, up in forecast.points
        ],
        "crossing": {
            "threshold": crossing["name"],
            "level": crossing["level"],
            "at": _iso(crossing["at"]),
            "earliest": _iso(crossing["earliest"]),
            "latest": _iso(crossing["latest"]),
        } if crossing else None,
        "dangerProbability1h": forecast.danger_probability_1h,
    }


def measured_metadata(station: Station) -> dict:
    kind = StationKind(station.kind)
    metadata = {"unitCode": {"type": "Text", "value": UNIT_CODE[kind]}}
    if kind in MEASURAND:
        metadata["measurand"] = {"type": "Text", "value": MEASURAND[kind]}
    if station.datum:
        metadata["referenceDatum"] = {"type": "Text", "value": orion_safe_text(station.datum)}
    return metadata


def station_entity(station: Station) -> StationEntity:
    """Needs `municipality`, `state` and `thresholds` loaded (sensors.selectors.station_list does)."""
    kind = StationKind(station.kind)
    state = _state_of(station)
    observed_at = state.observed_at if state else None
    measured = MEASURED_ATTRIBUTE[kind]
    thresholds = [
        {
            "name": threshold.name,
            "level": threshold.level,
            "value": to_ngsi_value(kind, threshold.value),
            "windowMinutes": int(threshold.window.total_seconds() // 60) if threshold.window else None,
        }
        for threshold in station.thresholds.all()
    ]
    attrs = {
        "name": Attribute("Text", orion_safe_text(station.name_ja)),
        "alternateName": Attribute("Text", orion_safe_text(station.name_en)),
        "location": Attribute("geo:json", {"type": "Point", "coordinates": [station.lon, station.lat]}),
        "dateObserved": Attribute("DateTime", timezone.localtime(observed_at).isoformat() if observed_at else None),
        measured: Attribute("Number", to_ngsi_value(kind, state.value if state else None), measured_metadata(station)),
        "alertLevel": Attribute("Number", state.level if state else None),
        "dataProvider": Attribute("Text", orion_safe_text(station.municipality.slug)),
        "thresholds": Attribute("StructuredValue", thresholds),
    }
    forecast = _forecast_of(station)
    if forecast is not None and forecast.points:
        attrs["forecast"] = Attribute("StructuredValue", forecast_value(kind, forecast))
    return StationEntity(
        id=entity_id_of(station),
        type=TYPE_OF_KIND[kind],
        station_pk=station.pk,
        code=station.code,
        kind=kind,
        municipality_id=station.municipality_id,
        lon=station.lon,
        lat=station.lat,
        attrs=attrs,
    )


# --- rendering ---------------------------------------------------------------------------------

NORMALIZED = "normalized"
KEY_VALUES = "keyValues"
VALUES = "values"


def _metadata(attribute: Attribute, metadata_names: list[str] | None) -> dict:
    if metadata_names is None or "*" in metadata_names:
        return dict(attribute.metadata)
    return {name: attribute.metadata[name] for name in metadata_names if name in attribute.metadata}


def render_attribute(attribute: Attribute, metadata_names: list[str] | None = None) -> dict:
    return {"type": attribute.type, "value": attribute.value, "metadata": _metadata(attribute, metadata_names)}


def selected_attributes(entity: StationEntity, names: Iterable[str] | None) -> list[tuple[str, Attribute]]:
    """Attributes in the order asked for (`attrs=`), or all of them; unknown names are left out."""
    if names is None or "*" in names:
        return list(entity.attrs.items())
    return [(name, entity.attrs[name]) for name in dict.fromkeys(names) if name in entity.attrs]


def render_attrs(
    entity: StationEntity,
    attrs_format: str = NORMALIZED,
    names: Iterable[str] | None = None,
    metadata_names: list[str] | None = None,
):
    """The attributes of an entity without id and type (GET .../attrs), in the requested format."""
    chosen = selected_attributes(entity, names)
    if attrs_format == VALUES:
        return [attribute.value for _, attribute in chosen]
    if attrs_format == KEY_VALUES:
        return {name: attribute.value for name, attribute in chosen}
    return {name: render_attribute(attribute, metadata_names) for name, attribute in chosen}


def render_entity(
    entity: StationEntity,
    attrs_format: str = NORMALIZED,
    names: Iterable[str] | None = None,
    metadata_names: list[str] | None = None,
):
    attrs = render_attrs(entity, attrs_format, names, metadata_names)
    if attrs_format == VALUES:
        return attrs
    return {"id": entity.id, "type": entity.type, **attrs}


def type_descriptions(entities: Iterable[StationEntity]) -> list[dict]:
    """`GET /v2/types`: per entity type, its attributes (with their types) and how many entities."""
    described: dict[str, dict] = {}
    for entity in entities:
        entry = described.setdefault(entity.type, {"type": entity.type, "attrs": {}, "count": 0})
        entry["count"] += 1
        for name, attribute in entity.attrs.items():
            types = entry["attrs"].setdefault(name, {"types": []})["types"]
            if attribute.type not in types:
                types.append(attribute.type)
    return [described[name] for name in sorted(described)]
