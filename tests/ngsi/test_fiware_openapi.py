"""`/ngsi` against FIWARE's own NGSI-v2 OpenAPI description (vendored in tests/ngsi/fiware/, MIT).

For each operation of the description that Mizumori serves, a real request: the status must be one
the description declares for success (or, for what this subset refuses, an Orion error body), and
a JSON body must validate against the declared response schema. The description was generated
from the specification's examples and gets a few things wrong; `SPEC_ERRATA` relaxes exactly those,
each with its reason. Operations the subset does not serve must answer with Orion's error JSON.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from jsonschema import Draft4Validator

from ngsi.models import Subscription
from tests.ngsi.conftest import bearer, entity_id

pytestmark = pytest.mark.django_db

SPEC = json.loads((Path(__file__).parent / "fiware" / "ngsiv2-openapi.json").read_text(encoding="utf-8"))
BASE = "/ngsi"

# Where the description contradicts the NGSI-v2 specification text (or Orion) it was made from.
SPEC_ERRATA = {
    # Example attributes turned into required properties: an entity has the attributes its type has.
    ("RetrieveEntityResponse", "required"): (["type", "id"], "temperature/humidity/location come from the example"),
    ("QueryResponse", "required"): (["type", "id"], "temperature comes from the example"),
    ("RetrieveEntityAttributesResponse", "required"): ([], "temperature/humidity/location come from the example"),
    # Optional subscription fields marked required: the text says description, expires and
    # throttling are optional, and Orion omits them when unset.
    ("ListSubscriptionsResponse", "required"): (["id", "subject", "notification", "status"],
                                                "description, expires and throttling are optional in the text"),
    # An attribute value is any JSON value (Text, StructuredValue, geo:json ...), not only a number.
    ("GetAttributeDataResponse", "properties.value"): ({}, "value is any JSON, the example was a number"),
    # GET .../value answers the bare value (a number here); the definition is the example's address object.
    ("GetAttributeValueResponse", "*"): ({}, "the value is any JSON; the definition is one example object"),
}
# Success statuses the description declares wrongly: its own operation text says 204 No Content.
STATUS_ERRATA = {
    ("put", "/v2/entities/{entityId}/attrs/{attrName}"): 204,
    ("put", "/v2/entities/{entityId}/attrs/{attrName}/value"): 204,
}


def _definitions() -> dict:
    definitions = copy.deepcopy(SPEC["definitions"])
    for (name, where), (replacement, _reason) in SPEC_ERRATA.items():
        if where == "*":
            definitions[name] = replacement
            continue
        target = definitions[name]
        *parents, last = where.split(".")
        for key in parents:
            target = target[key]
        target[last] = replacement
    return definitions


DEFINITIONS = _definitions()


def response_schema(method: str, path: str, status: int) -> dict | None:
    declared = SPEC["paths"][path][method]["responses"]
    schema = declared.get(str(status), {}).get("schema")
    return None if schema is None else {**schema, "definitions": DEFINITIONS}


def check(response, method: str, path: str) -> None:
    """The response is a declared success of the operation and its body fits the declared schema."""
    declared = {int(code) for code in SPEC["paths"][path][method]["responses"]}
    expected = {STATUS_ERRATA[(method, path)]} if (method, path) in STATUS_ERRATA else declared
    assert response.status_code in expected, (method, path, response.status_code, response.content[:300])
    schema = response_schema(method, path, response.status_code)
    if schema is not None:
        assert response["Content-Type"].startswith("application/json")
        errors = sorted(Draft4Validator(schema).iter_errors(response.json()), key=str)
        assert not errors, (method, path, [f"{list(e.path)}: {e.message}" for e in errors[:5]])


def test_the_vendored_description_is_fiwares_ngsi_v2():
    assert SPEC["swagger"] == "2.0" and SPEC["info"]["title"] == "FIWARE-NGSI v2 Specification"
    assert (Path(__file__).parent / "fiware" / "LICENSE").read_text().startswith("MIT License")
    for (name, where), _ in SPEC_ERRATA.items():
        assert name in SPEC["definitions"], name  # an erratum for something the description no longer has


def test_reads_answer_as_the_description_says(client, basin, token_a):
    river = entity_id("A-PUBLIC")
    auth = bearer(token_a)
    reads = [
        ("/v2", "/v2", {}),
        ("/v2/entities", "/v2/entities", {"limit": 1000}),
        ("/v2/entities", "/v2/entities", {"type": "WaterObserved", "q": "height>1", "options": "count"}),
        ("/v2/entities/{entityId}", f"/v2/entities/{river}", {}),
        ("/v2/entities/{entityId}/attrs", f"/v2/entities/{river}/attrs", {}),
        ("/v2/entities/{entityId}/attrs/{attrName}", f"/v2/entities/{river}/attrs/height", {}),
        ("/v2/entities/{entityId}/attrs/{attrName}", f"/v2/entities/{river}/attrs/location", {}),
        ("/v2/entities/{entityId}/attrs/{attrName}/value", f"/v2/entities/{river}/attrs/height/value", {}),
        ("/v2/types/", "/v2/types/", {}),
        ("/v2/types/{entityType}", "/v2/types/WaterObserved", {}),
        ("/v2/subscriptions", "/v2/subscriptions", {}),
        ("/v2/registrations", "/v2/registrations", {}),
    ]
    for spec_path, path, params in reads:
        check(client.get(BASE + path, data=params, **auth), "get", spec_path)


def test_entities_of_every_kind_fit_the_entity_schemas(client, basin, token_a):
    listed = client.get(f"{BASE}/v2/entities", data={"limit": 1000}, **bearer(token_a))
    assert {e["type"] for e in listed.json()} == {"WaterObserved", "WeatherObserved"}
    check(listed, "get", "/v2/entities")
    for entity in listed.json():
        check(client.get(f"{BASE}/v2/entities/{entity['id']}", **bearer(token_a)), "get", "/v2/entities/{entityId}")


def test_the_descriptions_own_query_example_is_accepted(client, basin, token_a):
    example = SPEC["definitions"]["QueryRequest"]["example"]
    assert not list(Draft4Validator({**SPEC["definitions"]["QueryRequest"], "definitions": DEFINITIONS}).iter_errors(example))
    response = client.post(f"{BASE}/v2/op/query", data=json.dumps(example), content_type="application/json")
    check(response, "post", "/v2/op/query")
    assert response.json() == []  # no Rooms or Cars here
    ours = {"entities": [{"idPattern": ".*", "type": "WaterObserved"}], "attrs": ["height"],
            "expression": {"q": "height>1"}, "metadata": ["unitCode"]}
    response = client.post(f"{BASE}/v2/op/query", data=json.dumps(ours), content_type="application/json", **bearer(token_a))
    check(response, "post", "/v2/op/query")
    assert sorted(entity["id"] for entity in response.json()) == [
        entity_id("A-PUBLIC"), entity_id("A-REGION"), entity_id("B-PUBLIC")]  # B-PRIVATE is not town A's to see
    assert all(set(entity) == {"id", "type", "height"} for entity in response.json())


def test_writes_and_subscriptions_answer_as_the_description_says(client, basin, token_a, settings):
    settings.NGSI_NOTIFY_ALLOWED_HOSTS = ["127.0.0.1:9"]
    river, auth = entity_id("A-PUBLIC"), bearer(token_a)
    json_body = {"content_type": "application/json", **auth}
    check(client.patch(f"{BASE}/v2/entities/{river}/attrs", data=json.dumps({"height": {"value": 2.0}}), **json_body),
          "patch", "/v2/entities/{entityId}/attrs")
    check(client.post(f"{BASE}/v2/entities/{river}/attrs", data=json.dumps({"height": {"value": 2.1}}), **json_body),
          "post", "/v2/entities/{entityId}/attrs")
    check(client.put(f"{BASE}/v2/entities/{river}/attrs/height", data=json.dumps({"value": 2.2, "type": "Number"}),
                     **json_body), "put", "/v2/entities/{entityId}/attrs/{attrName}")
    check(client.put(f"{BASE}/v2/entities/{river}/attrs/height/value", data="2.3", content_type="text/plain", **auth),
          "put", "/v2/entities/{entityId}/attrs/{attrName}/value")
    batch = {"actionType": "append", "entities": [{"id": river, "type": "WaterObserved", "height": {"value": 2.4}}]}
    check(client.post(f"{BASE}/v2/op/update", data=json.dumps(batch), **json_body), "post", "/v2/op/update")

    subscription = {"description": "conformance", "subject": {"entities": [{"idPattern": ".*"}]},
                    "notification": {"http": {"url": "http://127.0.0.1:9/notify"}}}
    created = client.post(f"{BASE}/v2/subscriptions", data=json.dumps(subscription), **json_body)
    check(created, "post", "/v2/subscriptions")
    public_id = Subscription.objects.get().public_id
    check(client.get(f"{BASE}/v2/subscriptions", **auth), "get", "/v2/subscriptions")
    check(client.get(f"{BASE}/v2/subscriptions/{public_id}", **auth), "get", "/v2/subscriptions/{subscriptionId}")
    check(client.patch(f"{BASE}/v2/subscriptions/{public_id}", data=json.dumps({"throttling": 5}), **json_body),
          "patch", "/v2/subscriptions/{subscriptionId}")
    check(client.delete(f"{BASE}/v2/subscriptions/{public_id}", **auth), "delete", "/v2/subscriptions/{subscriptionId}")


# What the subset refuses (stations are registered in the platform; no context providers):
# Orion's error body with a 4xx, never an HTML page or "service not found".
REFUSED = [
    ("post", "/v2/entities", {"id": "urn:ngsi-ld:WaterObserved:NEW", "type": "WaterObserved"}),
    ("delete", "/v2/entities/{entityId}", None),
    ("put", "/v2/entities/{entityId}/attrs", {"height": {"value": 1}}),
    ("delete", "/v2/entities/{entityId}/attrs/{attrName}", None),
    ("post", "/v2/registrations", {"dataProvided": {"entities": [{"id": "x"}]}, "provider": {"http": {"url": "http://x"}}}),
    ("get", "/v2/registrations/{registrationId}", None),
    ("delete", "/v2/registrations/{registrationId}", None),
    ("patch", "/v2/registrations/{registrationId}", {"description": "x"}),
]


@pytest.mark.parametrize("method, spec_path, body", REFUSED)
def test_operations_the_subset_refuses_answer_with_orion_errors(client, basin, token_a, method, spec_path, body):
    assert method in SPEC["paths"][spec_path]
    path = (spec_path.replace("{entityId}", entity_id("A-PUBLIC")).replace("{attrName}", "height")
            .replace("{registrationId}", "5f9b2c1e0a1b2c3d4e5f6a7b"))
    kwargs = {"data": json.dumps(body), "content_type": "application/json"} if body is not None else {}
    response = getattr(client, method)(BASE + path, **kwargs, **bearer(token_a))
    assert 400 <= response.status_code < 500, (method, path)
    error = response.json()
    assert set(error) == {"error", "description"} and error["description"] != "service not found", (method, path, error)


def test_every_path_of_the_description_is_routed(client, db):
    """No path of the description falls through to the catch-all."""
    for spec_path, operations in SPEC["paths"].items():
        path = (spec_path.replace("{entityId}", "urn:ngsi-ld:WaterObserved:X").replace("{attrName}", "height")
                .replace("{entityType}", "WaterObserved").replace("{subscriptionId}", "5f9b2c1e0a1b2c3d4e5f6a7b")
                .replace("{registrationId}", "5f9b2c1e0a1b2c3d4e5f6a7b"))
        for method in operations:
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            body = {"data": "{}", "content_type": "application/json"} if method in ("post", "put", "patch") else {}
            response = getattr(client, method)(BASE + path, **body)
            assert response["Content-Type"].startswith("application/json"), (method, path)
            if response.status_code >= 400:
                assert response.json()["description"] != "service not found", (method, path)
