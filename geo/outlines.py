"""Where a town is when it has no boundary yet, and how far a point is from a town.

A town joins the platform before anyone imports its 市町村境界; until then the maps draw it as the
convex hull of its stations, marked as approximate. The hull is built from the points the caller
passes, and callers pass only the stations the viewer may see (the public map: public stations),
so an outline never reveals where a private station is. One home for both rules: maps and the
station editor's "near the town" check use these functions.
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping

import shapely
import shapely.geometry

# Around a lone station (or a line of two) the outline is this wide a margin, so it is an area a
# reader can see and click, about 1.5 km.
OUTLINE_MARGIN_DEGREES = 0.015
KM_PER_DEGREE_LAT = 110.574
KM_PER_DEGREE_LON_AT_EQUATOR = 111.320
COORDINATE_DECIMALS = 5  # about 1 m: enough for an approximate outline, small in the page

# Japan's territory with its remote islands (Yonaguni 122.9 E to Minamitorishima 153.98 E, Okinotorishima
# 20.4 N to Etorofu 45.6 N), as a box: a coordinate outside it is a typing error (or lat/lon swapped).
JAPAN_BOUNDS = {"lon": (122.5, 154.5), "lat": (20.0, 46.0)}


def station_hull(points: Iterable[tuple[float, float]]) -> dict | None:
    """A GeoJSON Polygon around these (lon, lat) points: their convex hull with a margin; None
    when there are no finite points."""
    finite = [(lon, lat) for lon, lat in points if math.isfinite(lon) and math.isfinite(lat)]
    if not finite:
        return None
    hull = shapely.MultiPoint(finite).convex_hull.buffer(OUTLINE_MARGIN_DEGREES, quad_segs=4)
    hull = shapely.set_precision(hull, 10 ** -COORDINATE_DECIMALS)
    if hull.geom_type != "Polygon":  # a buffer of points is one polygon; anything else is not drawn
        return None
    return _plain(shapely.geometry.mapping(hull))


def town_outlines(
    towns: Iterable, points_by_town: Mapping[int, list[tuple[float, float]]]
) -> dict[int, dict]:
    """{town pk: outline} for each town without a boundary that has points: what the map draws
    in place of its boundary. `points_by_town` must hold only stations the map's reader may see."""
    outlines = {}
    for town in towns:
        if town.boundary:
            continue
        outline = station_hull(points_by_town.get(town.pk, ()))
        if outline is not None:
            outlines[town.pk] = outline
    return outlines


def _plain(geometry: dict) -> dict:
    """shapely's mapping holds tuples; the map's JSON and tests want lists."""
    return {"type": geometry["type"], "coordinates": [[list(xy) for xy in ring] for ring in geometry["coordinates"]]}


def in_japan(lon: float, lat: float) -> bool:
    (west, east), (south, north) = JAPAN_BOUNDS["lon"], JAPAN_BOUNDS["lat"]
    return west <= lon <= east and south <= lat <= north


def distance_km(geometry: dict, lon: float, lat: float) -> float:
    """How far (lon, lat) is from a GeoJSON area (0 inside it), in km, on a local flat projection
    (ample for "is this station near its town": errors well under 1 % over tens of km)."""
    scale = math.cos(math.radians(lat))
    area = shapely.geometry.shape(geometry)
    projected = shapely.transform(area, lambda xy: xy * [scale * KM_PER_DEGREE_LON_AT_EQUATOR, KM_PER_DEGREE_LAT])
    point = shapely.Point(lon * scale * KM_PER_DEGREE_LON_AT_EQUATOR, lat * KM_PER_DEGREE_LAT)
    return float(projected.distance(point))
