"""The folium base map: vendored assets only, optional tiles, boundaries, basins, rivers, initial view."""

import json
import re
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.contrib.staticfiles import finders

from geo.maps import (
    BASIN_LAYER_NAME,
    MUNICIPALITY_LAYER_NAME,
    RIVER_LAYER_NAME,
    Geography,
    MizumoriMap,
    base_map,
    bounds_of,
    embed_parts,
    finish_map,
    load_geography,
)
from geo.models import Basin, River
from tenancy.models import Municipality


def square(west, south, east, north):
    return {"type": "Polygon", "coordinates": [[[west, south], [east, south], [east, north], [west, north], [west, south]]]}


SQUARE_A = square(140.0, 35.0, 140.2, 35.2)
SQUARE_B = square(140.2, 35.0, 140.5, 35.3)
RIVER_LINE = {"type": "LineString", "coordinates": [[140.05, 35.25], [140.15, 35.1], [140.3, 35.05]]}


def town(pk, slug, boundary, name_ja="水守町", name_en="Mizumori Town"):
    # Unsaved: the map builders take plain objects, no database needed.
    return Municipality(pk=pk, code=f"99{pk:04d}", slug=slug, name_ja=name_ja, name_en=name_en, boundary=boundary)


def rendered(folium_map) -> str:
    finish_map(folium_map)
    parts = embed_parts(folium_map)
    return parts.header + parts.html + parts.script


def features_in(script: str) -> list[dict]:
    features = []
    for match in re.finditer(r"geo_json_[0-9a-f]+_add\((\{.*\})\);", script):
        features.extend(json.loads(match.group(1))["features"])
    return features


def asset_urls(header: str) -> list[str]:
    return re.findall(r'<script src="([^"]+)"', header) + re.findall(r'<link rel="stylesheet" href="([^"]+)"', header)


EMPTY = Geography(municipalities=[], basins=[], rivers=[])


# --- assets ----------------------------------------------------------------------------------------------


def test_map_loads_only_vendored_assets_that_exist(settings):
    settings.MAP_TILES_URL = ""
    parts = embed_parts(base_map(EMPTY))

    urls = asset_urls(parts.header)
    assert {url.rsplit("/", 1)[-1] for url in urls} == {"leaflet.js", "leaflet.css", "map.js", "map.css"}
    for url in urls:
        assert url.startswith(django_settings.STATIC_URL)
        assert finders.find(url.removeprefix(django_settings.STATIC_URL)), url


def test_standalone_figure_has_no_cdn_or_jquery(settings):
    settings.MAP_TILES_URL = ""
    folium_map = base_map(Geography([town(1, "a", SQUARE_A)], [], []))
    finish_map(folium_map)

    whole_page = folium_map.get_root().render()

    assert "http://" not in whole_page and "https://" not in whole_page
    assert "$(" not in whole_page and "jquery" not in whole_page.lower()
    assert "bootstrap" not in whole_page.lower() and "fontawesome" not in whole_page.lower()


def test_map_header_leaves_the_host_page_layout_alone():
    parts = embed_parts(base_map(EMPTY))

    assert "viewport" not in parts.header  # the page sets its own, zoomable one
    assert "html, body" not in parts.header
    assert "content-type" not in parts.header


def test_embedded_parts_refer_to_the_map_by_its_folium_name():
    folium_map = base_map(EMPTY)
    parts = embed_parts(folium_map)

    assert f'id="{folium_map.get_name()}"' in parts.html
    assert f"var {folium_map.get_name()} = L.map(" in parts.script


def test_each_map_gets_its_own_asset_list():
    first, second = MizumoriMap(), MizumoriMap()
    first.add_js_link("extra", "/static/extra.js")

    assert ("extra", "/static/extra.js") not in second.default_js
    assert ("extra", "/static/extra.js") not in MizumoriMap.default_js


def test_leaflet_css_images_are_vendored():
    css_path = Path(finders.find("vendor/leaflet/leaflet.css"))

    for image in re.findall(r"url\((images/[^)]+)\)", css_path.read_text()):
        assert (css_path.parent / image).is_file(), image


def test_vendor_readme_lists_leaflet_with_version_and_licence():
    readme = Path(finders.find("vendor/README.md")).read_text()

    assert "leaflet" in readme.lower() and "1.9.4" in readme
    assert finders.find("vendor/leaflet/LICENSE")


# --- tiles -------------------------------------------------------------------------------------------------


def test_no_tile_layer_without_configured_tiles(settings):
    settings.MAP_TILES_URL = ""

    html = rendered(base_map(EMPTY))

    assert "L.tileLayer" not in html
    assert "tile.openstreetmap" not in html


def test_configured_tiles_and_attribution_are_used(settings):
    settings.MAP_TILES_URL = "https://cyberjapandata.gsi.go.jp/xyz/std/{z}/{x}/{y}.png"
    settings.MAP_TILES_ATTRIBUTION = "地理院タイル"

    html = rendered(base_map(EMPTY))

    assert "L.tileLayer" in html
    assert "https://cyberjapandata.gsi.go.jp/xyz/std/{z}/{x}/{y}.png" in html
    assert json.dumps("地理院タイル") in html


def test_explicit_tiles_argument_overrides_settings(settings):
    settings.MAP_TILES_URL = "https://tiles.example.test/{z}/{x}/{y}.png"

    assert "L.tileLayer" not in rendered(base_map(EMPTY, tiles_url=""))


# --- layers ------------------------------------------------------------------------------------------------


def test_boundaries_are_labelled_in_both_languages_and_escaped():
    towns = [town(1, "a", SQUARE_A, name_ja="<b>町</b>", name_en="Town <i>A</i>")]

    folium_map = base_map(Geography(towns, [], []))
    html = rendered(folium_map)

    (feature,) = features_in(html)
    label = feature["properties"]["display"]["label"]
    assert "&lt;b&gt;町&lt;/b&gt;" in label and "Town &lt;i&gt;A&lt;/i&gt;" in label
    assert 'lang="ja"' in label and 'lang="en"' in label
    assert json.dumps(MUNICIPALITY_LAYER_NAME) in html  # listed in the layer control


def test_own_towns_are_drawn_stronger():
    towns = [town(1, "a", SQUARE_A), town(2, "b", SQUARE_B)]

    html = rendered(base_map(Geography(towns, [], []), own_municipality_ids={1}))

    own = {feature["id"]: feature["properties"]["own"] for feature in features_in(html)}
    assert own == {"a": True, "b": False}


def test_invalid_or_missing_geometry_is_left_out_not_fatal():
    towns = [
        town(1, "good", SQUARE_A),
        town(2, "no-boundary", None),
        town(3, "string", "not geojson"),
        town(4, "bad-ring", {"type": "Polygon", "coordinates": [[[140, 35]]]}),
        town(5, "wrong-type", {"type": "Point", "coordinates": [140, 35]}),
    ]
    rivers = [River(pk=1, name_ja="川", name_en="River", geometry={"type": "LineString", "coordinates": "x"})]

    html = rendered(base_map(Geography(towns, [], rivers)))

    assert [feature["id"] for feature in features_in(html)] == ["good"]
    assert json.dumps(RIVER_LAYER_NAME) not in html  # an empty layer is not offered


def test_basins_and_rivers_are_layers_with_names():
    basin = Basin(pk=1, name_ja="水守川", name_en="Mizumori River", geometry=SQUARE_B)
    river = River(pk=1, name_ja="水守川", name_en="Mizumori River", geometry=RIVER_LINE)

    folium_map = base_map(Geography([], [basin], [river]))
    html = rendered(folium_map)

    tooltips = {feature["id"]: feature["properties"]["display"]["tooltip"] for feature in features_in(html)}
    assert "水守川流域" in tooltips["basin-1"] and "Mizumori River basin" in tooltips["basin-1"]
    assert "水守川" in tooltips["river-1"]
    assert json.dumps(BASIN_LAYER_NAME) in html and json.dumps(RIVER_LAYER_NAME) in html
    assert "L.control.layers(" in html
    assert "bringToFront()" in html  # rivers stay above areas


@pytest.mark.django_db
def test_load_geography_reads_towns_basins_and_rivers(towns):
    Basin.objects.create(name_ja="流域", name_en="Basin", geometry=SQUARE_A)
    River.objects.create(name_ja="川", name_en="River", geometry=RIVER_LINE)

    geography = load_geography()

    assert [t.slug for t in geography.municipalities] == ["town-a", "town-b"]
    assert len(geography.basins) == 1 and len(geography.rivers) == 1


# --- initial view ------------------------------------------------------------------------------------------


def test_view_fits_the_boundaries():
    folium_map = base_map(EMPTY)
    finish_map(folium_map, fit_geometries=[SQUARE_A, SQUARE_B])

    script = embed_parts(folium_map).script

    assert "fitBounds(" in script
    assert "[[35.0, 140.0], [35.3, 140.5]]" in script


def test_bounds_include_points_outside_the_boundaries():
    assert bounds_of([SQUARE_A], [(36.0, 139.5)]) == [[35.0, 139.5], [36.0, 140.2]]


def test_nothing_to_fit_keeps_the_fallback_view():
    folium_map = base_map(EMPTY)
    finish_map(folium_map, fit_geometries=[None, "junk"], fit_points=[])

    assert bounds_of([None, "junk"], []) is None
    assert "fitBounds(" not in embed_parts(folium_map).script
