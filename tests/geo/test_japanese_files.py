"""Issue 16 item 6: Japanese GIS files — Shapefiles without `.cpg` (older 国土数値情報 downloads) in
CP932, `--encoding`, and an `--assume-crs` under which every feature lands near one point."""

from __future__ import annotations

import pytest
from django.core.management.base import CommandError
from pyproj import Transformer
from shapely.geometry import LineString, Point

import geopandas
from geo.importers import shapefile_encoding
from geo.models import River
from tests.geo.test_import_geo import run

RIVERS = {"name": ["多摩川", "野川", "①号水路"], "name_en": ["Tama", "Nogawa", "Channel 1"]}
LINES = [
    LineString([(139.30, 35.70), (139.40, 35.65)]),
    LineString([(139.55, 35.68), (139.60, 35.62)]),
    LineString([(139.61, 35.60), (139.65, 35.58)]),
]


def legacy_shapefile(tmp_path, encoding: str, data=None, geometry=None, crs="EPSG:4326"):
    """A Shapefile as older downloads ship it: text in `encoding`, no .cpg, no language driver byte."""
    path = tmp_path / "rivers.shp"
    geopandas.GeoDataFrame(data or RIVERS, geometry=geometry or LINES, crs=crs).to_file(
        path, engine="pyogrio", encoding=encoding
    )
    path.with_suffix(".cpg").unlink(missing_ok=True)
    dbf = path.with_suffix(".dbf")
    header = bytearray(dbf.read_bytes())
    header[29] = 0
    dbf.write_bytes(bytes(header))
    return path


def test_cp932_shapefile_without_cpg_imports_with_its_japanese_names(db, tmp_path):
    path = legacy_shapefile(tmp_path, "cp932")
    # What GDAL alone makes of it: mojibake, and no error.
    assert geopandas.read_file(path, engine="pyogrio")["name"][0] != "多摩川"

    out, _ = run(path, "--layer", "rivers")

    assert "rivers: 3 created" in out and "text read as CP932" in out
    assert sorted(River.objects.values_list("name_ja", flat=True)) == sorted(RIVERS["name"])


def test_utf8_shapefile_without_cpg_is_read_as_utf8(db, tmp_path):
    path = legacy_shapefile(tmp_path, "utf-8")
    assert shapefile_encoding(path) == "UTF-8"
    out, _ = run(path, "--layer", "rivers")
    assert "text read as UTF-8" in out
    assert River.objects.filter(name_ja="①号水路").exists()


def test_a_cpg_file_is_believed(db, tmp_path):
    path = tmp_path / "rivers.shp"
    geopandas.GeoDataFrame(RIVERS, geometry=LINES, crs="EPSG:4326").to_file(path, engine="pyogrio", encoding="cp932")
    assert path.with_suffix(".cpg").read_text().strip().upper() == "CP932"
    assert shapefile_encoding(path) is None  # GDAL reads the .cpg itself
    out, _ = run(path, "--layer", "rivers")
    assert River.objects.filter(name_ja="多摩川").exists() and "text read as" not in out


def test_encoding_option_names_the_encoding(db, tmp_path):
    path = legacy_shapefile(tmp_path, "cp932")
    out, _ = run(path, "--layer", "rivers", "--encoding", "MS932")  # an alias: Python's codec name is used
    assert "text read as cp932" in out
    assert River.objects.filter(name_ja="野川").exists()


def test_a_wrong_or_unknown_encoding_is_a_clear_error_and_stores_nothing(db, tmp_path):
    path = legacy_shapefile(tmp_path, "cp932")
    with pytest.raises(CommandError, match="not utf-8.*another --encoding"):
        run(path, "--layer", "rivers", "--encoding", "utf-8")
    with pytest.raises(CommandError, match="not a known text encoding"):
        run(path, "--layer", "rivers", "--encoding", "klingon'; DROP TABLE geo_river; --")
    assert not River.objects.exists()


def test_text_in_neither_utf8_nor_cp932_asks_for_the_encoding(db, tmp_path):
    path = legacy_shapefile(tmp_path, "utf-8", data={"name": ["Cafe e"], "name_en": ["x"]}, geometry=LINES[:1])
    dbf = path.with_suffix(".dbf")
    dbf.write_bytes(dbf.read_bytes().replace(b"Cafe e", b"Caf\xe9 \xe9"))  # Latin-1, as a European tool writes it
    with pytest.raises(CommandError, match="neither UTF-8 nor CP932.*--encoding"):
        run(path, "--layer", "rivers")
    out, _ = run(path, "--layer", "rivers", "--encoding", "latin-1")
    assert River.objects.get().name_ja == "Café é"


@pytest.mark.parametrize("damage", ["truncated", "huge_counts"])
def test_a_damaged_dbf_header_is_a_clear_error_not_a_crash(db, tmp_path, damage):
    path = legacy_shapefile(tmp_path, "cp932")
    dbf = path.with_suffix(".dbf")
    data = bytearray(dbf.read_bytes())
    if damage == "truncated":
        dbf.write_bytes(bytes(data[:20]))
    else:
        data[4:8] = (2**32 - 1).to_bytes(4, "little")
        data[8:10] = (2**16 - 1).to_bytes(2, "little")
        dbf.write_bytes(bytes(data))
    shapefile_encoding(path)  # never raises anything but GeoImportError
    with pytest.raises(CommandError):
        run(path, "--layer", "rivers")
    assert not River.objects.exists()


@pytest.mark.filterwarnings("ignore:'crs' was not provided")
def test_lon_lat_read_as_a_plane_crs_is_flagged_not_stored(db, tmp_path):
    shelters_like = [Point(139.70, 35.60), Point(139.75, 35.65), Point(139.80, 35.62)]
    lines = [LineString([p.coords[0], (p.x + 0.01, p.y)]) for p in shelters_like]
    path = tmp_path / "noprj.shp"
    geopandas.GeoDataFrame(RIVERS, geometry=lines).to_file(path, engine="pyogrio")
    assert not path.with_suffix(".prj").exists()

    with pytest.raises(CommandError, match=r"all 3 features land within \d+ m of one point.*EPSG:6668"):
        run(path, "--layer", "rivers", "--assume-crs", "EPSG:6677")
    assert not River.objects.exists()

    out, _ = run(path, "--layer", "rivers", "--assume-crs", "EPSG:6668")
    assert "3 created" in out


@pytest.mark.filterwarnings("ignore:'crs' was not provided")
def test_close_features_in_a_correct_plane_crs_are_not_flagged(db, tmp_path):
    to_plane = Transformer.from_crs("EPSG:4326", "EPSG:6677", always_xy=True)
    x, y = to_plane.transform(139.7671, 35.6812)
    lines = [LineString([(x, y), (x + 5, y)]), LineString([(x + 10, y), (x + 15, y + 3)])]
    path = tmp_path / "plane.shp"
    geopandas.GeoDataFrame({"name": ["水路甲", "水路乙"]}, geometry=lines).to_file(path, engine="pyogrio")
    out, _ = run(path, "--layer", "rivers", "--assume-crs", "EPSG:6677")
    assert "2 created" in out
