"""Reading geodata files for `manage.py import_geo`: file -> checked WGS84 shapely geometries. No writes.

geopandas (pyogrio engine, which bundles GDAL) reads GeoJSON, GeoPackage and Shapefile. Every
feature is reprojected to WGS84 (EPSG:4326) and checked: present, of the geometry type the target
layer stores, valid (shapely's `is_valid`, with the reason from `is_valid_reason`), and inside
lon/lat range (a wrong --assume-crs shows up here). Features that fail are reported by position
(0-based, in file order) and name, and left out; the rest go on to `geo.services`.
"""

from __future__ import annotations

import codecs
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Iterable

import numpy as np
import pandas
import shapely
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry
from tqdm import tqdm

if TYPE_CHECKING:
    import geopandas

# geopandas, pyogrio (GDAL) and pyproj are imported where a file is read, not here: every web
# process imports this module (through the apps' registries) and would otherwise carry ~60 MB of
# libraries only `import_geo` and file uploads use.

WGS84 = "EPSG:4326"
COORDINATE_DECIMALS = 7  # about 1 cm: more digits only add bytes to every map download

POLYGONS = ("Polygon", "MultiPolygon")
LINES = ("LineString", "MultiLineString")
POINTS = ("Point",)
GEOMETRY_TYPES_OF_LAYER = {
    "boundaries": POLYGONS,
    "basins": POLYGONS,
    "hazard_zones": POLYGONS,
    "rivers": LINES,
    "shelters": POINTS,
}
LAYERS = tuple(GEOMETRY_TYPES_OF_LAYER)


class GeoImportError(Exception):
    """The file cannot be imported at all; nothing is stored."""


@dataclass(frozen=True)
class FeatureProblem:
    index: int
    label: str
    reason: str

    def __str__(self) -> str:
        return f"feature {self.index}{f' ({self.label})' if self.label else ''}: {self.reason}"


@dataclass
class Feature:
    index: int
    label: str
    properties: dict[str, Any]
    geometry: BaseGeometry  # WGS84, valid, of the layer's geometry type


@dataclass
class CheckedLayer:
    features: list[Feature]
    problems: list[FeatureProblem]
    repaired: list[FeatureProblem]  # made valid with --fix; imported
    source_crs: str
    fields: list[str]
    total: int


@dataclass
class SourceFile:
    frame: geopandas.GeoDataFrame  # in WGS84
    source_crs: str
    fields: list[str] = field(default_factory=list)
    encoding: str | None = None  # how a Shapefile's text was read, when we chose it (--encoding or detected)


# Encodings tried, in order, on a Shapefile that does not say its own (no .cpg): UTF-8, then the
# Windows Japanese code page of older 国土数値情報 and municipal downloads (Shift_JIS plus vendor
# characters such as ①, ㈱ and NEC's kanji, so CP932 rather than plain Shift_JIS).
DETECTED_ENCODINGS = ("UTF-8", "CP932")


def shapefile_encoding(path: Path) -> str | None:
    """The encoding to read a Shapefile's attributes with, when the file does not declare one.

    GDAL believes a `.cpg` file (and otherwise the .dbf's language driver byte); without either it
    reads text as ISO-8859-1, which turns Japanese into mojibake without an error. So when there is
    no `.cpg` and no language driver, the .dbf's records are tried as UTF-8, then CP932.
    """
    if path.suffix.lower() != ".shp":
        return None
    if any(candidate.exists() for candidate in (path.with_suffix(".cpg"), path.with_suffix(".CPG"))):
        return None
    dbf = next((c for c in (path.with_suffix(".dbf"), path.with_suffix(".DBF")) if c.exists()), None)
    if dbf is None:
        return None
    data = dbf.read_bytes()
    if len(data) < 32:
        return None
    if data[29] != 0:  # a language driver id: GDAL maps it to an encoding itself
        return None
    records, header_length, record_length = (
        int.from_bytes(data[4:8], "little"), int.from_bytes(data[8:10], "little"), int.from_bytes(data[10:12], "little"),
    )
    text = data[header_length : header_length + records * record_length]
    for encoding in DETECTED_ENCODINGS:
        try:
            text.decode(encoding)
        except UnicodeDecodeError:
            continue
        return encoding
    raise GeoImportError(
        f"{path}: its attribute text is neither UTF-8 nor CP932 (Shift_JIS) and the file has no .cpg "
        "saying which encoding it is; name it with --encoding (e.g. --encoding EUC-JP)"
    )


def read_layer(
    path: str | os.PathLike,
    *,
    source_layer: str | None = None,
    assume_crs: str | None = None,
    encoding: str | None = None,
) -> SourceFile:
    """The features of one layer of a GeoJSON / GeoPackage / Shapefile, reprojected to WGS84."""
    path = Path(path)
    if not path.exists():
        raise GeoImportError(f"{path}: no such file")
    layer = _chosen_layer(path, source_layer)
    if encoding is not None:
        try:
            encoding = codecs.lookup(encoding).name
        except LookupError:
            raise GeoImportError(f"--encoding {encoding[:40]!r} is not a known text encoding (e.g. CP932, UTF-8)") from None
    else:
        encoding = shapefile_encoding(path)
    import geopandas
    import pyogrio

    try:
        with warnings.catch_warnings():
            # GDAL's and geopandas' notes (e.g. a column of mixed types read as text); failures raise.
            warnings.simplefilter("ignore", RuntimeWarning)
            warnings.simplefilter("ignore", UserWarning)
            frame = geopandas.read_file(path, layer=layer, engine="pyogrio", **({"encoding": encoding} if encoding else {}))
    except (
        pyogrio.errors.DataSourceError,
        pyogrio.errors.DataLayerError,
        pyogrio.errors.GeometryError,
        pyogrio.errors.FeatureError,
    ) as exc:
        raise GeoImportError(f"{path}: cannot read it as GeoJSON, GeoPackage or Shapefile ({_first_line(exc)})") from None
    except UnicodeDecodeError as exc:  # a ValueError too: before that clause
        raise GeoImportError(f"{path}: its text is not {encoding} ({exc.reason}); try another --encoding") from None
    except (pyogrio.errors.FieldError, pyogrio.errors.CRSError, ValueError) as exc:
        raise GeoImportError(f"{path}: unreadable layer ({_first_line(exc)})") from None
    if not isinstance(frame, geopandas.GeoDataFrame) or frame.geometry.name not in frame.columns:
        raise GeoImportError(f"{path}: the layer has no geometry (an attribute table?)")
    source_crs = _source_crs(path, frame, assume_crs)
    assumed = frame.crs is None
    if assumed:
        frame = frame.set_crs(source_crs)
    fields = [name for name in frame.columns if name != frame.geometry.name]
    converted = frame.to_crs(WGS84)
    if assumed:
        _check_assumed_crs(path, frame, converted, source_crs)
    return SourceFile(frame=converted, source_crs=source_crs, fields=fields, encoding=encoding)


def _chosen_layer(path: Path, source_layer: str | None) -> str | None:
    import pyogrio

    try:
        layers = [str(name) for name, _ in pyogrio.list_layers(path)]
    except (pyogrio.errors.DataSourceError, OSError) as exc:
        raise GeoImportError(f"{path}: cannot read it as GeoJSON, GeoPackage or Shapefile ({_first_line(exc)})") from None
    if source_layer is not None:
        if source_layer not in layers:
            raise GeoImportError(f"{path} has no layer {source_layer!r}; its layers: {', '.join(layers) or '(none)'}")
        return source_layer
    if not layers:
        raise GeoImportError(f"{path} has no layers")
    if len(layers) > 1:
        raise GeoImportError(f"{path} has several layers ({', '.join(layers)}); choose one with --source-layer")
    return layers[0]


def _source_crs(path: Path, frame: geopandas.GeoDataFrame, assume_crs: str | None) -> str:
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    assumed = None
    if assume_crs is not None:
        try:
            assumed = CRS.from_user_input(assume_crs)
        except CRSError as exc:
            raise GeoImportError(f"--assume-crs {assume_crs!r} is not a known CRS ({_first_line(exc)})") from None
    if frame.crs is not None:
        if assumed is not None and assumed != frame.crs:
            raise GeoImportError(
                f"{path} declares its CRS ({frame.crs.to_string()}); --assume-crs is only for files without one"
            )
        return frame.crs.to_string()
    if assumed is None:
        raise GeoImportError(
            f"{path} has no coordinate reference system (a Shapefile without its .prj?); "
            "say which one it uses with --assume-crs, e.g. --assume-crs EPSG:6677 (JGD2011 plane IX) "
            "or EPSG:4326 (lon/lat)"
        )
    return assumed.to_string()


# After the conversion every feature lies within this many degrees (about 100 m) of one point.
COLLAPSED_DEGREES = 0.001


def _check_assumed_crs(path: Path, raw: geopandas.GeoDataFrame, converted: geopandas.GeoDataFrame, crs: str) -> None:
    """Refuse an --assume-crs under which every feature lands near one point.

    The usual case: a file in longitude/latitude read as a plane CRS in metres (EPSG:6677 for
    EPSG:6668): 139.7 becomes 139.7 m east of the plane's origin, and the whole layer collapses to
    a few metres around that origin — coordinates in range, so the range check cannot catch it.
    Real plane coordinates within ±180 m / ±90 m of a plane's origin are not a concern.
    """
    from pyproj import CRS

    if not CRS.from_user_input(crs).is_projected:
        return
    present = ~(raw.geometry.isna() | raw.geometry.is_empty)
    if present.sum() < 2:
        return
    raw_bounds, new_bounds = raw.geometry[present].total_bounds, converted.geometry[present].total_bounds
    if not all(math.isfinite(value) for value in (*raw_bounds, *new_bounds)):
        return
    min_x, min_y, max_x, max_y = raw_bounds
    looks_like_degrees = -180 <= min_x <= max_x <= 180 and -90 <= min_y <= max_y <= 90
    raw_spread = max(max_x - min_x, max_y - min_y)
    new_spread = max(new_bounds[2] - new_bounds[0], new_bounds[3] - new_bounds[1])
    if looks_like_degrees and raw_spread > 0 and new_spread < COLLAPSED_DEGREES:
        lon, lat = (new_bounds[0] + new_bounds[2]) / 2, (new_bounds[1] + new_bounds[3]) / 2
        raise GeoImportError(
            f"{path}: with --assume-crs {crs} (metres) all {int(present.sum())} features land within "
            f"{max(new_spread * 111_000, 1):.0f} m of one point ({lon:.5f}, {lat:.5f}); the file's coordinates "
            "look like longitude/latitude in degrees: try --assume-crs EPSG:6668 (JGD2011) or EPSG:4326"
        )


def check_features(
    source: SourceFile,
    *,
    layer: str,
    label_field: str | None,
    fix: bool = False,
    progress_file: IO[str] | None = None,
) -> CheckedLayer:
    """Split the features into importable ones and problems, each problem with its reason."""
    allowed = GEOMETRY_TYPES_OF_LAYER[layer]
    frame = source.frame
    records = frame.drop(columns=frame.geometry.name).to_dict("records")
    features: list[Feature] = []
    problems: list[FeatureProblem] = []
    repaired: list[FeatureProblem] = []
    bar = tqdm(
        total=len(frame), desc="checking", unit="feature", file=progress_file, disable=progress_file is None
    )
    with bar:
        for index, (properties, geometry) in enumerate(zip(records, frame.geometry)):
            properties = {key: plain_value(value) for key, value in properties.items()}
            label = _label(properties, label_field)
            try:
                checked, repair = _checked_geometry(geometry, allowed, fix=fix)
            except _Rejected as exc:
                problems.append(FeatureProblem(index, label, str(exc)))
            else:
                if repair:
                    repaired.append(FeatureProblem(index, label, repair))
                features.append(Feature(index, label, properties, checked))
            bar.update()
    return CheckedLayer(features, problems, repaired, source.source_crs, source.fields, len(frame))


class _Rejected(ValueError):
    pass


def _checked_geometry(geometry: BaseGeometry | None, allowed: tuple[str, ...], *, fix: bool) -> tuple[BaseGeometry, str]:
    if geometry is None or geometry.is_empty:
        raise _Rejected("no geometry")
    geometry = shapely.force_2d(geometry)
    if geometry.geom_type == "MultiPoint" and allowed == POINTS and len(geometry.geoms) == 1:
        geometry = geometry.geoms[0]
    if geometry.geom_type not in allowed:
        raise _Rejected(f"{geometry.geom_type}, but this layer takes {' or '.join(allowed)}")
    _check_range(geometry)
    if shapely.is_valid(geometry):
        return geometry, ""
    reason = shapely.is_valid_reason(geometry)
    if not fix:
        raise _Rejected(f"invalid geometry: {reason} (--fix repairs it with shapely.make_valid)")
    fixed = _parts_of_type(shapely.make_valid(geometry), allowed)
    if fixed is None:
        raise _Rejected(f"invalid geometry: {reason}; repairing it leaves no {' or '.join(allowed)}")
    return fixed, f"repaired ({reason})"


def _check_range(geometry: BaseGeometry) -> None:
    min_lon, min_lat, max_lon, max_lat = geometry.bounds
    if not all(math.isfinite(value) for value in geometry.bounds):
        raise _Rejected("coordinates could not be converted to lon/lat (wrong CRS?)")
    if min_lon < -180 or max_lon > 180 or min_lat < -90 or max_lat > 90:
        raise _Rejected(
            f"coordinates outside lon/lat range after conversion ({min_lon:.6g}, {min_lat:.6g} .. "
            f"{max_lon:.6g}, {max_lat:.6g}): wrong CRS?"
        )


def _parts_of_type(geometry: BaseGeometry, allowed: tuple[str, ...]) -> BaseGeometry | None:
    """make_valid may return a collection (a bow-tie becomes two triangles and maybe a line): keep our kind."""
    if geometry.geom_type in allowed:
        return geometry
    parts = [part for part in getattr(geometry, "geoms", []) if part.geom_type in allowed and not part.is_empty]
    if not parts:
        return None
    merged = shapely.union_all(parts)
    return merged if merged.geom_type in allowed and not merged.is_empty else None


def _label(properties: dict[str, Any], label_field: str | None) -> str:
    value = properties.get(label_field) if label_field else None
    return repr(str(value)[:60]) if value not in (None, "") else ""


def plain_value(value: Any) -> Any:
    """Attribute values as plain Python: None for missing (NaN, NaT, NA), int/float/str otherwise."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or value is pandas.NaT or value is pandas.NA:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def geojson_geometry(geometry: BaseGeometry) -> dict:
    """RFC 7946 geometry: [lon, lat], exterior rings counter-clockwise, coordinates rounded."""
    oriented = shapely.orient_polygons(geometry) if geometry.geom_type in POLYGONS else geometry
    rounded = shapely.transform(oriented, lambda coordinates: np.round(coordinates, COORDINATE_DECIMALS))
    return _lists(mapping(rounded))


def _lists(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _lists(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_lists(item) for item in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def merged(geometries: Iterable[BaseGeometry], allowed: tuple[str, ...]) -> BaseGeometry:
    """One geometry from several features of the same thing (a town's islands, a river's reaches)."""
    geometries = list(geometries)
    if len(geometries) == 1:
        return geometries[0]
    if allowed == LINES:
        lines = [line for geometry in geometries for line in getattr(geometry, "geoms", [geometry])]
        return shapely.line_merge(shapely.MultiLineString(lines))
    return shapely.union_all(geometries)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
