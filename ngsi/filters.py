"""The NGSI-v2 query language of `GET /v2/entities` and of subscription expressions.

Parsing turns URI parameters into small objects or a `BadRequest`; evaluation runs over entities
that a selector has already limited to what the viewer may see, so a pattern or a filter can only
ever tell something about visible stations.

Supported: `id`, `idPattern`, `type`, `typePattern`, `q` (`==` `!=` `>` `>=` `<` `<=` `~=`, `:` as
`==`, ranges `a..b`, lists `a,b,c`, quoted `'text'`, unary `attr` / `!attr`, dotted paths into
structured values, `;` = AND), `georel` (`near;maxDistance:m` / `near;minDistance:m`, `coveredBy`,
`intersects`, `disjoint`, `equals`) with `geometry` (`point`, `line`, `polygon`, `box`) and
`coords` as `lat,lon;lat,lon` (Orion's order, the reverse of GeoJSON), `attrs`, `metadata`,
`orderBy`, `limit`, `offset`, `options` (`count`, `keyValues`, `values`, `unique`, `normalized`).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from datetime import timezone as dt_timezone
from typing import Any, Callable, Iterable

import shapely
from shapely.geometry import LineString, Point, Polygon, box
from shapely.geometry.base import BaseGeometry

from .entities import KEY_VALUES, NORMALIZED, VALUES, StationEntity, name_is_valid
from .errors import BadRequest

MAX_PATTERN_LENGTH = 256
MAX_PARAM_LENGTH = 4096
MAX_Q_STATEMENTS = 32
MAX_LIST_ITEMS = 100
MAX_COORDS = 1000
MAX_ORDER_KEYS = 10
DEFAULT_LIMIT = 20
EARTH_RADIUS_METRES = 6_371_008.8

# --- regular expressions from clients -----------------------------------------------------------

try:  # Python 3.11+
    from re import _constants as _sre_constants
    from re import _parser as _sre_parser
except ImportError:  # pragma: no cover - older Pythons
    import sre_constants as _sre_constants  # type: ignore[no-redef]
    import sre_parse as _sre_parser  # type: ignore[no-redef]

_REPEATS = {
    _sre_constants.MAX_REPEAT,
    _sre_constants.MIN_REPEAT,
    *([_sre_constants.POSSESSIVE_REPEAT] if hasattr(_sre_constants, "POSSESSIVE_REPEAT") else []),
}


def _catastrophic_construct(items, inside_repeat: bool = False) -> str | None:
    """Constructs that make a backtracking engine exponential: nested repeats, alternation under a
    repeat, backreferences. Python's `re` has no time limit, so such patterns are refused up front."""
    for op, av in items:
        if op in _REPEATS:
            _low, high, sub = av
            if inside_repeat and high > 1:
                return "a repetition inside a repetition"
            found = _catastrophic_construct(sub, inside_repeat or high > 1)
        elif op is _sre_constants.SUBPATTERN:
            found = _catastrophic_construct(av[-1], inside_repeat)
        elif op is _sre_constants.BRANCH:
            if inside_repeat:
                return "an alternation inside a repetition"
            found = next((r for branch in av[1] if (r := _catastrophic_construct(branch, inside_repeat))), None)
        elif op in (_sre_constants.GROUPREF, _sre_constants.GROUPREF_EXISTS):
            return "a backreference"
        elif op in (_sre_constants.ASSERT, _sre_constants.ASSERT_NOT):
            found = _catastrophic_construct(av[1], inside_repeat)
        else:
            found = None
        if found:
            return found
    return None


def compile_pattern(text: str, what: str) -> re.Pattern:
    if not isinstance(text, str) or not text:
        raise BadRequest(f"Empty {what}")
    if len(text) > MAX_PATTERN_LENGTH:
        raise BadRequest(f"{what} is longer than {MAX_PATTERN_LENGTH} characters")
    try:
        parsed = _sre_parser.parse(text)
        compiled = re.compile(text)
    except (re.error, RecursionError, OverflowError) as exc:
        raise BadRequest(f"Invalid regular expression in {what}: {exc}") from None
    risky = _catastrophic_construct(parsed.data if hasattr(parsed, "data") else parsed)
    if risky:
        raise BadRequest(f"{what} contains {risky}, which is not accepted (it can take exponential time)")
    return compiled


# --- small lexing helpers -----------------------------------------------------------------------


def _split_outside_quotes(text: str, separator: str) -> list[str]:
    parts, current, quoted, i = [], [], False, 0
    while i < len(text):
        char = text[i]
        if char == "'":
            quoted = not quoted
            current.append(char)
        elif not quoted and text.startswith(separator, i):
            parts.append("".join(current))
            current = []
            i += len(separator)
            continue
        else:
            current.append(char)
        i += 1
    if quoted:
        raise BadRequest(f"Unterminated quote in {text[:60]!r}")
    parts.append("".join(current))
    return parts


@dataclass(frozen=True)
class Operand:
    text: str
    quoted: bool


def _operand(raw: str) -> Operand:
    if len(raw) >= 2 and raw.startswith("'") and raw.endswith("'"):
        return Operand(raw[1:-1], True)
    if "'" in raw:
        raise BadRequest(f"Misplaced quote in {raw[:60]!r}")
    if not raw:
        raise BadRequest("Empty value in q")
    return Operand(raw, False)


# A '+' in an unencoded query string arrives as a space: "10:00:00 09:00" meant "10:00:00+09:00".
_SPACE_FOR_PLUS = re.compile(r" (\d{2}:?\d{2})$")


def parse_time(text: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(_SPACE_FOR_PLUS.sub(r"+\1", text.strip()))
    except ValueError:
        return None
    # Orion reads a time without offset as UTC.
    parsed = parsed if parsed.tzinfo else parsed.replace(tzinfo=dt_timezone.utc)
    try:
        parsed.astimezone(dt_timezone.utc)
    except (OverflowError, ValueError):
        return None  # 9999-12-31T23:59:59-14:00 has no UTC equivalent: not a time we can compare or store
    return parsed


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


# --- q: the simple query language -----------------------------------------------------------------

_BINARY = ("==", "!=", ">=", "<=", "~=")
_OPERATOR_CHARACTERS = "=!<>~:"


@dataclass(frozen=True)
class Statement:
    path: tuple[str, ...]
    op: str  # "exists", "absent", "==", "!=", ">", ">=", "<", "<=", "~="
    operands: tuple[Operand, ...] = ()
    low: Operand | None = None
    high: Operand | None = None
    pattern: re.Pattern | None = None

    def matches(self, entity: StationEntity) -> bool:
        attribute = entity.attrs.get(self.path[0])
        if self.op == "absent":
            return attribute is None
        if attribute is None:
            return False
        if self.op == "exists":
            return True
        value, present = attribute.value, True
        for key in self.path[1:]:
            if isinstance(value, dict) and key in value:
                value = value[key]
            else:
                present = False
                break
        if not present or value is None:
            return False
        is_time = attribute.type == "DateTime" and len(self.path) == 1
        if self.op == "~=":
            return isinstance(value, str) and bool(self.pattern.search(value))
        subject = _comparable(value, is_time)
        if subject is None:
            return False
        if self.low is not None:
            low, high = _coerce(self.low, value, is_time), _coerce(self.high, value, is_time)
            inside = _ordered(low, subject, high)
            return inside if self.op == "==" else (inside is False)
        candidates = [_coerce(operand, value, is_time) for operand in self.operands]
        if self.op == "==":
            return any(candidate is not None and candidate == subject for candidate in candidates)
        if self.op == "!=":
            return all(candidate is None or candidate != subject for candidate in candidates)
        other = candidates[0]
        if other is None:
            return False
        try:
            return {">": subject > other, ">=": subject >= other, "<": subject < other, "<=": subject <= other}[self.op]
        except TypeError:
            return False


def _comparable(value: Any, is_time: bool):
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        return parse_time(value) if is_time else value
    return None


def _coerce(operand: Operand, value: Any, is_time: bool):
    """The operand read the way the attribute's value is typed; None when it cannot be."""
    if isinstance(value, bool):
        return {"true": True, "false": False}.get(operand.text) if not operand.quoted else None
    if isinstance(value, (int, float)):
        return None if operand.quoted else _number(operand.text)
    if isinstance(value, str):
        return parse_time(operand.text) if is_time else operand.text
    return None


def _ordered(low, subject, high) -> bool | None:
    if low is None or high is None:
        return None
    try:
        return low <= subject <= high
    except TypeError:
        return None


def _attribute_path(text: str) -> tuple[str, ...]:
    path = tuple(text.split("."))
    if not all(name_is_valid(part) for part in path):
        raise BadRequest(f"Invalid attribute name in q: {text[:60]!r}")
    return path


def _statement(text: str) -> Statement:
    text = text.strip()
    if not text:
        raise BadRequest("Empty statement in q")
    if text.startswith("!") and not text.startswith("!="):
        return Statement(_attribute_path(text[1:]), "absent")
    position = next((i for i, char in enumerate(text) if char in _OPERATOR_CHARACTERS), None)
    if position is None:
        return Statement(_attribute_path(text), "exists")
    two = text[position : position + 2]
    if two in _BINARY:
        op, rest = two, text[position + 2 :]
    elif text[position] in "<>":
        op, rest = text[position], text[position + 1 :]
    elif text[position] == ":":
        op, rest = "==", text[position + 1 :]
    else:
        raise BadRequest(f"Invalid operator in q statement {text[:60]!r}")
    if position == 0:
        raise BadRequest(f"Missing attribute name in q statement {text[:60]!r}")
    path = _attribute_path(text[:position])
    if not rest:
        raise BadRequest(f"Missing value in q statement {text[:60]!r}")
    if rest[0] in _OPERATOR_CHARACTERS:
        # `height>>1`, `height<>1`, `height:=1`: no such operator (Orion answers 400, not an empty list).
        raise BadRequest(f"Invalid operator in q statement {text[:60]!r}")
    if op == "~=":
        operand = _operand(rest)
        return Statement(path, op, pattern=compile_pattern(operand.text, "the ~= pattern in q"))
    if op in ("==", "!="):
        bounds = _split_outside_quotes(rest, "..")
        if len(bounds) == 2:
            return Statement(path, op, low=_operand(bounds[0]), high=_operand(bounds[1]))
        if len(bounds) > 2:
            raise BadRequest(f"Invalid range in q statement {text[:60]!r}")
        items = _split_outside_quotes(rest, ",")
        if len(items) > MAX_LIST_ITEMS:
            raise BadRequest(f"More than {MAX_LIST_ITEMS} values in one q statement")
        return Statement(path, op, operands=tuple(_operand(item) for item in items))
    if len(_split_outside_quotes(rest, ",")) > 1 or len(_split_outside_quotes(rest, "..")) > 1:
        raise BadRequest(f"Lists and ranges are only allowed with == and != (q statement {text[:60]!r})")
    return Statement(path, op, operands=(_operand(rest),))


def parse_q(text: str) -> list[Statement]:
    if len(text) > MAX_PARAM_LENGTH:
        raise BadRequest(f"q is longer than {MAX_PARAM_LENGTH} characters")
    statements = _split_outside_quotes(text, ";")
    if len(statements) > MAX_Q_STATEMENTS:
        raise BadRequest(f"q has more than {MAX_Q_STATEMENTS} statements")
    return [_statement(statement) for statement in statements]


# --- geographical queries ---------------------------------------------------------------------------

GEO_RELATIONS = ("near", "coveredBy", "intersects", "disjoint", "equals")
GEOMETRIES = ("point", "line", "polygon", "box")


def haversine_metres(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    d_phi, d_lambda = phi2 - phi1, math.radians(lon2 - lon1)
    a = math.sin(d_phi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(d_lambda / 2) ** 2
    return 2 * EARTH_RADIUS_METRES * math.asin(min(1.0, math.sqrt(a)))


@dataclass(frozen=True)
class GeoFilter:
    relation: str
    shape: BaseGeometry
    max_distance: float | None = None
    min_distance: float | None = None

    def matches(self, entity: StationEntity) -> bool:
        point = Point(entity.lon, entity.lat)
        if self.relation == "near":
            distance = haversine_metres(entity.lon, entity.lat, self.shape.x, self.shape.y)
            if self.max_distance is not None and distance > self.max_distance:
                return False
            return self.min_distance is None or distance >= self.min_distance
        if self.relation == "coveredBy":
            return self.shape.covers(point)
        if self.relation == "intersects":
            return self.shape.intersects(point)
        if self.relation == "disjoint":
            return self.shape.disjoint(point)
        return self.shape.equals(point)


def _coordinates(text: str) -> list[tuple[float, float]]:
    """`lat,lon;lat,lon` -> [(lon, lat), ...] (GeoJSON / shapely order)."""
    if len(text) > MAX_PARAM_LENGTH * 8:
        raise BadRequest("coords is too long")
    pairs = text.split(";")
    if len(pairs) > MAX_COORDS:
        raise BadRequest(f"coords has more than {MAX_COORDS} points")
    points = []
    for pair in pairs:
        parts = pair.split(",")
        if len(parts) != 2:
            raise BadRequest(f"Invalid coords: {pair[:60]!r} is not 'lat,lon'")
        lat, lon = _number(parts[0].strip()), _number(parts[1].strip())
        if lat is None or lon is None:
            raise BadRequest(f"Invalid coords: {pair[:60]!r} is not two numbers 'lat,lon'")
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise BadRequest(
                f"Invalid coords: {pair[:60]!r} is out of range (coords are 'lat,lon': latitude first, "
                "-90..90, then longitude, -180..180)"
            )
        points.append((lon, lat))
    return points


def parse_geo(georel: str | None, geometry: str | None, coords: str | None) -> GeoFilter | None:
    given = [name for name, value in (("georel", georel), ("geometry", geometry), ("coords", coords)) if value]
    if not given:
        return None
    if len(given) != 3:
        raise BadRequest("georel, geometry and coords must be used together")
    relation, *modifiers = georel.split(";")
    if relation not in GEO_RELATIONS:
        raise BadRequest(f"Invalid georel {relation[:40]!r}: use one of {', '.join(GEO_RELATIONS)}")
    if geometry not in GEOMETRIES:
        raise BadRequest(f"Invalid geometry {geometry[:40]!r}: use one of {', '.join(GEOMETRIES)}")
    points = _coordinates(coords)
    distances: dict[str, float] = {}
    for modifier in modifiers:
        name, _, raw = modifier.partition(":")
        if relation != "near" or name not in ("maxDistance", "minDistance"):
            raise BadRequest(f"Invalid georel modifier {modifier[:40]!r}")
        number = _number(raw)
        if number is None or number < 0:
            raise BadRequest(f"{name} must be a non-negative number of metres")
        distances[name] = number
    if relation == "near":
        if geometry != "point":
            raise BadRequest("georel near needs geometry=point")
        if not distances:
            raise BadRequest("georel near needs maxDistance or minDistance")
    shape = _shape(geometry, points)
    if relation == "equals" and geometry != "point":
        raise BadRequest("georel equals is only supported with geometry=point (stations are points)")
    return GeoFilter(relation, shape, distances.get("maxDistance"), distances.get("minDistance"))


def _shape(geometry: str, points: list[tuple[float, float]]) -> BaseGeometry:
    if geometry == "point":
        if len(points) != 1:
            raise BadRequest("geometry=point takes exactly one 'lat,lon' in coords")
        return Point(points[0])
    if geometry == "line":
        if len(points) < 2:
            raise BadRequest("geometry=line takes at least two points in coords")
        return LineString(points)
    if geometry == "box":
        if len(points) != 2:
            raise BadRequest("geometry=box takes exactly two corners in coords")
        (lon1, lat1), (lon2, lat2) = points
        return box(min(lon1, lon2), min(lat1, lat2), max(lon1, lon2), max(lat1, lat2))
    if len(points) < 4 or points[0] != points[-1]:
        raise BadRequest("geometry=polygon takes at least four points in coords, the last equal to the first")
    polygon = Polygon(points)
    if not shapely.is_valid(polygon):
        raise BadRequest(f"Invalid polygon: {shapely.is_valid_reason(polygon)}")
    return polygon


# --- the rest of the URI parameters -------------------------------------------------------------------

READ_OPTIONS = {"count", "keyValues", "values", "unique", "normalized", "skipForwarding"}
FORMAT_OPTIONS = {"keyValues": KEY_VALUES, "values": VALUES, "unique": VALUES, "normalized": NORMALIZED}


def parse_options(raw: str | None, allowed: set[str]) -> set[str]:
    options = {item.strip() for item in (raw or "").split(",") if item.strip()}
    unknown = sorted(options - allowed)
    if unknown:
        raise BadRequest(f"Invalid value for URI param /options/: {unknown[0][:40]}")
    return options


def attrs_format_of(options: set[str]) -> str:
    formats = {FORMAT_OPTIONS[option] for option in options if option in FORMAT_OPTIONS}
    if len(formats) > 1:
        raise BadRequest("options may name only one of keyValues, values/unique and normalized")
    return formats.pop() if formats else NORMALIZED


def parse_names(raw: str | None, what: str) -> list[str] | None:
    if raw is None or raw == "":
        return None
    if len(raw) > MAX_PARAM_LENGTH:
        raise BadRequest(f"{what} is too long")
    names = [name.strip() for name in raw.split(",")]
    for name in names:
        if name != "*" and not name_is_valid(name):
            raise BadRequest(f"Invalid name in {what}: {name[:60]!r}")
    return names


def parse_int(raw: str | None, name: str, *, default: int, low: int, high: int | None) -> int:
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or len(raw) > 9:
        raise BadRequest(f"Bad pagination {name}: /{raw[:20]}/ [must be a decimal number]")
    value = int(raw)
    if value < low:
        raise BadRequest(f"Bad pagination {name}: /{raw}/ [a value of at least {low} is required]")
    if high is not None and value > high:
        raise BadRequest(f"Bad pagination {name}: /{raw}/ [max: {high}]")
    return value


@dataclass
class Page:
    limit: int
    offset: int
    count: bool


def parse_page(params, *, max_limit: int, options: set[str]) -> Page:
    return Page(
        limit=parse_int(params.get("limit"), "limit", default=min(DEFAULT_LIMIT, max_limit), low=1, high=max_limit),
        offset=parse_int(params.get("offset"), "offset", default=0, low=0, high=None),
        count="count" in options,
    )


@dataclass
class EntityFilter:
    """Which entities: everything of a list query except projection and paging (also a subscription's subject)."""

    ids: set[str] | None = None
    id_pattern: re.Pattern | None = None
    types: set[str] | None = None
    type_pattern: re.Pattern | None = None
    q: list[Statement] = field(default_factory=list)
    geo: GeoFilter | None = None

    def matches(self, entity: StationEntity) -> bool:
        if self.ids is not None and entity.id not in self.ids:
            return False
        if self.id_pattern is not None and not self.id_pattern.search(entity.id):
            return False
        if self.types is not None and entity.type not in self.types:
            return False
        if self.type_pattern is not None and not self.type_pattern.search(entity.type):
            return False
        if self.geo is not None and not self.geo.matches(entity):
            return False
        return all(statement.matches(entity) for statement in self.q)


def _list(raw: str, what: str) -> set[str]:
    if len(raw) > MAX_PARAM_LENGTH * 4:
        raise BadRequest(f"{what} is too long")
    items = {item.strip() for item in raw.split(",") if item.strip()}
    if not items:
        raise BadRequest(f"Empty {what}")
    return items


def parse_entity_filter(params) -> EntityFilter:
    if params.get("id") and params.get("idPattern"):
        raise BadRequest("id and idPattern cannot be used together")
    if params.get("type") and params.get("typePattern"):
        raise BadRequest("type and typePattern cannot be used together")
    if params.get("mq"):
        raise BadRequest("mq (queries on metadata) is not supported by this NGSI-v2 subset")
    return EntityFilter(
        ids=_list(params["id"], "id") if params.get("id") else None,
        id_pattern=compile_pattern(params["idPattern"], "idPattern") if params.get("idPattern") else None,
        types=_list(params["type"], "type") if params.get("type") else None,
        type_pattern=compile_pattern(params["typePattern"], "typePattern") if params.get("typePattern") else None,
        q=parse_q(params["q"]) if params.get("q") else [],
        geo=parse_geo(params.get("georel"), params.get("geometry"), params.get("coords")),
    )


# --- ordering ---------------------------------------------------------------------------------------


def parse_order_by(raw: str | None) -> list[tuple[str, bool]]:
    """`orderBy=a,!b` -> [("a", False), ("b", True)] (True = descending)."""
    if not raw:
        return []
    keys = []
    for item in raw.split(","):
        item = item.strip()
        descending = item.startswith("!")
        name = item[1:] if descending else item
        if not name_is_valid(name):
            raise BadRequest(f"Invalid orderBy key {item[:60]!r}")
        keys.append((name, descending))
    if len(keys) > MAX_ORDER_KEYS:
        raise BadRequest(f"orderBy takes at most {MAX_ORDER_KEYS} keys")
    return keys


def _sort_value(entity: StationEntity, name: str):
    if name == "id":
        return (1, entity.id)
    if name == "type":
        return (1, entity.type)
    attribute = entity.attrs.get(name)
    if attribute is None or attribute.value is None:
        return None
    value = attribute.value
    if isinstance(value, (bool, int, float)):
        return (0, float(value))
    if isinstance(value, str):
        return (1, value)
    return (2, json.dumps(value, sort_keys=True))


def sort_entities(entities: list[StationEntity], order_by: Iterable[tuple[str, bool]]) -> list[StationEntity]:
    """Stable multi-key sort; entities without the key come last in either direction."""
    result = list(entities)
    for name, descending in reversed(list(order_by)):
        keyed = [(entity, _sort_value(entity, name)) for entity in result]
        present = [pair for pair in keyed if pair[1] is not None]
        absent = [entity for entity, key in keyed if key is None]
        present.sort(key=lambda pair: pair[1], reverse=descending)
        result = [entity for entity, _ in present] + absent
    return result


def unique_values(rows: list, key: Callable = json.dumps) -> list:
    seen, result = set(), []
    for row in rows:
        marker = key(row)
        if marker not in seen:
            seen.add(marker)
            result.append(row)
    return result


# --- JSON documents (op/query here, subscriptions in documents.py) -----------------------------------

_KIND_NAMES = {dict: "an object", list: "an array", str: "a string", bool: "true or false", int: "an integer"}


def expect_type(value: Any, kind: type, where: str):
    # JSON true/false are Python ints too; they are not numbers here.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise BadRequest(f"{where} must be {_KIND_NAMES[kind]}")
    return value


def reject_unknown_fields(document: dict, known: set[str], where: str) -> None:
    unknown = sorted(set(document) - known)
    if unknown:
        raise BadRequest(f"Unrecognized field in {where}: /{unknown[0][:60]}/")


# --- POST /v2/op/query: the same query as a JSON document -------------------------------------------

QUERY_FIELDS = {"entities", "attrs", "expression", "metadata"}
EXPRESSION_FIELDS = {"q", "mq", "georel", "geometry", "coords"}
SUBJECT_FIELDS = {"id", "idPattern", "type", "typePattern"}
MAX_QUERY_SUBJECTS = 100


@dataclass
class QueryDocument:
    """`{"entities": [...], "attrs": [...], "expression": {...}, "metadata": [...]}`: entities match
    any one of `subjects` (all when there are none) and every part of `expression`."""

    subjects: list[EntityFilter]
    expression: EntityFilter
    attrs: list[str] | None
    metadata: list[str] | None

    def matches(self, entity: StationEntity) -> bool:
        if self.subjects and not any(subject.matches(entity) for subject in self.subjects):
            return False
        return self.expression.matches(entity)


def _string_fields(document: dict, where: str) -> dict[str, str]:
    for key, value in document.items():
        expect_type(value, str, f"{where}.{key[:40]}")
    return document


def _name_list(raw: Any, what: str) -> list[str] | None:
    if raw is None:
        return None
    expect_type(raw, list, what)
    for index, name in enumerate(raw):
        expect_type(name, str, f"{what}[{index}]")
    return parse_names(",".join(raw), what) if raw else None


def parse_query_document(document: Any) -> QueryDocument:
    expect_type(document, dict, "the query document")
    reject_unknown_fields(document, QUERY_FIELDS, "the query document")
    entities = expect_type(document.get("entities", []), list, "entities")
    if len(entities) > MAX_QUERY_SUBJECTS:
        raise BadRequest(f"At most {MAX_QUERY_SUBJECTS} items in entities")
    subjects = []
    for index, subject in enumerate(entities):
        where = f"entities[{index}]"
        expect_type(subject, dict, where)
        reject_unknown_fields(subject, SUBJECT_FIELDS, where)
        _string_fields(subject, where)
        if not subject.get("id") and not subject.get("idPattern"):
            raise BadRequest(f"{where} needs id or idPattern")
        subjects.append(parse_entity_filter(subject))
    expression = expect_type(document.get("expression", {}), dict, "expression")
    reject_unknown_fields(expression, EXPRESSION_FIELDS, "expression")
    return QueryDocument(
        subjects=subjects,
        expression=parse_entity_filter(_string_fields(expression, "expression")),
        attrs=_name_list(document.get("attrs"), "attrs"),
        metadata=_name_list(document.get("metadata"), "metadata"),
    )
