"""Writes to geodata: importing boundaries, basins, rivers, hazard zones and shelters from files.

`geo_layer_import` reads and checks the whole file first (geo.importers), then writes in ONE
transaction: a file either updates everything it can or, if anything fails while writing, nothing.
Features that cannot be imported (invalid, wrong type, unknown town, bad attribute) are reported
and left out; they never change what is already stored. Re-importing a file updates the same
rows, found by a natural key:

- boundaries: the municipality, by local government code (--code-field) or name; towns are
  never created by an import (onboarding a town is an operator decision), unknown ones are reported;
- basins and rivers: the Japanese name;
- hazard zones: kind + municipality + Japanese name;
- shelters: the shelter code. A shelter's open/closed status is live operational state and is
  never touched by an import.

Several features with the same key (a town's islands, a river's reaches, one depth band in many
polygons) become one geometry (a union, or merged lines).

`shelter_status_set` is the one write of a shelter's live state (open / full / closed), by HQ staff.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Sequence

import shapely
import shapely.geometry
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from tenancy.models import AuditEvent, Municipality
from tenancy.services import audit_record

from .importers import (
    COORDINATE_DECIMALS,
    GEOMETRY_TYPES_OF_LAYER,
    LINES,
    POLYGONS,
    Feature,
    FeatureProblem,
    GeoImportError,
    check_features,
    geojson_geometry,
    merged,
    read_layer,
)
from . import shelter_dataset
from .models import SHELTER_HAZARDS, Basin, HazardZone, River, Shelter

NAME_MAX_LENGTH = 100
CODE_MAX_LENGTH = 40
ADDRESS_MAX_LENGTH = 200
SOURCE_MAX_LENGTH = 200
IN_CHUNK = 500  # keys per IN (...) query; SQLite allows 999 parameters
PROBLEMS_SHOWN = 10

# Attribute names tried when no --*-field option is given: ours first, then common Japanese ones.
DEFAULT_FIELDS = {
    "name": ("name_ja", "name", "名称", "NAME"),
    "name_en": ("name_en", "NAME_EN"),
    "code": ("code", "CODE", "コード"),
    "capacity": ("capacity", "収容人数", "CAPACITY"),
    "address": ("address", "住所", "ADDRESS"),
    "depth_min": ("depth_min_m", "depth_min"),
    "depth_max": ("depth_max_m", "depth_max"),
}


@dataclass
class GeoImportOptions:
    layer: str
    municipality: Municipality | None = None
    name_field: str | None = None
    name_en_field: str | None = None
    code_field: str | None = None
    capacity_field: str | None = None
    address_field: str | None = None
    depth_min_field: str | None = None
    depth_max_field: str | None = None
    hazard_kind: str = HazardZone.Kind.INUNDATION
    source_layer: str | None = None
    assume_crs: str | None = None
    encoding: str | None = None
    fix: bool = False
    dry_run: bool = False


@dataclass
class GeoImportReport:
    path: Path
    layer: str
    source_crs: str
    features: int
    encoding: str | None = None  # how a Shapefile's text was read, when given or detected
    created: int = 0
    updated: int = 0
    problems: list[FeatureProblem] = field(default_factory=list)
    repaired: list[FeatureProblem] = field(default_factory=list)
    dry_run: bool = False


@dataclass
class _Fields:
    """The attribute names to read, resolved against what the file has."""

    name: str | None
    name_en: str | None
    code: str | None
    capacity: str | None
    address: str | None
    depth_min: str | None
    depth_max: str | None

    @classmethod
    def resolve(cls, available: Sequence[str], options: GeoImportOptions) -> _Fields:
        explicit = {
            "name": options.name_field,
            "name_en": options.name_en_field,
            "code": options.code_field,
            "capacity": options.capacity_field,
            "address": options.address_field,
            "depth_min": options.depth_min_field,
            "depth_max": options.depth_max_field,
        }
        resolved = {}
        for role, name in explicit.items():
            if name is not None:
                if name not in available:
                    option = "--" + role.replace("_", "-") + "-field"
                    raise GeoImportError(f"{option} {name!r} is not a field of the file; its fields: {_listed(available)}")
                resolved[role] = name
            else:
                resolved[role] = next((candidate for candidate in DEFAULT_FIELDS[role] if candidate in available), None)
        return cls(**resolved)


def geo_layer_import(
    path: str | os.PathLike, options: GeoImportOptions, *, progress_file: IO[str] | None = None
) -> GeoImportReport:
    """Import one layer of one file into `options.layer`; see the module docstring for the rules."""
    if options.layer not in GEOMETRY_TYPES_OF_LAYER:
        raise GeoImportError(f"unknown layer {options.layer!r}; one of {', '.join(GEOMETRY_TYPES_OF_LAYER)}")
    path = Path(path)
    source = read_layer(
        path, source_layer=options.source_layer, assume_crs=options.assume_crs, encoding=options.encoding
    )
    if source.frame.empty:
        raise GeoImportError(f"{path}: the layer has no features")
    fields = _Fields.resolve(source.fields, options)
    _check_required_fields(fields, options, source.fields)
    checked = check_features(
        source, layer=options.layer, label_field=fields.name or fields.code, fix=options.fix, progress_file=progress_file
    )
    report = GeoImportReport(
        path=path,
        layer=options.layer,
        source_crs=checked.source_crs,
        features=checked.total,
        encoding=source.encoding,
        problems=list(checked.problems),
        repaired=checked.repaired,
        dry_run=options.dry_run,
    )
    if not checked.features:
        raise GeoImportError(_nothing_importable(path, options.layer, report.problems))

    writer = WRITERS[options.layer]
    with transaction.atomic():
        report.created, report.updated = writer(_Context(path, options, fields, report.problems), checked.features)
        if report.created + report.updated == 0:
            raise GeoImportError(_nothing_importable(path, options.layer, report.problems))
        if options.dry_run:
            transaction.set_rollback(True)
    report.problems.sort(key=lambda problem: problem.index)
    return report


def _check_required_fields(fields: _Fields, options: GeoImportOptions, available: Sequence[str]) -> None:
    layer = options.layer
    if layer == "boundaries":
        if not (fields.code or fields.name or options.municipality):
            raise GeoImportError(
                "boundaries are matched to municipalities by --code-field (local government code) or --name-field, "
                f"or all go to --municipality; the file's fields: {_listed(available)}"
            )
        return
    if fields.name is None:
        raise GeoImportError(f"{layer} need a name: give --name-field; the file's fields: {_listed(available)}")
    if layer in CODED_LAYERS and fields.code is None:
        raise GeoImportError(f"{layer} need a code: give --code-field; the file's fields: {_listed(available)}")


def _nothing_importable(path: Path, layer: str, problems: list[FeatureProblem]) -> str:
    shown = "; ".join(str(problem) for problem in problems[:PROBLEMS_SHOWN])
    more = f"; and {len(problems) - PROBLEMS_SHOWN} more" if len(problems) > PROBLEMS_SHOWN else ""
    return f"{path}: no feature can be imported as {layer}, nothing is stored: {shown}{more}"


@dataclass
class _Context:
    path: Path
    options: GeoImportOptions
    fields: _Fields
    problems: list[FeatureProblem]

    def reject(self, feature: Feature, reason: str) -> None:
        self.problems.append(FeatureProblem(feature.index, feature.label, reason))

    def text(self, feature: Feature, role: str, max_length: int | None = None) -> str | None:
        """The attribute for `role` as stripped text; None if absent; ValueError if too long."""
        name = getattr(self.fields, role)
        value = feature.properties.get(name) if name else None
        if value is None:
            return None
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # codes read from numeric columns
        text = str(value).strip()
        if max_length is not None and len(text) > max_length:
            raise ValueError(f"{name} is longer than {max_length} characters")
        return text or None

    def number(self, feature: Feature, role: str) -> float | None:
        name = getattr(self.fields, role)
        value = feature.properties.get(name) if name else None
        if value is None or value == "":
            return None
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name} {str(value)[:40]!r} is not a number") from None
        if number != number or number in (float("inf"), float("-inf")):
            raise ValueError(f"{name} is not a finite number")
        return number


# --- boundaries ---------------------------------------------------------------------------------


def _import_boundaries(context: _Context, features: list[Feature]) -> tuple[int, int]:
    towns = list(Municipality.objects.order_by("code"))
    parts: dict[int, list[Feature]] = defaultdict(list)
    by_pk = {town.pk: town for town in towns}
    match_by = _boundary_match(context)
    for feature in features:
        town, reason = _town_of(context, feature, towns, match_by)
        if town is None:
            context.reject(feature, reason)
        else:
            parts[town.pk].append(feature)
    for pk, group in parts.items():
        town = by_pk[pk]
        town.boundary = geojson_geometry(merged((feature.geometry for feature in group), POLYGONS))
        town.save(update_fields=["boundary"])
    return 0, len(parts)


def _boundary_match(context: _Context) -> str | None:
    """How features find their town: "code", "name", or None (all are --municipality's).

    Default field names count only without --municipality: a single-town file that happens to have
    a `name` column should not have to name the town exactly as the platform does.
    """
    options, fields = context.options, context.fields
    if options.code_field:
        return "code"
    if options.name_field:
        return "name"
    if options.municipality is not None:
        return None
    return "code" if fields.code else "name" if fields.name else None


def _town_of(
    context: _Context, feature: Feature, towns: list[Municipality], match_by: str | None
) -> tuple[Municipality | None, str]:
    chosen = context.options.municipality
    if match_by == "code":
        code = context.text(feature, "code")
        if code is None:
            return None, f"no local government code in {context.fields.code}"
        if not code.isascii() or not code.isdigit() or len(code) not in (5, 6):
            return None, f"{code[:20]!r} is not a 5- or 6-digit local government code"
        # 国土数値情報 and e-Stat use 5 digits; the 6th is a check digit.
        matches = [town for town in towns if town.code == code or (len(code) == 5 and town.code.startswith(code))]
        unknown = f"no municipality with code {code} on the platform (an import does not create towns)"
    elif match_by == "name":
        name = context.text(feature, "name") or ""
        matches = [town for town in towns if name and (town.name_ja == name or town.name_en.lower() == name.lower())]
        unknown = f"no municipality named {name[:40]!r} on the platform (an import does not create towns)"
    else:
        return chosen, ""
    if not matches:
        return None, unknown
    if len(matches) > 1:
        return None, f"matches several municipalities: {', '.join(town.slug for town in matches)}"
    town = matches[0]
    if chosen is not None and town.pk != chosen.pk:
        return None, f"belongs to {town.slug}, not to --municipality {chosen.slug}"
    return town, ""


# --- basins, rivers, hazard zones: keyed by name ------------------------------------------------------


def _import_basins(context: _Context, features: list[Feature]) -> tuple[int, int]:
    return _import_named(context, features, Basin, POLYGONS)


def _import_rivers(context: _Context, features: list[Feature]) -> tuple[int, int]:
    return _import_named(context, features, River, LINES)


def _import_hazard_zones(context: _Context, features: list[Feature]) -> tuple[int, int]:
    options = context.options
    source = context.path.name + (f" layer {options.source_layer}" if options.source_layer else "")

    def extra(group: list[Feature]) -> dict[str, Any]:
        values: dict[str, Any] = {"source": source[:SOURCE_MAX_LENGTH]}
        depths = {(context.number(f, "depth_min"), context.number(f, "depth_max")) for f in group}
        if len(depths) > 1:
            raise ValueError("features with this name have different depth bands; give them different names")
        depth_min, depth_max = depths.pop()
        if depth_min is not None and depth_max is not None and depth_min > depth_max:
            raise ValueError(f"depth band {depth_min:g}-{depth_max:g} m is upside down")
        # Only what the file has: a file without depth columns leaves stored depths alone.
        if context.fields.depth_min:
            values["depth_min_m"] = depth_min
        if context.fields.depth_max:
            values["depth_max_m"] = depth_max
        return values

    return _import_named(
        context,
        features,
        HazardZone,
        POLYGONS,
        scope={"kind": options.hazard_kind, "municipality": options.municipality},
        extra=extra,
    )


def _import_named(
    context: _Context,
    features: list[Feature],
    model,
    allowed: tuple[str, ...],
    *,
    scope: dict[str, Any] | None = None,
    extra: Callable[[list[Feature]], dict[str, Any]] | None = None,
) -> tuple[int, int]:
    groups: dict[str, list[Feature]] = defaultdict(list)
    for feature in features:
        try:
            name = context.text(feature, "name", NAME_MAX_LENGTH)
            context.text(feature, "name_en", NAME_MAX_LENGTH)
        except ValueError as exc:
            context.reject(feature, str(exc))
            continue
        if name is None:
            context.reject(feature, f"no name in {context.fields.name}")
            continue
        groups[name].append(feature)

    existing: dict[str, list] = defaultdict(list)
    for chunk in _chunks(sorted(groups)):
        for row in model.objects.filter(name_ja__in=chunk, **(scope or {})):
            existing[row.name_ja].append(row)

    created = updated = 0
    for name, group in groups.items():
        try:
            values = extra(group) if extra else {}
        except ValueError as exc:
            for feature in group:
                context.reject(feature, str(exc))
            continue
        rows = existing.get(name, [])
        if len(rows) > 1:
            for feature in group:
                context.reject(feature, f"{len(rows)} {model._meta.verbose_name_plural} named {name!r} exist; none updated")
            continue
        values["geometry"] = geojson_geometry(merged((feature.geometry for feature in group), allowed))
        values["name_en"] = next((en for en in (context.text(f, "name_en") for f in group) if en), None) or (
            rows[0].name_en if rows else name
        )
        if rows:
            row = rows[0]
            for attribute, value in values.items():
                setattr(row, attribute, value)
            row.save(update_fields=list(values))
            updated += 1
        else:
            model.objects.create(name_ja=name, **(scope or {}), **values)
            created += 1
    return created, updated


# --- shelters: keyed by code ----------------------------------------------------------------------


def _import_shelters(context: _Context, features: list[Feature]) -> tuple[int, int]:
    chosen = context.options.municipality
    areas = [] if chosen else town_areas()
    first_seen: dict[str, int] = {}
    wanted: list[tuple[Feature, dict[str, Any]]] = []
    for feature in features:
        try:
            values = _shelter_values(context, feature)
        except ValueError as exc:
            context.reject(feature, str(exc))
            continue
        code = values["code"]
        if code in first_seen:
            context.reject(feature, f"code {code!r} already used by feature {first_seen[code]}")
            continue
        first_seen[code] = feature.index
        town = chosen or town_containing(areas, feature.geometry)
        if town is None:
            context.reject(feature, "outside every municipality boundary on the platform; give --municipality")
            continue
        values["municipality"] = town
        wanted.append((feature, values))

    return _shelters_upsert(wanted, SHELTER_IMPORTED_FIELDS, context.reject)


def _shelters_upsert(wanted: list[tuple[Any, dict[str, Any]]], fields: list[str], reject) -> tuple[int, int]:
    """Create or update shelters by code from (source, values) pairs; `fields` are the ones an
    import may change (never the live status). A shelter of another town is not moved:
    `reject(source, reason)` is told instead. Returns (created, updated)."""
    existing: dict[str, Shelter] = {}
    for chunk in _chunks(sorted(values["code"] for _, values in wanted)):
        existing.update({s.code: s for s in Shelter.objects.select_related("municipality").filter(code__in=chunk)})

    new: list[Shelter] = []
    changed: list[Shelter] = []
    for source, values in wanted:
        shelter = existing.get(values["code"])
        if shelter is None:
            new.append(Shelter(**{"name_en": values["name_ja"], **values}))
            continue
        if shelter.municipality_id != values["municipality"].pk:
            reject(
                source,
                f"shelter {values['code']!r} belongs to {shelter.municipality.slug}; an import does not move it "
                f"to {values['municipality'].slug}",
            )
            continue
        for attribute in fields:
            if attribute in values:
                setattr(shelter, attribute, values[attribute])
        changed.append(shelter)
    Shelter.objects.bulk_create(new, batch_size=IN_CHUNK)
    Shelter.objects.bulk_update(changed, fields, batch_size=IN_CHUNK)
    return len(new), len(changed)


# Never status / status_updated_*: those are the shelter's live state, set by HQ staff.
SHELTER_IMPORTED_FIELDS = ["name_ja", "name_en", "lon", "lat", "address", "capacity"]


def _shelter_values(context: _Context, feature: Feature) -> dict[str, Any]:
    """What the file says about one shelter; attributes it has no column for are left out (kept on update)."""
    code = context.text(feature, "code", CODE_MAX_LENGTH)
    if code is None:
        raise ValueError(f"no shelter code in {context.fields.code}")
    name = context.text(feature, "name", NAME_MAX_LENGTH)
    if name is None:
        raise ValueError(f"no name in {context.fields.name}")
    capacity = context.number(feature, "capacity")
    if capacity is not None and (capacity < 0 or not capacity.is_integer() or capacity > 2**31 - 1):
        raise ValueError(f"capacity {capacity:g} is not a whole number of people")
    point = feature.geometry
    values = {
        "code": code,
        "name_ja": name,
        "lon": round(point.x, COORDINATE_DECIMALS),
        "lat": round(point.y, COORDINATE_DECIMALS),
    }
    name_en = context.text(feature, "name_en", NAME_MAX_LENGTH)
    if name_en:
        values["name_en"] = name_en
    if context.fields.address:
        values["address"] = context.text(feature, "address", ADDRESS_MAX_LENGTH) or ""
    if context.fields.capacity:  # an empty cell in a capacity column means "unknown"
        values["capacity"] = int(capacity) if capacity is not None else None
    return values


def town_areas() -> list[tuple[Municipality, Any]]:
    areas = []
    for town in Municipality.objects.exclude(boundary=None).order_by("code"):
        try:
            area = shapely.geometry.shape(town.boundary)
        except (KeyError, TypeError, ValueError, AttributeError, shapely.errors.GEOSException):
            continue  # a broken stored boundary: that town just cannot be found by location
        shapely.prepare(area)
        areas.append((town, area))
    return areas


def town_containing(areas: list[tuple[Municipality, Any]], point) -> Municipality | None:
    return next((town for town, area in areas if area.covers(point)), None)


def _chunks(values: list, size: int = IN_CHUNK) -> Iterable[list]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _listed(names: Iterable[str]) -> str:
    names = list(names)
    return ", ".join(names) if names else "(none)"


WRITERS = {
    "boundaries": _import_boundaries,
    "basins": _import_basins,
    "rivers": _import_rivers,
    "hazard_zones": _import_hazard_zones,
    "shelters": _import_shelters,
}
# Layers whose features are keyed by a code (--code-field), not by their name.
CODED_LAYERS = {"shelters"}


def geo_layer_register(
    name: str, *, geometry_types: tuple[str, ...], writer: Callable[[Any, list[Feature]], tuple[int, int]], coded: bool
) -> None:
    """Called from another app's `AppConfig.ready()` to import its own layer (e.g. evacuation
    districts) with `import_geo`: geo sits below that app and cannot import it. `writer(context,
    features)` stores the checked features in the import's transaction and returns (created, updated);
    it reports features it cannot store with `context.reject(feature, reason)`."""
    GEOMETRY_TYPES_OF_LAYER[name] = geometry_types
    WRITERS[name] = writer
    if coded:
        CODED_LAYERS.add(name)


def geo_layer_names() -> tuple[str, ...]:
    """Every importable layer, including those other apps registered."""
    return tuple(GEOMETRY_TYPES_OF_LAYER)


# --- a shelter's live status ------------------------------------------------------------------------


def shelter_status_set(*, shelter: Shelter, status: str, actor, request=None) -> Shelter:
    """Open, fill or close a shelter: stores who and when, and writes an audit row, in one transaction.

    Raises ValidationError for a status that is not one of Shelter.Status. Whether `actor` may do
    this is the caller's question (geo.selectors.shelter_status_settable). Browsers hear of the
    change from the Shelter post_save receiver in dashboard.signals once the transaction commits
    (geo does not know the dashboard); that receiver also covers edits made in the admin.
    """
    if not isinstance(status, str) or status not in Shelter.Status.values:
        allowed = ", ".join(Shelter.Status.values)
        raise ValidationError(f"{str(status)[:20]!r} is not a shelter status; use one of {allowed}.", code="invalid")
    with transaction.atomic():
        # Locked, so two operators changing the same shelter get an audit trail in the order it happened.
        locked = Shelter.objects.select_for_update().get(pk=shelter.pk)
        previous = locked.status
        locked.status = status
        locked.status_updated_at = timezone.now()
        locked.status_updated_by = actor if getattr(actor, "is_authenticated", False) else None
        locked.save(update_fields=["status", "status_updated_at", "status_updated_by"])
        audit_record(
            action=AuditEvent.Action.SHELTER_UPDATED,
            actor=actor,
            municipality=locked.municipality_id,
            target=locked.code,
            detail={"from": previous, "to": status},
            request=request,
        )
    shelter.status = locked.status
    shelter.status_updated_at = locked.status_updated_at
    shelter.status_updated_by = locked.status_updated_by
    return shelter


# --- shelters in the national standard dataset layout (指定緊急避難場所一覧 CSV) ----------------------------


@dataclass
class ShelterDatasetReport:
    encoding: str
    rows: int = 0
    created: int = 0
    updated: int = 0
    reports: list[shelter_dataset.RowReport] = field(default_factory=list)  # per row: left out, or values not mapped
    unmapped_columns: list[str] = field(default_factory=list)
    dry_run: bool = False

    def as_dict(self) -> dict:
        return {
            "encoding": self.encoding, "rows": self.rows, "created": self.created, "updated": self.updated,
            "skipped": sum(1 for report in self.reports if report.error), "dry_run": self.dry_run,
            "unmapped_columns": self.unmapped_columns, "rows_reported": [report.as_dict() for report in self.reports],
        }


SHELTER_DATASET_FIELDS = ["name_ja", "name_en", "lon", "lat", "address", "capacity",
                          *(f"for_{hazard}" for hazard in SHELTER_HAZARDS)]


def shelter_dataset_import(
    *, data: bytes, municipality: Municipality | None = None, encoding: str | None = None, dry_run: bool = False
) -> ShelterDatasetReport:
    """Create or update shelters from a 指定緊急避難場所一覧 CSV, by town code + ID; never their live
    status, never moving one to another town. `municipality` limits the file to that town (a town
    admin's upload) and is the owner of rows without a 全国地方公共団体コード. Raises DatasetError for
    a file that cannot be read at all; everything else is reported per row."""
    text, used_encoding = shelter_dataset.decode(data, encoding)
    parsed = shelter_dataset.parse(text)
    report = ShelterDatasetReport(
        encoding=used_encoding, rows=len(parsed.rows) + sum(1 for r in parsed.reports if r.error),
        unmapped_columns=parsed.unmapped_columns, dry_run=dry_run,
    )
    reports = {row_report.line: row_report for row_report in parsed.reports}

    def refuse(row, reason: str) -> None:
        reports.setdefault(row.line, shelter_dataset.RowReport(row.line)).error = reason

    towns = list(Municipality.objects.order_by("code"))
    wanted: dict[str, tuple[Any, dict[str, Any]]] = {}
    for row in parsed.rows:
        if row.town_code is None:
            town = municipality
            if town is None:
                refuse(row, "no 全国地方公共団体コード column, and no town given for the file")
                continue
        else:
            matches = [t for t in towns if t.code == row.town_code or (len(row.town_code) == 5 and t.code.startswith(row.town_code))]
            if len(matches) != 1:
                refuse(row, f"no municipality with code {row.town_code} on the platform (an import does not create towns)")
                continue
            town = matches[0]
            if municipality is not None and town.pk != municipality.pk:
                refuse(row, f"belongs to {town.slug}, not to {municipality.slug}: not imported")
                continue
        code = shelter_dataset.shelter_code(town.code, row.local_id)
        if code in wanted:
            refuse(row, f"ID {row.local_id!r} of {town.code} already on line {wanted[code][0].line}")
            continue
        wanted[code] = (row, {"code": code, "name_ja": row.name_ja, "lon": round(row.lon, 7),
                              "lat": round(row.lat, 7), **row.values, "municipality": town})

    with transaction.atomic():
        report.created, report.updated = _shelters_upsert(list(wanted.values()), SHELTER_DATASET_FIELDS, refuse)
        if dry_run:
            transaction.set_rollback(True)
    report.reports = sorted(reports.values(), key=lambda row_report: row_report.line)
    return report
