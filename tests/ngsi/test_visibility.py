"""Who sees what through NGSI: the platform's visibility rules on every read path, and Fiware-Service."""

import pytest
from django.urls import reverse

from tests.ngsi.conftest import NGSI, NOT_FOUND, bearer, codes, entity_id

pytestmark = pytest.mark.django_db

PRIVATE_AND_REGION = ["A-PRIVATE", "A-REGION", "B-PRIVATE", "B-REGION", "B-RAIN"]


def all_listed(client, headers=None, **params):
    response = client.get(f"{NGSI}/entities", data={"limit": 1000, **params}, **(headers or {}))
    assert response.status_code == 200, response.content
    return codes(response.json())


def entity_paths(code, kind="river"):
    measured = {"river": "height", "rain": "precipitation"}[kind]
    base = f"{NGSI}/entities/{entity_id(code, kind)}"
    return [base, f"{base}/attrs", f"{base}/attrs/{measured}", f"{base}/attrs/{measured}/value",
            f"{base}/attrs/name/value"]


def test_anonymous_never_gets_a_private_or_region_station(client, basin):
    everything_else = [
        {},
        {"idPattern": ".*"},
        {"idPattern": "PRIVATE|REGION"},
        {"id": ",".join(entity_id(code) for code in PRIVATE_AND_REGION)},
        {"q": "height>=0"},
        {"q": "dataProvider==town-b"},
        {"georel": "near;maxDistance:1000000", "geometry": "point", "coords": "35.0,140.0"},
        {"georel": "coveredBy", "geometry": "box", "coords": "30,130;40,150"},
        {"type": "WaterObserved,WeatherObserved"},
    ]
    for params in everything_else:
        assert not set(all_listed(client, **params)) & set(PRIVATE_AND_REGION), params
    for code, kind in [("A-PRIVATE", "river"), ("A-REGION", "river"), ("B-RAIN", "rain")]:
        for path in entity_paths(code, kind):
            response = client.get(path)
            assert (response.status_code, response.json()) == (404, NOT_FOUND), path
    types = {t["type"]: t["count"] for t in client.get(f"{NGSI}/types").json()}
    assert types == {"WaterObserved": 3, "WeatherObserved": 1}
    assert client.get(f"{NGSI}/types/WeatherObserved").json()["count"] == 1


def test_not_visible_and_missing_look_the_same(client, basin, token_b):
    hidden = client.get(f"{NGSI}/entities/{entity_id('A-PRIVATE')}", **bearer(token_b))
    missing = client.get(f"{NGSI}/entities/{entity_id('A-NOTHING')}", **bearer(token_b))
    assert hidden.status_code == missing.status_code == 404
    assert hidden.content == missing.content


def test_members_and_tokens_see_region_stations_and_their_own_private_ones(client, basin, token_a, user_b):
    assert all_listed(client, bearer(token_a)) == [
        "A-DAM", "A-PRIVATE", "A-PUBLIC", "A-RAIN", "A-REGION", "B-PUBLIC", "B-RAIN", "B-REGION"
    ]
    client.force_login(user_b)
    assert all_listed(client) == ["A-DAM", "A-PUBLIC", "A-RAIN", "A-REGION", "B-PRIVATE", "B-PUBLIC", "B-RAIN", "B-REGION"]
    assert client.get(f"{NGSI}/entities/{entity_id('A-PRIVATE')}").status_code == 404
    assert client.get(f"{NGSI}/entities/{entity_id('B-PRIVATE')}").status_code == 200


def test_token_b_never_reads_town_a_private_station_whatever_the_filter(client, basin, token_b):
    headers = bearer(token_b)
    for params in ({"idPattern": "A-PRIVATE"}, {"id": entity_id("A-PRIVATE")}, {"q": "height==1.0"},
                   {"georel": "near;maxDistance:1", "geometry": "point", "coords": "35.0,140.0"}):
        assert "A-PRIVATE" not in all_listed(client, headers, **params), params
    for path in entity_paths("A-PRIVATE"):
        assert client.get(path, **headers).status_code == 404


def test_fiware_service_narrows_to_stations_owned_by_that_town(client, basin, token_a):
    town_a = {"HTTP_FIWARE_SERVICE": "town_a"}
    assert all_listed(client, {**bearer(token_a), **town_a}) == ["A-DAM", "A-PRIVATE", "A-PUBLIC", "A-RAIN", "A-REGION"]
    # The slug itself works too; the service never widens what the viewer may see.
    assert all_listed(client, {**bearer(token_a), "HTTP_FIWARE_SERVICE": "town-b"}) == ["B-PUBLIC", "B-RAIN", "B-REGION"]
    assert all_listed(client, town_a) == ["A-DAM", "A-PUBLIC", "A-RAIN"]
    assert all_listed(client, {"HTTP_FIWARE_SERVICE": "Town_B"}) == ["B-PUBLIC"]
    assert all_listed(client, {"HTTP_FIWARE_SERVICE": "atlantis"}) == []
    assert client.get(f"{NGSI}/entities/{entity_id('B-PUBLIC')}", **town_a).status_code == 404
    assert client.get(f"{NGSI}/entities/{entity_id('A-PUBLIC')}", **town_a).status_code == 200


def test_service_paths(client, basin):
    assert all_listed(client, {"HTTP_FIWARE_SERVICEPATH": "/"}) == ["A-DAM", "A-PUBLIC", "A-RAIN", "B-PUBLIC"]
    assert all_listed(client, {"HTTP_FIWARE_SERVICEPATH": "/#"}) == ["A-DAM", "A-PUBLIC", "A-RAIN", "B-PUBLIC"]
    assert all_listed(client, {"HTTP_FIWARE_SERVICEPATH": "/basin/east"}) == []
    assert all_listed(client, {"HTTP_FIWARE_SERVICEPATH": "/basin,/"}) == ["A-DAM", "A-PUBLIC", "A-RAIN", "B-PUBLIC"]


@pytest.mark.parametrize(
    "headers",
    [
        {"HTTP_FIWARE_SERVICE": "town a"},
        {"HTTP_FIWARE_SERVICE": "town;drop"},
        {"HTTP_FIWARE_SERVICE": "x" * 51},
        {"HTTP_FIWARE_SERVICEPATH": "relative"},
        {"HTTP_FIWARE_SERVICEPATH": "/bad level"},
        {"HTTP_FIWARE_SERVICEPATH": ",".join(["/a"] * 11)},
    ],
)
def test_malformed_tenant_headers_are_bad_requests(client, basin, headers):
    response = client.get(f"{NGSI}/entities", **headers)
    assert response.status_code == 400
    assert response.json()["error"] == "BadRequest"


def test_bad_tokens_are_refused_with_an_ngsi_error(client, basin, token_a):
    from tenancy.models import IngestToken
    from tenancy.services import ingest_token_revoke

    for header in ("Bearer nope", "Bearer", "Bearer a b"):
        response = client.get(f"{NGSI}/entities", HTTP_AUTHORIZATION=header)
        assert response.status_code == 401, header
        assert response.json()["error"] == "Unauthorized"
    ingest_token_revoke(token=IngestToken.objects.get(digest=IngestToken.digest_of(token_a)))
    assert client.get(f"{NGSI}/entities", **bearer(token_a)).status_code == 401


def test_the_openapi_schema_describes_the_ngsi_endpoints(client, db):
    response = client.get(reverse("api-schema"), HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert "/ngsi/v2/entities" in paths and "/ngsi/v2/entities/" not in paths
    assert "/ngsi/v2/subscriptions/{subscription_id}" in paths
    assert paths["/ngsi/notify"]["post"]["operationId"] == "ngsi_notify"


def test_a_station_shared_by_grant_reaches_only_the_grantee(client, basin, towns, token_a, token_b):
    from sensors.models import SharingGrant, Visibility
    from tests.conftest import make_station

    shared = make_station(towns[0], "A-SHARED", visibility=Visibility.SHARED)
    path = f"{NGSI}/entities/{entity_id('A-SHARED')}"
    assert client.get(path, **bearer(token_a)).status_code == 200
    assert client.get(path, **bearer(token_b)).status_code == 404
    assert client.get(path).status_code == 404
    SharingGrant.objects.create(station=shared, grantor=towns[0], grantee=towns[1])
    assert client.get(path, **bearer(token_b)).status_code == 200
    assert "A-SHARED" in all_listed(client, bearer(token_b), idPattern="SHARED")
    assert client.get(path).status_code == 404
