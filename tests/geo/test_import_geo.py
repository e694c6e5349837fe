"""manage.py import_geo: GeoJSON / GeoPackage / Shapefile -> geo models and municipality boundaries."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import geopandas
import pytest
import shapely
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError
from pyproj import Transformer
from shapely.geometry import LineString, Point, box, shape

from geo.models import Basin, HazardZone, River, Shelter
from tenancy.models import Municipality

# Tokyo Station, and JGD2011 / Japan Plane Rectangular CS IX (metres), which covers Tokyo.
TOKYO_STATION = (139.7671, 35.6812)
PLANE_IX = "EPSG:6677"
to_plane_ix = Transformer.from_crs("EPSG:4326", PLANE_IX, always_xy=True)


def run(path: Path | str, *args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("import_geo", str(path), "--no-progress", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def write_geojson(path: Path, features: list[tuple[dict, dict | None]]) -> Path:
    """A GeoJSON FeatureCollection (WGS84 by definition) from (properties, geometry) pairs."""
    document = {
        "type": "FeatureCollection",
        "features": [{"type": "Feature", "properties": p, "geometry": g} for p, g in features],
    }
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    return path


def square(lon: float, lat: float, half: float = 0.01) -> dict:
    return shapely.geometry.mapping(box(lon - half, lat - half, lon + half, lat + half))


def coordinates_of(geometry: dict) -> list[list[float]]:
    """Every [lon, lat] pair of a stored GeoJSON geometry."""
    pairs: list = []

    def walk(value):
        if value and isinstance(value[0], (int, float)):
            pairs.append(value)
        else:
            for item in value:
                walk(item)

    walk(geometry["coordinates"])
    return pairs


def decimals(value: float) -> int:
    text = repr(value)
    return len(text.split(".")[1]) if "." in text and "e" not in text else 0


@pytest.fixture
def zones_gpkg(tmp_path) -> Path:
    """Two inundation depth bands around Tokyo Station, drawn in metres (plane IX), in a GeoPackage."""
    x, y = to_plane_ix.transform(*TOKYO_STATION)
    frame = geopandas.GeoDataFrame(
        {
            "name": ["浸水0.5-3m", "浸水3-5m"],
            "name_en": ["Inundation 0.5-3 m", "Inundation 3-5 m"],
            "dmin": [0.5, 3.0],
            "dmax": [3.0, 5.0],
        },
        geometry=[box(x - 300, y - 300, x + 300, y + 300), box(x + 300, y - 300, x + 900, y + 300)],
        crs=PLANE_IX,
    )
    path = tmp_path / "hazard.gpkg"
    frame.to_file(path, driver="GPKG", layer="zones", engine="pyogrio")
    return path


ZONE_ARGS = ("--layer", "hazard_zones", "--name-field", "name", "--depth-min-field", "dmin", "--depth-max-field", "dmax")


def test_geopackage_in_a_projected_crs_imports_as_lon_lat(db, towns, zones_gpkg):
    out, _ = run(zones_gpkg, *ZONE_ARGS, "--municipality", "town-a")

    assert "hazard_zones: 2 created, 0 updated, 0 feature(s) skipped, of 2 (from EPSG:6677)" in out
    zone = HazardZone.objects.get(name_ja="浸水0.5-3m")
    assert (zone.name_en, zone.depth_min_m, zone.depth_max_m) == ("Inundation 0.5-3 m", 0.5, 3.0)
    assert zone.municipality.slug == "town-a" and zone.kind == HazardZone.Kind.INUNDATION
    assert "hazard.gpkg" in zone.source
    assert zone.geometry["type"] == "Polygon"
    for lon, lat in coordinates_of(zone.geometry):
        # [lon, lat] (RFC 7946), within about 400 m of the station, at most 7 decimals.
        assert abs(lon - TOKYO_STATION[0]) < 0.005 and abs(lat - TOKYO_STATION[1]) < 0.005, (lon, lat)
        assert decimals(lon) <= 7 and decimals(lat) <= 7
    area = shape(zone.geometry)
    assert area.is_valid and area.exterior.is_ccw  # RFC 7946: exterior rings counter-clockwise
    assert area.contains(Point(TOKYO_STATION))


def test_reimport_updates_in_place(db, towns, zones_gpkg, tmp_path):
    run(zones_gpkg, *ZONE_ARGS, "--municipality", "town-a")
    ids = dict(HazardZone.objects.values_list("name_ja", "id"))

    x, y = to_plane_ix.transform(*TOKYO_STATION)
    moved = geopandas.GeoDataFrame(
        {"name": ["浸水0.5-3m"], "dmin": [0.5], "dmax": [3.0]},
        geometry=[box(x - 500, y - 500, x + 500, y + 500)],
        crs=PLANE_IX,
    )
    moved.to_file(zones_gpkg, driver="GPKG", layer="zones", engine="pyogrio")  # replaces the layer
    out, _ = run(zones_gpkg, *ZONE_ARGS, "--municipality", "town-a")

    assert "0 created, 1 updated" in out
    assert dict(HazardZone.objects.values_list("name_ja", "id")) == ids  # same rows, none added
    zone = HazardZone.objects.get(name_ja="浸水0.5-3m")
    assert shape(zone.geometry).area > 1.5 * (0.006 * 0.0075)  # the bigger square now
    assert zone.name_en == "Inundation 0.5-3 m"  # kept: the new file has no English name


@pytest.fixture
def towns_with_boundaries(towns):
    town_a, town_b = towns
    town_a.boundary = square(139.70, 35.70, 0.05)
    town_a.save()
    town_b.boundary = square(139.80, 35.70, 0.05)
    town_b.save()
    return towns


def shelter_features(capacity_a="120") -> list[tuple[dict, dict]]:
    return [
        ({"code": "SH-A1", "name": "第一小学校", "name_en": "No.1 Elementary School", "capacity": capacity_a,
          "address": "A町1-1"}, {"type": "Point", "coordinates": [139.70, 35.70]}),
        ({"code": "SH-B1", "name": "中央公民館", "capacity": 300}, {"type": "Point", "coordinates": [139.81, 35.71]}),
        ({"code": "SH-X1", "name": "沖合", "capacity": 10}, {"type": "Point", "coordinates": [140.50, 35.00]}),
        ({"code": "SH-A2", "name": "体育館", "capacity": "many"}, {"type": "Point", "coordinates": [139.71, 35.69]}),
        ({"code": "SH-A1", "name": "重複", "capacity": 5}, {"type": "Point", "coordinates": [139.70, 35.70]}),
    ]


def test_geojson_shelters_with_capacity_find_their_town_by_location(db, towns_with_boundaries, tmp_path):
    path = write_geojson(tmp_path / "shelters.geojson", shelter_features())
    out, err = run(path, "--layer", "shelters")

    assert "shelters: 2 created, 0 updated, 3 feature(s) skipped, of 5" in out
    first = Shelter.objects.get(code="SH-A1")
    assert (first.name_ja, first.name_en, first.capacity, first.address) == (
        "第一小学校", "No.1 Elementary School", 120, "A町1-1"
    )
    assert (first.lon, first.lat, first.municipality.slug) == (139.70, 35.70, "town-a")
    second = Shelter.objects.get(code="SH-B1")
    assert (second.municipality.slug, second.capacity, second.name_en) == ("town-b", 300, "中央公民館")
    assert "feature 2 ('沖合'): outside every municipality boundary" in err
    assert "feature 3 ('体育館'): capacity 'many' is not a number" in err
    assert "feature 4 ('重複'): code 'SH-A1' already used by feature 0" in err


def test_shelter_reimport_updates_but_never_touches_live_status(db, towns_with_boundaries, tmp_path):
    path = write_geojson(tmp_path / "shelters.geojson", shelter_features())
    run(path, "--layer", "shelters")
    shelter = Shelter.objects.get(code="SH-A1")
    shelter.status = Shelter.Status.OPEN
    shelter.save()

    write_geojson(path, shelter_features(capacity_a=150))
    out, _ = run(path, "--layer", "shelters")

    assert "0 created, 2 updated" in out
    again = Shelter.objects.get(code="SH-A1")
    assert again.pk == shelter.pk and again.capacity == 150
    assert again.status == Shelter.Status.OPEN
    assert Shelter.objects.count() == 2


def test_shelter_of_another_town_is_not_moved(db, towns_with_boundaries, tmp_path):
    path = write_geojson(tmp_path / "shelters.geojson", shelter_features()[:2])
    run(path, "--layer", "shelters")
    _, err = run(path, "--layer", "shelters", "--municipality", "town-a")
    assert "shelter 'SH-B1' belongs to town-b; an import does not move it to town-a" in err
    assert Shelter.objects.get(code="SH-B1").municipality.slug == "town-b"


def test_shapefile_rivers_merge_reaches_of_one_river(db, tmp_path):
    frame = geopandas.GeoDataFrame(
        {"name": ["多摩川", "多摩川", "野川"], "name_en": ["Tama River", "Tama River", "Nogawa"]},
        geometry=[
            LineString([(139.30, 35.70), (139.40, 35.65)]),
            LineString([(139.40, 35.65), (139.50, 35.60)]),
            LineString([(139.55, 35.68), (139.60, 35.62)]),
        ],
        crs="EPSG:4326",
    )
    path = tmp_path / "rivers.shp"
    frame.to_file(path, engine="pyogrio")

    out, _ = run(path, "--layer", "rivers")

    assert "rivers: 2 created, 0 updated, 0 feature(s) skipped, of 3" in out
    tama = River.objects.get(name_ja="多摩川")
    assert tama.name_en == "Tama River"
    assert tama.geometry == {"type": "LineString", "coordinates": [[139.3, 35.7], [139.4, 35.65], [139.5, 35.6]]}
    assert River.objects.get(name_ja="野川").geometry["type"] == "LineString"


BOW_TIE = {"type": "Polygon", "coordinates": [[[139.0, 35.0], [139.1, 35.1], [139.1, 35.0], [139.0, 35.1], [139.0, 35.0]]]}


def test_invalid_polygon_is_reported_by_feature_and_skipped(db, tmp_path):
    path = write_geojson(
        tmp_path / "basins.geojson",
        [({"name": "良い流域"}, square(139.5, 35.5)), ({"name": "蝶ネクタイ"}, BOW_TIE)],
    )
    out, err = run(path, "--layer", "basins")

    assert "basins: 1 created, 0 updated, 1 feature(s) skipped, of 2" in out
    assert "feature 1 ('蝶ネクタイ'): invalid geometry: Self-intersection[139.05 35.05]" in err
    assert "--fix" in err
    assert list(Basin.objects.values_list("name_ja", flat=True)) == ["良い流域"]


def test_fix_repairs_an_invalid_polygon(db, tmp_path):
    path = write_geojson(tmp_path / "basins.geojson", [({"name": "蝶ネクタイ"}, BOW_TIE)])
    out, err = run(path, "--layer", "basins", "--fix")

    assert "1 created" in out and "repaired feature 0 ('蝶ネクタイ'): repaired (Self-intersection" in err
    stored = shape(Basin.objects.get().geometry)
    assert stored.is_valid and stored.geom_type == "MultiPolygon" and len(stored.geoms) == 2


def test_wrong_geometry_type_for_the_layer_is_a_clear_error(db, towns, tmp_path):
    path = write_geojson(
        tmp_path / "points.geojson",
        [({"name": "p1"}, {"type": "Point", "coordinates": [139.0, 35.0]}),
         ({"name": "p2"}, {"type": "Point", "coordinates": [139.1, 35.0]})],
    )
    with pytest.raises(CommandError) as excinfo:
        run(path, "--layer", "hazard_zones")
    message = str(excinfo.value)
    assert "no feature can be imported as hazard_zones, nothing is stored" in message
    assert "feature 0 ('p1'): Point, but this layer takes Polygon or MultiPolygon" in message
    assert not HazardZone.objects.exists()


def test_mixed_geometry_types_skip_the_wrong_ones(db, tmp_path):
    path = write_geojson(
        tmp_path / "mixed.geojson",
        [({"name": "川"}, {"type": "LineString", "coordinates": [[139.0, 35.0], [139.1, 35.1]]}),
         ({"name": "点"}, {"type": "Point", "coordinates": [139.0, 35.0]}),
         ({"name": "無"}, None)],
    )
    out, err = run(path, "--layer", "rivers")
    assert "1 created, 0 updated, 2 feature(s) skipped" in out
    assert "feature 1 ('点'): Point, but this layer takes LineString or MultiLineString" in err
    assert "feature 2 ('無'): no geometry" in err


@pytest.mark.filterwarnings("ignore:'crs' was not provided")
def test_file_without_crs_is_an_error_unless_assumed(db, towns, tmp_path):
    x, y = to_plane_ix.transform(*TOKYO_STATION)
    frame = geopandas.GeoDataFrame({"name": ["区域"]}, geometry=[box(x - 100, y - 100, x + 100, y + 100)])
    path = tmp_path / "noprj.shp"
    frame.to_file(path, engine="pyogrio")
    assert not path.with_suffix(".prj").exists()

    with pytest.raises(CommandError, match="no coordinate reference system.*--assume-crs"):
        run(path, "--layer", "hazard_zones")
    assert not HazardZone.objects.exists()

    out, _ = run(path, "--layer", "hazard_zones", "--assume-crs", PLANE_IX)
    assert "1 created" in out
    lon, lat = coordinates_of(HazardZone.objects.get().geometry)[0]
    assert abs(lon - TOKYO_STATION[0]) < 0.01 and abs(lat - TOKYO_STATION[1]) < 0.01


@pytest.mark.filterwarnings("ignore:'crs' was not provided")
def test_wrong_assumed_crs_shows_as_out_of_range_coordinates(db, tmp_path):
    frame = geopandas.GeoDataFrame({"name": ["区域"]}, geometry=[box(-40000, -30000, -39000, -29000)])
    path = tmp_path / "metres.shp"
    frame.to_file(path, engine="pyogrio")
    with pytest.raises(CommandError, match="outside lon/lat range.*wrong CRS"):
        run(path, "--layer", "basins", "--assume-crs", "EPSG:4326")


@pytest.mark.parametrize(
    ("make", "error"),
    [
        (lambda d: d / "missing.geojson", "no such file"),
        (lambda d: (d / "garbage.geojson", (d / "garbage.geojson").write_bytes(b"\x00\xffnot geodata" * 50))[0],
         "cannot read it as GeoJSON, GeoPackage or Shapefile"),
        (lambda d: (d / "broken.geojson", (d / "broken.geojson").write_text('{"type": "FeatureCollection", "feat'))[0],
         "cannot read it"),
        (lambda d: (d / "empty.geojson", (d / "empty.geojson").write_text(""))[0], "cannot read it"),
        (lambda d: write_geojson(d / "none.geojson", []), "no features"),
    ],
    ids=["missing", "garbage", "truncated-json", "empty-file", "no-features"],
)
def test_unreadable_files_are_clear_errors(db, tmp_path, make, error):
    Basin.objects.create(name_ja="既存", name_en="Existing", geometry=square(139.0, 35.0))
    with pytest.raises(CommandError, match=error):
        run(make(tmp_path), "--layer", "basins")
    assert list(Basin.objects.values_list("name_ja", flat=True)) == ["既存"]


def test_multi_layer_geopackage_needs_source_layer(db, zones_gpkg):
    extra = geopandas.GeoDataFrame({"name": ["x"]}, geometry=[Point(0, 0)], crs=PLANE_IX)
    extra.to_file(zones_gpkg, driver="GPKG", layer="other", engine="pyogrio")
    with pytest.raises(CommandError, match="several layers.*--source-layer"):
        run(zones_gpkg, *ZONE_ARGS)
    with pytest.raises(CommandError, match="no layer 'nope'; its layers: "):
        run(zones_gpkg, *ZONE_ARGS, "--source-layer", "nope")
    out, _ = run(zones_gpkg, *ZONE_ARGS, "--source-layer", "zones")
    assert "2 created" in out


def test_missing_field_is_a_clear_error(db, zones_gpkg):
    with pytest.raises(CommandError, match="--capacity-field 'cap' is not a field of the file; its fields: name, "):
        run(zones_gpkg, *ZONE_ARGS, "--capacity-field", "cap")


@pytest.fixture
def real_towns(db):
    """Two wards with real 6-digit codes (5 digits + check digit), as 国土数値情報 files refer to them."""
    return (
        Municipality.objects.create(code="131016", slug="chiyoda", name_ja="千代田区", name_en="Chiyoda"),
        Municipality.objects.create(code="131024", slug="chuo", name_ja="中央区", name_en="Chuo"),
    )


def test_boundaries_match_towns_by_code_and_merge_their_parts(real_towns, tmp_path):
    path = write_geojson(
        tmp_path / "n03.geojson",
        [
            ({"N03_004": "千代田区", "N03_007": "13101"}, square(139.75, 35.69, 0.01)),
            ({"N03_004": "千代田区", "N03_007": "13101"}, square(139.80, 35.69, 0.005)),  # a second part
            ({"N03_004": "中央区", "N03_007": "131024"}, square(139.77, 35.67, 0.01)),
            ({"N03_004": "港区", "N03_007": "13103"}, square(139.74, 35.65, 0.01)),
        ],
    )
    towns_before = Municipality.objects.count()
    out, err = run(path, "--layer", "boundaries", "--code-field", "N03_007")

    assert "boundaries: 0 created, 2 updated, 1 feature(s) skipped, of 4" in out
    assert "feature 3 ('13103'): no municipality with code 13103 on the platform" in err
    assert Municipality.objects.count() == towns_before  # reported, not created
    chiyoda = Municipality.objects.get(slug="chiyoda")
    assert chiyoda.boundary["type"] == "MultiPolygon" and len(chiyoda.boundary["coordinates"]) == 2
    assert shape(Municipality.objects.get(slug="chuo").boundary).contains(Point(139.77, 35.67))


def test_boundaries_by_name_limited_to_one_town(real_towns, tmp_path):
    path = write_geojson(
        tmp_path / "wards.geojson",
        [({"name": "千代田区"}, square(139.75, 35.69)), ({"name": "Chuo"}, square(139.77, 35.67))],
    )
    out, err = run(path, "--layer", "boundaries", "--name-field", "name", "--municipality", "chiyoda")
    assert "0 created, 1 updated, 1 feature(s) skipped" in out
    assert "belongs to chuo, not to --municipality chiyoda" in err
    assert Municipality.objects.get(slug="chuo").boundary is None


def test_dry_run_stores_nothing(db, towns, zones_gpkg):
    out, _ = run(zones_gpkg, *ZONE_ARGS, "--dry-run")
    assert out.startswith("dry run, nothing stored: would have hazard_zones: 2 created")
    assert not HazardZone.objects.exists()


def test_a_database_error_while_writing_stores_nothing(db, towns_with_boundaries, tmp_path, monkeypatch):
    path = write_geojson(tmp_path / "shelters.geojson", shelter_features()[:2])
    run(path, "--layer", "shelters")
    write_geojson(path, shelter_features(capacity_a=999)[:2] + [
        ({"code": "SH-A9", "name": "新設"}, {"type": "Point", "coordinates": [139.72, 35.72]})
    ])

    def database_down(*args, **kwargs):
        raise DatabaseError("connection lost")

    monkeypatch.setattr(Shelter.objects, "bulk_update", database_down)
    with pytest.raises(DatabaseError):
        run(path, "--layer", "shelters")
    assert Shelter.objects.get(code="SH-A1").capacity == 120  # unchanged
    assert not Shelter.objects.filter(code="SH-A9").exists()  # the insert before the failure rolled back


def test_reimport_without_a_column_keeps_what_is_stored(db, towns_with_boundaries, tmp_path):
    path = write_geojson(tmp_path / "shelters.geojson", shelter_features()[:1])
    run(path, "--layer", "shelters")
    write_geojson(path, [({"code": "SH-A1", "name": "第一小学校(改)"}, {"type": "Point", "coordinates": [139.701, 35.70]})])
    out, _ = run(path, "--layer", "shelters")
    assert "0 created, 1 updated" in out
    shelter = Shelter.objects.get(code="SH-A1")
    assert (shelter.name_ja, shelter.lon) == ("第一小学校(改)", 139.701)
    # No capacity, address or English name column in the new file: the stored ones stay.
    assert (shelter.capacity, shelter.address, shelter.name_en) == (120, "A町1-1", "No.1 Elementary School")


def test_boundary_for_one_town_needs_no_matching_field(real_towns, tmp_path):
    path = write_geojson(
        tmp_path / "chiyoda.geojson",
        [({"name": "千代田区 行政界"}, square(139.75, 35.69)), ({"name": "千代田区 離れ"}, square(139.80, 35.69, 0.002))],
    )
    out, _ = run(path, "--layer", "boundaries", "--municipality", "chiyoda")
    assert "0 created, 1 updated, 0 feature(s) skipped" in out
    assert Municipality.objects.get(slug="chiyoda").boundary["type"] == "MultiPolygon"


def test_boundaries_need_a_way_to_find_their_town(real_towns, tmp_path):
    path = write_geojson(tmp_path / "anon.geojson", [({"area": 1}, square(139.75, 35.69))])
    with pytest.raises(CommandError, match="--code-field .* or --name-field, or all go to --municipality"):
        run(path, "--layer", "boundaries")
