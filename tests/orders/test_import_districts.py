"""Districts come in through `manage.py import_geo --layer districts` (any CRS, GeoJSON / GeoPackage /
Shapefile), keyed by code; bad features are reported and skipped, nothing stored is lost."""

from __future__ import annotations

import geopandas
import pytest
from django.core.management.base import CommandError
from shapely.geometry import Point, box, shape

from orders.models import District

from ..geo.test_import_geo import PLANE_IX, TOKYO_STATION, run, square, to_plane_ix, write_geojson


@pytest.mark.django_db
def test_districts_import_from_geojson_and_update_on_reimport(tmp_path, towns):
    path = write_geojson(
        tmp_path / "districts.geojson",
        [
            ({"code": "A-01", "name_ja": "上町", "name_en": "Kamimachi"}, square(140.0, 35.0)),
            ({"code": "A-02", "name_ja": "下町"}, square(140.05, 35.0)),
            ({"code": "A-02", "name_ja": "下町"}, square(140.08, 35.0)),  # an island of the same district
            ({"code": "bad code!", "name_ja": "x"}, square(140.1, 35.0)),
            ({"code": "A-03"}, square(140.1, 35.0)),
            ({"code": "A-04", "name_ja": "点"}, {"type": "Point", "coordinates": [140.0, 35.0]}),
            ({"code": "A-05", "name_ja": "<script>alert(1)</script>\u0000"}, square(140.2, 35.0)),
        ],
    )
    out, err = run(path, "--layer", "districts", "--municipality", "town-a")
    assert "districts: 3 created, 0 updated, 3 feature(s) skipped" in out
    assert "feature 3" in err and "letters, digits" in err
    assert "feature 4" in err and "no name" in err
    assert "feature 5" in err and "Point" in err
    a1 = District.objects.get(code="A-01")
    assert (a1.name_ja, a1.name_en, a1.municipality.slug) == ("上町", "Kamimachi", "town-a")
    assert District.objects.get(code="A-02").geometry["type"] == "MultiPolygon"
    assert District.objects.get(code="A-02").name_en == "下町"
    # Hostile text is stored as text; pages and the API escape it.
    assert District.objects.get(code="A-05").name_ja.startswith("<script>")

    write_geojson(path, [({"code": "A-01", "name_ja": "上町一丁目", "name_en": "Kamimachi 1"}, square(140.0, 35.0, 0.02))])
    out, _ = run(path, "--layer", "districts", "--municipality", "town-a")
    assert "0 created, 1 updated" in out
    assert District.objects.get(code="A-01").name_ja == "上町一丁目"
    assert District.objects.count() == 3


@pytest.mark.django_db
def test_districts_from_a_plane_rectangular_geopackage_find_their_town_by_boundary(tmp_path, towns):
    a, b = towns
    a.boundary = square(*TOKYO_STATION, 0.05)
    a.save()
    x, y = to_plane_ix.transform(*TOKYO_STATION)
    frame = geopandas.GeoDataFrame(
        {"code": ["T-1", "T-2"], "name": ["丸の内", "遠方"]},
        geometry=[box(x - 300, y - 300, x + 300, y + 300), box(x + 500_000, y, x + 500_600, y + 600)],
        crs=PLANE_IX,
    )
    path = tmp_path / "districts.gpkg"
    frame.to_file(path, driver="GPKG")
    out, err = run(path, "--layer", "districts")
    assert "1 created" in out and "feature 1" in err and "outside every municipality" in err
    district = District.objects.get(code="T-1")
    assert district.municipality == a
    assert shape(district.geometry).contains(Point(*TOKYO_STATION))


@pytest.mark.django_db
def test_a_district_never_moves_to_another_town_and_nothing_is_lost(tmp_path, towns):
    District.objects.create(code="X-1", municipality=towns[0], name_ja="元", name_en="Old", geometry=square(140, 35))
    path = write_geojson(tmp_path / "d.geojson", [({"code": "X-1", "name": "新"}, square(141, 35))])
    with pytest.raises(CommandError, match="belongs to town-a"):
        run(path, "--layer", "districts", "--municipality", "town-b")
    assert District.objects.get(code="X-1").name_ja == "元"
    with pytest.raises(CommandError, match="need a code"):
        run(write_geojson(tmp_path / "e.geojson", [({"name": "n"}, square(141, 35))]), "--layer", "districts")
