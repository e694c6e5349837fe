"""Outlines of towns without a boundary (their stations' hull) and the distance rules of the
station editor (geo.outlines)."""

import math

import pytest
import shapely.geometry

from geo.maps import OUTLINE_DASH, Geography, _municipality_style, base_map
from geo.outlines import OUTLINE_MARGIN_DEGREES, distance_km, in_japan, station_hull, town_outlines
from tenancy.models import Municipality
from tests.geo.test_maps import features_in, rendered


def test_the_hull_holds_every_point_with_a_margin():
    points = [(140.0, 35.0), (140.2, 35.0), (140.0, 35.2), (140.05, 35.05)]
    hull = shapely.geometry.shape(station_hull(points))
    assert hull.geom_type == "Polygon" and hull.is_valid
    for lon, lat in points:
        assert hull.contains(shapely.Point(lon, lat))
    # The far corner of the square is outside: a hull of three corners is a triangle.
    assert not hull.contains(shapely.Point(140.2, 35.2))
    assert hull.bounds[0] == pytest.approx(140.0 - OUTLINE_MARGIN_DEGREES, abs=1e-4)


@pytest.mark.parametrize("points", [[(140.0, 35.0)], [(140.0, 35.0), (140.1, 35.0)], [(140.0, 35.0)] * 3])
def test_one_or_two_stations_still_make_an_area(points):
    hull = shapely.geometry.shape(station_hull(points))
    assert hull.geom_type == "Polygon" and hull.area > 0


@pytest.mark.parametrize("points", [[], [(math.nan, 35.0)], [(140.0, math.inf)]])
def test_no_finite_point_no_outline(points):
    assert station_hull(points) is None


def test_only_towns_without_a_boundary_get_an_outline():
    square = {"type": "Polygon", "coordinates": [[[139, 35], [139.1, 35], [139.1, 35.1], [139, 35.1], [139, 35]]]}
    bounded = Municipality(pk=1, code="990001", slug="a", name_ja="a", name_en="A", boundary=square)
    bare = Municipality(pk=2, code="990043", slug="b", name_ja="b", name_en="B")
    silent = Municipality(pk=3, code="990051", slug="c", name_ja="c", name_en="C")
    outlines = town_outlines([bounded, bare, silent], {1: [(140.0, 35.0)], 2: [(140.0, 35.0), (140.1, 35.1)]})
    assert set(outlines) == {2}
    assert outlines[2]["type"] == "Polygon" and isinstance(outlines[2]["coordinates"][0][0], list)


def test_the_map_draws_an_outline_dashed_and_labelled_approximate():
    bare = Municipality(pk=2, code="990043", slug="bare-town", name_ja="裸町", name_en="Bare")
    outlines = town_outlines([bare], {2: [(140.0, 35.0), (140.1, 35.1)]})
    (feature,) = features_in(rendered(base_map(Geography([bare], [], []), outlines=outlines)))
    assert feature["id"] == "bare-town" and feature["properties"]["approximate"]
    label = feature["properties"]["display"]["label"]
    assert "（概略）" in label and "(approx.)" in label
    assert _municipality_style(feature)["dashArray"] == OUTLINE_DASH
    assert features_in(rendered(base_map(Geography([bare], [], [])))) == []  # without points: not drawn


def test_distance_is_zero_inside_and_in_km_outside():
    square = {"type": "Polygon", "coordinates": [[[140, 35], [140.1, 35], [140.1, 35.1], [140, 35.1], [140, 35]]]}
    assert distance_km(square, 140.05, 35.05) == 0
    # 0.1 degree of latitude north of the square: about 11 km.
    assert distance_km(square, 140.05, 35.2) == pytest.approx(11.06, abs=0.1)
    # 0.1 degree of longitude at 35 N: about 9.1 km.
    assert distance_km(square, 140.2, 35.05) == pytest.approx(9.1, abs=0.15)


@pytest.mark.parametrize(
    "lon, lat, inside",
    [(139.69, 35.69, True), (122.93, 24.45, True), (153.98, 24.28, True), (145.8, 45.5, True),
     (35.69, 139.69, False), (-0.12, 51.5, False), (126.98, 37.57 + 9, False)],
)
def test_japan_bounds(lon, lat, inside):
    assert in_japan(lon, lat) is inside
