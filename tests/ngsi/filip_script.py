"""Drive Mizumori's NGSI-v2 interface with FIWARE's own Python client, filip.

Runs in the separate filip virtualenv (var/venv-filip: filip pins versions that clash with the
project's), started by tests/ngsi/test_filip_client.py against a live server. Input comes from the
environment; the result is one JSON object on stdout, so the test can assert on each step.

    MIZUMORI_NGSI_URL        the broker URL, e.g. http://localhost:8081/ngsi
    MIZUMORI_TOKEN           a gateway token of the town that owns the stations written
    MIZUMORI_SERVICE         the Fiware-Service (that town, written with '_')
    MIZUMORI_RECEIVER_URL    where the subscription created here should notify
    MIZUMORI_RIVER_ID        a river gauge entity of that town (read, updated)
    MIZUMORI_OTHER_ID        a river gauge of the same town for the batch update
    MIZUMORI_FOREIGN_ID      an entity of another broker that a notify mapping feeds into a station
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from datetime import datetime, timedelta, timezone

from filip import __version__ as filip_version
from filip.clients.ngsi_v2 import ContextBrokerClient
from filip.models.base import FiwareHeaderSecure
from filip.models.ngsi_v2.base import AttrsFormat, EntityPattern, Expression
from filip.models.ngsi_v2.context import ActionType, ContextEntity, NamedContextAttribute, Query
from filip.models.ngsi_v2.subscriptions import Message, Subscription


def main() -> dict:
    url = os.environ["MIZUMORI_NGSI_URL"]
    river_id, other_id = os.environ["MIZUMORI_RIVER_ID"], os.environ["MIZUMORI_OTHER_ID"]
    header = FiwareHeaderSecure(
        service=os.environ["MIZUMORI_SERVICE"],
        service_path="/",
        authorization=f"Bearer {os.environ['MIZUMORI_TOKEN']}",
    )
    out: dict = {"filip": filip_version}
    with ContextBrokerClient(url=url, fiware_header=header) as client:
        out["version"] = client.get_version()["orion"]["version"]

        # filip 0.8.1 cannot parse a normalized attribute of type "geo:json" (its type validator
        # refuses that name), and silently drops such entities from normalized lists; so full
        # entities are read as keyValues and normalized reads project the attributes they need.
        kv = AttrsFormat.KEY_VALUES
        everything = client.get_entity_list(response_format=kv)  # pages with limit/offset and the count header
        out["all_ids"] = sorted(entity.id for entity in everything)
        out["paged_ids"] = sorted(entity.id for entity in client.get_entity_list(limit=2, response_format=kv))
        out["water_over_3"] = sorted(
            entity.id
            for entity in client.get_entity_list(entity_types=["WaterObserved"], q="height>3", attrs=["height"])
        )
        out["pattern_public"] = sorted(
            entity.id for entity in client.get_entity_list(id_pattern="PUBLIC$", response_format=kv)
        )
        out["near"] = sorted(
            entity.id
            for entity in client.get_entity_list(
                georel="near;maxDistance:2000", geometry="point", coords="35.0,140.0", attrs=["alertLevel"]
            )
        )
        key_values = client.get_entity_list(entity_ids=[river_id], response_format=kv)
        out["key_values"] = key_values[0].model_dump(include={"id", "type", "height", "alertLevel"})

        entity = client.get_entity(
            entity_id=river_id, entity_type="WaterObserved", attrs=["height", "alertLevel", "dateObserved", "name"]
        )
        whole = client.get_entity(entity_id=river_id, entity_type="WaterObserved", response_format=kv)
        out["entity"] = {
            "id": entity.id,
            "type": entity.type,
            "height": entity.get_attribute("height").value,
            "alertLevel": entity.get_attribute("alertLevel").value,
            "location": whole.model_dump()["location"]["coordinates"],
        }
        out["height_value"] = client.get_attribute_value(entity_id=river_id, attr_name="height", entity_type="WaterObserved")
        out["types"] = sorted(item["type"] for item in client.get_entity_types())

        # POST /v2/op/query (paged by filip with limit/offset and the count header).
        out["op_query"] = [
            entity.model_dump(include={"id", "height"})
            for entity in client.query(
                query=Query(
                    entities=[EntityPattern(idPattern=".*", type="WaterObserved")],
                    attrs=["height"],
                    expression=Expression(q="height>3"),
                ),
                response_format=kv,
            )
        ]
        out["op_query_normalized"] = [
            (entity.id, entity.get_attribute("alertLevel").value)
            for entity in client.query(
                query=Query(entities=[EntityPattern(id=river_id)], attrs=["alertLevel"]), limit=5
            )
        ]
        # The routes fixed for issue 16: /v2 lists registrations, which filip reads at /v2/registrations/.
        out["registrations_url"] = client.get(url=f"{url}/v2", headers=client.headers).json().get("registrations_url")
        out["registrations"] = client.get_registration_list()
        slashed = client.get(url=f"{url}/v2/types/", headers=client.headers)
        out["types_slash"] = (slashed.status_code, sorted(item["type"] for item in slashed.json()))
        # filip itself refuses to send `q=height>>1`, so it goes through its session as it is.
        bad_q = client.get(url=f"{url}/v2/entities", params={"q": "height>>1"}, headers=client.headers)
        out["bad_q"] = {"status": bad_q.status_code, "body": bad_q.json()}
        # POST /v2/op/notify: another broker's notification, mapped onto a station (see NotifyMapping).
        client.notify(
            Message(
                subscriptionId="5f9b2c1e0a1b2c3d4e5f6a7b",
                data=[
                    ContextEntity(
                        id=os.environ["MIZUMORI_FOREIGN_ID"],
                        type="WaterLevelSensor",
                        waterLevel={"type": "Number", "value": 125},
                    )
                ],
            )
        )

        subscription = Subscription(
            description="filip test",
            subject={
                "entities": [{"idPattern": ".*", "type": "WaterObserved"}],
                "condition": {"attrs": ["height"]},
            },
            notification={
                "http": {"url": os.environ["MIZUMORI_RECEIVER_URL"]},
                "attrs": ["height", "alertLevel"],
                "attrsFormat": "keyValues",
            },
            throttling=0,
        )
        subscription_id = client.post_subscription(subscription)
        out["subscription_id"] = subscription_id

        # A reading through PUT .../attrs/height/value (filip sends text/plain) ...
        client.update_attribute_value(entity_id=river_id, attr_name="height", value=4.25, entity_type="WaterObserved")
        # ... one through PATCH .../attrs with an explicit time ...
        observed = (datetime.now(timezone.utc) - timedelta(minutes=5)).isoformat()
        client.update_existing_entity_attributes(
            entity_id=other_id,
            entity_type="WaterObserved",
            attrs=[
                NamedContextAttribute(name="height", type="Number", value=1.75),
                NamedContextAttribute(name="dateObserved", type="DateTime", value=observed),
            ],
        )
        # ... and both gauges in one batch (one notification for the two).
        client.update(
            action_type=ActionType.UPDATE,
            entities=[
                ContextEntity(id=river_id, type="WaterObserved", height={"type": "Number", "value": 4.5}),
                ContextEntity(id=other_id, type="WaterObserved", height={"type": "Number", "value": 1.5}),
            ],
        )
        out["height_after"] = client.get_attribute_value(
            entity_id=river_id, attr_name="height", entity_type="WaterObserved"
        )

        fetched = client.get_subscription(subscription_id)
        out["subscription"] = {
            "status": fetched.status.value if fetched.status else None,
            "timesSent": fetched.notification.timesSent,
            "url": str(fetched.notification.http.url),
            "attrsFormat": fetched.notification.attrsFormat.value,
        }
        out["subscription_ids"] = [item.id for item in client.get_subscription_list()]

        # Writing an attribute the platform derives is refused with Orion's error.
        try:
            client.update_existing_entity_attributes(
                entity_id=river_id, entity_type="WaterObserved",
                attrs=[NamedContextAttribute(name="alertLevel", type="Number", value=5)],
            )
            out["derived_write"] = "accepted"
        except Exception as exc:  # filip wraps the HTTP error
            response = getattr(exc, "response", None)
            out["derived_write"] = {"status": response.status_code, "body": response.json()} if response is not None else repr(exc)

        client.delete_subscription(subscription_id)
        out["after_delete"] = [item.id for item in client.get_subscription_list()]
    return out


if __name__ == "__main__":
    try:
        print(json.dumps(main()))
    except Exception:
        traceback.print_exc()
        sys.exit(1)
