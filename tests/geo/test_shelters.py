"""Hazard zones and shelters on the map: the layers, their words and shapes, escaping, query counts,
who may change a shelter's status, and the status service itself."""

import json
import re
from datetime import datetime
from datetime import timezone as dt_timezone
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.contrib.staticfiles import finders
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from dashboard.maps import SHELTER_LAYER_NAME, SHELTER_STATUSES, shelter_display
from geo.maps import DEPTH_BANDS, HAZARD_LAYER_NAME, LANDSLIDE_AREA, UNKNOWN_DEPTH, hazard_band
from geo.models import HazardZone, Shelter
from geo.selectors import shelter_status_settable
from geo.services import shelter_status_set
from tests.public_page import basemap_markup, public_basemap, public_document, public_shell
from tenancy.models import AuditEvent, Membership
from tenancy.selectors import ANONYMOUS, Viewer

HOSTILE = '<img src=x onerror="alert(1)">'


def square(west, south, east, north):
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    return {"type": "Polygon", "coordinates": [ring]}


def make_shelter(town, code, *, status=Shelter.Status.CLOSED, **extra):
    return Shelter.objects.create(
        code=code,
        name_ja=extra.pop("name_ja", f"{code} 避難所"),
        name_en=extra.pop("name_en", f"{code} shelter"),
        municipality=town,
        lon=extra.pop("lon", 140.05),
        lat=extra.pop("lat", 35.05),
        capacity=extra.pop("capacity", 100),
        status=status,
        **extra,
    )


def make_zone(name, *, depth_min=0.5, depth_max=3.0, geometry=None, **extra):
    return HazardZone.objects.create(
        name_ja=name,
        name_en=f"{name} area",
        depth_min_m=depth_min,
        depth_max_m=depth_max,
        geometry=geometry or square(140.0, 35.0, 140.1, 35.1),
        **extra,
    )


def map_features(html: str) -> list[dict]:
    features = []
    for match in re.finditer(r"geo_json_[0-9a-f]+_add\((\{.*\})\);", html):
        features.extend(json.loads(match.group(1))["features"])
    return features


def shelter_features(html: str) -> dict[str, dict]:
    return {f["id"]: f for f in map_features(html) if "status" in f["properties"]}


def page_text(client, url: str) -> str:
    """What the page's reader receives: for the public page, the shell, its base map and its
    snapshot, whose shelters are written as the map script writes them, so both parse alike."""
    if url != "/":
        return client.get(url).content.decode()
    shelters = {"type": "FeatureCollection", "features": public_document(client)["shelters"]}
    script = public_basemap(client)
    as_script = json.dumps(shelters).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return "\n".join([public_shell(client), basemap_markup(script), script, f"geo_json_0_add({as_script});"])


def hazard_features(html: str) -> list[dict]:
    return [f for f in map_features(html) if "band" in f["properties"]]


@pytest.fixture
def shelters(towns):
    town_a, town_b = towns
    return {
        "a-open": make_shelter(town_a, "SH-A-OPEN", status=Shelter.Status.OPEN, address="水守町 1-1"),
        "a-closed": make_shelter(town_a, "SH-A-CLOSED"),
        "b-full": make_shelter(town_b, "SH-B-FULL", status=Shelter.Status.FULL, capacity=None),
    }


# --- the layers on the page -------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/", "/hq/"])
def test_both_pages_draw_shelters_and_hazard_zones_as_toggleable_layers(client, user_a, shelters, url):
    make_zone("下流", depth_min=3.0, depth_max=5.0)
    client.force_login(user_a)

    html = page_text(client, url)

    assert set(shelter_features(html)) == {"SH-A-OPEN", "SH-A-CLOSED", "SH-B-FULL"}
    (zone,) = hazard_features(html)
    assert zone["properties"]["band"] == "d2"
    # Layer names in the LayerControl, next to the station layers and the geography.
    for name in (SHELTER_LAYER_NAME, HAZARD_LAYER_NAME, "河川水位 River level"):
        assert json.dumps(name)[1:-1] in html or name in html, name
    # The shelter layer is handed to live.js like the station layers are.
    assert re.search(r"Mizumori\.registerShelterLayer\(geo_json_[0-9a-f]+\);", html)
    assert "Mizumori.shelterMarker" in html


@pytest.mark.django_db
def test_shelter_feature_says_status_in_words_shape_and_colour(client, shelters):
    html = page_text(client, "/")
    features = shelter_features(html)

    open_shelter = features["SH-A-OPEN"]["properties"]
    assert "mz-shelter-open" in open_shelter["display"]["icon"]
    # The feature is the same for every reader (the public snapshot is one document): data, and a
    # drawing without words; the page writes the words in its language (static/mizumori/stations.js).
    assert set(open_shelter["display"]) == {"icon", "z", "updated"}
    assert "aria-label" not in open_shelter["display"]["icon"] and "開設中" not in json.dumps(open_shelter, ensure_ascii=False)
    assert (open_shelter["status"], open_shelter["capacity"], open_shelter["address"]) == ("open", 100, "水守町 1-1")
    vocabulary = json.loads(re.search(r'id="mz-map-vocabulary"[^>]*>(.*?)</script>', html, re.S).group(1))
    assert vocabulary["shelter_statuses"]["open"]["name"] == ["開設中", "Open"]
    assert vocabulary["shelter_statuses"]["full"]["name"] == ["満員", "Full"]

    closed_icon = features["SH-A-CLOSED"]["properties"]["display"]["icon"]
    assert "mz-shelter-closed" in closed_icon and 'stroke-dasharray="3 2.5"' in closed_icon  # hollow, dashed
    assert features["SH-B-FULL"]["properties"]["capacity"] is None
    # Each status draws its own mark inside the house, so it reads in black and white.
    marks = {style.mark for style in SHELTER_STATUSES.values()}
    assert len(marks) == 3


@pytest.mark.django_db
def test_shelter_update_time_is_shown_in_the_site_time_zone(towns, settings):
    settings.TIME_ZONE = "Asia/Tokyo"
    shelter = make_shelter(
        towns[0], "SH-TIME", status=Shelter.Status.OPEN,
        status_updated_at=datetime(2025, 7, 1, 23, 30, tzinfo=dt_timezone.utc),
    )
    shelter = Shelter.objects.select_related("municipality").get(pk=shelter.pk)

    display = shelter_display(shelter)

    assert display["updated"] == "2025-07-02 08:30 JST"


@pytest.mark.django_db
def test_legend_explains_shelter_statuses_and_the_depth_bands_shown(client, shelters):
    make_zone("浅い", depth_min=None, depth_max=0.5, geometry=square(140.0, 35.0, 140.05, 35.05))
    make_zone("深い", depth_min=3.0, depth_max=5.0, geometry=square(140.1, 35.0, 140.15, 35.05))

    def legend_of(language):
        markup = basemap_markup(public_basemap(client, language))
        return markup.split('class="mz-legend"', 1)[1].split("</details>", 1)[0]

    # The legend speaks the page's language (one language per page since the i18n round).
    japanese, english = legend_of(None), legend_of("en")
    for words in ("避難所 開設中", "避難所 満員", "避難所 閉鎖中"):
        assert words in japanese, words
    for words in ("Shelter: Open", "Shelter: Full", "Shelter: Closed"):
        assert words in english and words not in japanese, words
    assert "mz-hazard-d0" in japanese and "0.5m未満" in japanese and "under 0.5 m" in english
    for legend in (japanese, english):
        assert "mz-hazard-d2" in legend and "3.0" in legend and "5.0" in legend
        assert "mz-hazard-d1" not in legend  # no zone of that band on this map


@pytest.mark.django_db
def test_hazard_zone_is_labelled_with_its_depth_in_words(client):
    make_zone("川沿い", depth_min=0.5, depth_max=3.0, source="demo survey 2024")

    (zone,) = hazard_features(page_text(client, "/"))

    display = zone["properties"]["display"]
    assert "浸水深 0.5〜3m" in display["label"] and "0.5–3 m deep" in display["label"]
    assert "川沿い" in display["label"]
    assert "洪水浸水想定区域" in display["popup"] and "demo survey 2024" in display["popup"]


@pytest.mark.parametrize(
    "depth_min, depth_max, kind, band",
    [
        (0.5, 3.0, HazardZone.Kind.INUNDATION, "d1"),
        (None, 0.5, HazardZone.Kind.INUNDATION, "d0"),
        (0.0, 0.3, HazardZone.Kind.INUNDATION, "d0"),
        (3.0, 5.0, HazardZone.Kind.STORM_SURGE, "d2"),
        (6.0, None, HazardZone.Kind.INUNDATION, "d3"),
        (10.0, 20.0, HazardZone.Kind.INUNDATION, "d4"),
        (None, 25.0, HazardZone.Kind.INUNDATION, "d5"),
        (None, None, HazardZone.Kind.INUNDATION, UNKNOWN_DEPTH.css),
        (None, None, HazardZone.Kind.LANDSLIDE, LANDSLIDE_AREA.css),
    ],
)
def test_hazard_zones_are_shaded_by_the_band_of_their_deepest_depth(depth_min, depth_max, kind, band):
    zone = HazardZone(name_ja="z", name_en="z", kind=kind, depth_min_m=depth_min, depth_max_m=depth_max)

    assert hazard_band(zone).css == band


def test_legend_swatch_colours_match_the_map_shading():
    css = Path(finders.find("mizumori/map.css")).read_text()

    for band in (*DEPTH_BANDS, UNKNOWN_DEPTH, LANDSLIDE_AREA):
        assert re.search(rf"\.mz-hazard-{band.css} {{[^}}]*background: {band.fill};", css), band.css


@pytest.mark.django_db
def test_a_broken_hazard_geometry_is_left_out_not_fatal(client):
    make_zone("壊れた", geometry={"type": "Polygon", "coordinates": [[[140, 35], [140.1, 35]]]})
    make_zone("正常")

    html = page_text(client, "/")

    assert [f["properties"]["display"]["label"].count("正常") for f in hazard_features(html)] == [1]


# --- escaping --------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/", "/hq/"])
def test_shelter_and_hazard_names_are_escaped_everywhere(client, towns, django_user_model, url):
    make_shelter(towns[0], "SH-EVIL", name_ja=HOSTILE, name_en=HOSTILE, address=HOSTILE)
    make_zone(HOSTILE, source=HOSTILE)
    operator = django_user_model.objects.create_user("op-escape", password="pw-op-escape-123")
    Membership.objects.create(user=operator, municipality=towns[0], role=Membership.Role.OPERATOR)
    client.force_login(operator)

    html = page_text(client, url)

    assert "<img src=x" not in html
    shelter = shelter_features(html)["SH-EVIL"]["properties"]
    # Names and addresses are data (pages write them as text), never in the server's drawing.
    assert (shelter["name_ja"], shelter["address"]) == (HOSTILE, HOSTILE)
    assert "onerror" not in shelter["display"]["icon"]
    (zone,) = hazard_features(html)
    assert "&lt;img" in zone["properties"]["display"]["label"]
    assert "&lt;img" in zone["properties"]["display"]["popup"]


# --- queries ---------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/", "/hq/"])
def test_page_queries_do_not_grow_with_shelters_or_hazard_zones(client, towns, user_a, url):
    client.force_login(user_a)
    make_shelter(towns[0], "SH-Q-0")
    make_zone("Z0")
    page_text(client, url)  # warm up: session, content types

    with CaptureQueriesContext(connection) as few:
        page_text(client, url)
    for index in range(1, 12):
        make_shelter(towns[index % 2], f"SH-Q-{index}", status=Shelter.Status.OPEN)
        west = 140 + index / 10
        make_zone(f"Z{index}", depth_max=float(index), geometry=square(west, 35, west + 0.05, 35.05))
    with CaptureQueriesContext(connection) as many:
        page_text(client, url)

    assert len(many.captured_queries) == len(few.captured_queries)


# --- who may change a shelter's status ---------------------------------------------------------------


def viewer(role, town_id, *, admin=False):
    return Viewer(user_id=1, municipality_ids=frozenset({town_id}), role=role, acting_municipality_id=town_id,
                  is_platform_admin=admin)


@pytest.mark.parametrize(
    "who, allowed",
    [
        (viewer(Membership.Role.OPERATOR, 1), True),
        (viewer(Membership.Role.ADMIN, 1), True),
        (viewer(Membership.Role.VIEWER, 1), False),
        (viewer(Membership.Role.OPERATOR, 2), False),
        (viewer(Membership.Role.ADMIN, 2), False),
        (ANONYMOUS, False),
        (Viewer(user_id=1, is_platform_admin=True), True),
    ],
    ids=["operator", "town-admin", "viewer", "other-operator", "other-admin", "anonymous", "platform-admin"],
)
def test_only_operators_of_the_owning_town_or_platform_admins_may_set_status(who, allowed):
    shelter = Shelter(code="S", municipality_id=1)

    assert shelter_status_settable(viewer=who, shelter=shelter) is allowed


# --- the service -----------------------------------------------------------------------------------


@pytest.fixture
def operator_a(towns):
    user = get_user_model().objects.create_user("a-operator", password="pw-a-operator-123")
    Membership.objects.create(user=user, municipality=towns[0], role=Membership.Role.OPERATOR)
    return user


@pytest.mark.django_db
def test_status_set_stores_who_and_when_and_audits(shelters, operator_a, django_capture_on_commit_callbacks):
    shelter = shelters["a-closed"]

    with django_capture_on_commit_callbacks() as callbacks:
        shelter_status_set(shelter=shelter, status="open", actor=operator_a)

    stored = Shelter.objects.get(pk=shelter.pk)
    assert stored.status == "open"
    assert stored.status_updated_by == operator_a
    assert stored.status_updated_at is not None and stored.status_updated_at == shelter.status_updated_at
    event = AuditEvent.objects.get(action=AuditEvent.Action.SHELTER_UPDATED)
    assert (event.actor, event.municipality_id, event.target) == (operator_a, shelter.municipality_id, "SH-A-CLOSED")
    assert event.detail == {"from": "closed", "to": "open"}
    # Live publishing waits for the commit (dashboard.signals -> dashboard.live_geo).
    assert len(callbacks) == 1


@pytest.mark.django_db
@pytest.mark.parametrize("status", ["", "OPEN", "evacuating", None, 1, "open "])
def test_status_set_refuses_unknown_statuses_and_changes_nothing(shelters, operator_a, status):
    shelter = shelters["a-closed"]

    with pytest.raises(ValidationError):
        shelter_status_set(shelter=shelter, status=status, actor=operator_a)

    stored = Shelter.objects.get(pk=shelter.pk)
    assert (stored.status, stored.status_updated_at, stored.status_updated_by) == ("closed", None, None)
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.SHELTER_UPDATED).exists()
