"""Notifications end to end: a subscription made through the API, readings ingested, and a real HTTP
receiver on 127.0.0.1 that records what arrives (or answers 500)."""

import json
from datetime import timedelta

import pytest

from ngsi.models import Subscription
from ngsi.services import notification_backoff_seconds
from sensors.services import observation_ingest
from tests.ngsi.conftest import NGSI, T0, bearer, entity_id

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.usefixtures("eager_celery"),
    pytest.mark.timeout(120),
]


def subscribe(client, token, url, *, entities=None, condition=None, notification=None, **extra):
    body = {
        "subject": {"entities": entities or [{"idPattern": ".*"}], "condition": condition or {}},
        "notification": {"http": {"url": url}, **(notification or {})},
        **extra,
    }
    response = client.post(f"{NGSI}/subscriptions", data=json.dumps(body), content_type="application/json",
                           **(bearer(token) if token else {}))
    assert response.status_code == 201, response.content
    return response["Location"].rsplit("/", 1)[1]


def shown(client, token, subscription_id):
    return client.get(f"{NGSI}/subscriptions/{subscription_id}", **bearer(token)).json()


def ingest(capture, readings, minutes=10):
    with capture(execute=True):
        report = observation_ingest(
            municipality=None,
            items=[{"station": code, "observed_at": T0 + timedelta(minutes=minutes), "value": value}
                   for code, value in readings],
            source="http",
            now=T0 + timedelta(minutes=minutes + 1),
        )
    assert not report.rejected, report.rejected
    return report


def test_one_notification_per_batch_in_orion_format(client, basin, token_a, receiver, django_capture_on_commit_callbacks):
    subscription_id = subscribe(client, token_a, receiver.url, entities=[{"idPattern": ".*", "type": "WaterObserved"}],
                                notification={"attrs": ["height", "dateObserved", "alertLevel"]})
    ingest(django_capture_on_commit_callbacks, [("A-PUBLIC", 3.6), ("A-PRIVATE", 1.5), ("A-RAIN", 5.0), ("B-PUBLIC", 1.1)])
    requests = receiver.wait_for(1)
    assert len(requests) == 1
    notification = requests[0]
    assert notification["path"] == "/notify"
    assert notification["headers"]["content-type"].startswith("application/json")
    assert notification["headers"]["fiware-service"] == "town_a"
    assert notification["headers"]["fiware-servicepath"] == "/"
    assert notification["headers"]["ngsiv2-attrsformat"] == "normalized"
    assert notification["json"]["subscriptionId"] == subscription_id
    assert notification["json"]["data"] == [
        {"id": entity_id("A-PRIVATE"), "type": "WaterObserved",
         "height": {"type": "Number", "value": 1.5, "metadata": {"unitCode": {"type": "Text", "value": "MTR"}}},
         "dateObserved": {"type": "DateTime", "value": "2026-11-21T21:10:00+09:00", "metadata": {}},
         "alertLevel": {"type": "Number", "value": 0, "metadata": {}}},
        {"id": entity_id("A-PUBLIC"), "type": "WaterObserved",
         "height": {"type": "Number", "value": 3.6, "metadata": {"unitCode": {"type": "Text", "value": "MTR"}}},
         "dateObserved": {"type": "DateTime", "value": "2026-11-21T21:10:00+09:00", "metadata": {}},
         "alertLevel": {"type": "Number", "value": 3, "metadata": {}}},
        {"id": entity_id("B-PUBLIC"), "type": "WaterObserved",
         "height": {"type": "Number", "value": 1.1, "metadata": {"unitCode": {"type": "Text", "value": "MTR"}}},
         "dateObserved": {"type": "DateTime", "value": "2026-11-21T21:10:00+09:00", "metadata": {}},
         "alertLevel": {"type": "Number", "value": 0, "metadata": {}}},
    ]
    record = shown(client, token_a, subscription_id)["notification"]
    assert record["timesSent"] == 1 and record["lastSuccessCode"] == 204
    assert record["lastNotification"] and record["lastSuccess"] and "lastFailure" not in record

    ingest(django_capture_on_commit_callbacks, [("A-PUBLIC", 3.7)], minutes=20)
    assert len(receiver.wait_for(2)) == 2
    assert [e["id"] for e in receiver.requests[1]["json"]["data"]] == [entity_id("A-PUBLIC")]


def test_key_values_conditions_and_expression(client, basin, token_a, receiver, django_capture_on_commit_callbacks):
    subscribe(client, token_a, receiver.url, entities=[{"id": entity_id("A-PUBLIC")}, {"idPattern": "RAIN$"}],
              condition={"attrs": ["height", "precipitation"], "expression": {"q": "alertLevel>=3"}},
              notification={"attrsFormat": "keyValues", "attrs": ["height", "precipitation", "alertLevel"]})
    ingest(django_capture_on_commit_callbacks, [("A-PUBLIC", 3.1), ("A-RAIN", 1.0)])  # level 2 and 0: no match
    ingest(django_capture_on_commit_callbacks, [("A-PUBLIC", 3.55), ("A-REGION", 4.5)], minutes=20)
    requests = receiver.wait_for(1)
    assert len(requests) == 1
    assert requests[0]["headers"]["ngsiv2-attrsformat"] == "keyValues"
    assert requests[0]["json"]["data"] == [
        {"id": entity_id("A-PUBLIC"), "type": "WaterObserved", "height": 3.55, "alertLevel": 3}
    ]


def test_a_subscription_only_sees_what_its_owner_may_see(client, basin, token_a, token_b, receiver,
                                                      django_capture_on_commit_callbacks):
    subscribe(client, token_b, receiver.url, notification={"attrsFormat": "keyValues", "attrs": ["height"]})
    ingest(django_capture_on_commit_callbacks, [("A-PRIVATE", 1.5)])
    ingest(django_capture_on_commit_callbacks, [("A-PRIVATE", 1.6), ("A-REGION", 1.7), ("A-PUBLIC", 1.8)], minutes=20)
    requests = receiver.wait_for(1)
    assert len(requests) == 1  # nothing at all for the batch with only A's private gauge
    assert [e["id"] for e in requests[0]["json"]["data"]] == [entity_id("A-PUBLIC"), entity_id("A-REGION")]
    assert requests[0]["headers"]["fiware-service"] == "town_b"


def test_scoped_subscription_and_a_revoked_owner(client, basin, token_a, receiver, django_capture_on_commit_callbacks):
    from tenancy.models import IngestToken
    from tenancy.services import ingest_token_revoke

    response = client.post(
        f"{NGSI}/subscriptions", content_type="application/json", HTTP_FIWARE_SERVICE="town_b", **bearer(token_a),
        data=json.dumps({"subject": {"entities": [{"idPattern": ".*"}]}, "notification": {"http": {"url": receiver.url}}}),
    )
    assert response.status_code == 201
    ingest(django_capture_on_commit_callbacks, [("A-PUBLIC", 1.0), ("B-PUBLIC", 1.1), ("B-PRIVATE", 1.2)])
    requests = receiver.wait_for(1)
    assert [e["id"] for e in requests[0]["json"]["data"]] == [entity_id("B-PUBLIC")]
    assert requests[0]["headers"]["fiware-service"] == "town_b"
    ingest_token_revoke(token=IngestToken.objects.get(digest=IngestToken.digest_of(token_a)))
    ingest(django_capture_on_commit_callbacks, [("B-PUBLIC", 1.3)], minutes=20)
    assert len(receiver.wait_for(2, timeout=1)) == 1


def test_a_user_owned_subscription_stops_when_the_user_leaves_the_town(client, basin, user_a, receiver,
                                                                       django_capture_on_commit_callbacks):
    from tenancy.models import Membership

    Membership.objects.filter(user=user_a).update(role=Membership.Role.OPERATOR)
    client.force_login(user_a)
    subscription_id = subscribe(client, None, receiver.url)
    assert Subscription.objects.get(public_id=subscription_id).owner_user == user_a
    ingest(django_capture_on_commit_callbacks, [("A-PRIVATE", 1.1)])
    assert len(receiver.wait_for(1)) == 1
    Membership.objects.filter(user=user_a).delete()
    ingest(django_capture_on_commit_callbacks, [("A-PUBLIC", 1.2)], minutes=20)
    assert len(receiver.wait_for(2, timeout=1)) == 1


def test_throttling_drops_notifications_inside_the_period(client, basin, token_a, receiver,
                                                          django_capture_on_commit_callbacks):
    subscription_id = subscribe(client, token_a, receiver.url, throttling=3600)
    ingest(django_capture_on_commit_callbacks, [("A-PUBLIC", 1.0)])
    ingest(django_capture_on_commit_callbacks, [("A-PUBLIC", 1.1)], minutes=20)
    ingest(django_capture_on_commit_callbacks, [("A-PUBLIC", 1.2)], minutes=30)
    assert len(receiver.wait_for(2, timeout=1)) == 1
    # Once the period is over (moved back here rather than waited for), the next batch goes out.
    Subscription.objects.filter(public_id=subscription_id).update(
        last_notification=Subscription.objects.get(public_id=subscription_id).last_notification - timedelta(hours=2)
    )
    ingest(django_capture_on_commit_callbacks, [("A-PUBLIC", 1.3)], minutes=40)
    assert len(receiver.wait_for(2)) == 2
    assert receiver.requests[1]["json"]["data"][0]["height"]["value"] == 1.3


def test_a_failed_attempt_is_retried_and_recorded(client, basin, token_a, receiver, django_capture_on_commit_callbacks):
    subscription_id = subscribe(client, token_a, receiver.url)
    receiver.statuses.extend([500])
    ingest(django_capture_on_commit_callbacks, [("A-PUBLIC", 2.0)])
    requests = receiver.wait_for(2)
    assert [r["status"] for r in requests] == [500, 204]
    assert requests[0]["json"] == requests[1]["json"]  # the same notification, sent again
    record = shown(client, token_a, subscription_id)
    notification = record["notification"]
    assert record["status"] == "active"
    assert notification["timesSent"] == 2
    assert notification["lastFailureReason"] == "HTTP 500"
    assert notification["lastSuccessCode"] == 204
    assert "failsCounter" not in notification  # reset by the success
    assert notification["lastSuccess"] >= notification["lastFailure"]


def test_consecutive_failures_make_a_subscription_failed_until_re_armed(client, basin, token_a, receiver, settings,
                                                                        django_capture_on_commit_callbacks):
    settings.NGSI_NOTIFY_MAX_ATTEMPTS = 4
    receiver.default_status = 503
    subscription_id = subscribe(client, token_a, receiver.url, notification={"maxFailsLimit": 3})
    ingest(django_capture_on_commit_callbacks, [("A-PUBLIC", 2.0)])
    assert len(receiver.wait_for(3)) == 3
    record = shown(client, token_a, subscription_id)
    assert record["status"] == "failed"
    assert (record["notification"]["failsCounter"], record["notification"]["timesSent"]) == (3, 3)
    ingest(django_capture_on_commit_callbacks, [("A-PUBLIC", 2.1)], minutes=20)
    assert len(receiver.wait_for(4, timeout=1)) == 3  # a failed subscription sends nothing

    receiver.default_status = 200
    rearm = client.patch(f"{NGSI}/subscriptions/{subscription_id}", data='{"status": "active"}',
                         content_type="application/json", **bearer(token_a))
    assert rearm.status_code == 204
    ingest(django_capture_on_commit_callbacks, [("A-PUBLIC", 2.2)], minutes=30)
    assert len(receiver.wait_for(4)) == 4
    record = shown(client, token_a, subscription_id)
    assert record["status"] == "active" and "failsCounter" not in record["notification"]


def test_client_errors_are_not_retried(client, basin, token_a, receiver, django_capture_on_commit_callbacks):
    receiver.statuses.extend([404])
    subscription_id = subscribe(client, token_a, receiver.url)
    ingest(django_capture_on_commit_callbacks, [("A-PUBLIC", 2.0)])
    assert len(receiver.wait_for(2, timeout=1)) == 1
    assert shown(client, token_a, subscription_id)["notification"]["failsCounter"] == 1


def test_unreachable_receiver_and_allow_list_checked_again_before_sending(client, basin, token_a, receiver, settings,
                                                                           django_capture_on_commit_callbacks):
    subscription_id = subscribe(client, token_a, receiver.url)
    settings.NGSI_NOTIFY_ALLOWED_HOSTS = []  # the operator withdrew the permission after it was created
    ingest(django_capture_on_commit_callbacks, [("A-PUBLIC", 2.0)])
    assert receiver.wait_for(1, timeout=1) == []
    notification = shown(client, token_a, subscription_id)["notification"]
    assert notification["lastFailureReason"].startswith("refused:") and "timesSent" not in notification

    settings.NGSI_NOTIFY_ALLOWED_HOSTS = ["127.0.0.1:1"]
    Subscription.objects.filter(public_id=subscription_id).update(url="http://127.0.0.1:1/nobody-listens")
    settings.NGSI_NOTIFY_MAX_ATTEMPTS = 2
    ingest(django_capture_on_commit_callbacks, [("A-PUBLIC", 2.1)], minutes=20)
    notification = shown(client, token_a, subscription_id)["notification"]
    assert notification["timesSent"] == 2 and "Connection refused" in notification["lastFailureReason"]


def test_only_changed_attrs_covered_and_inactive(client, basin, token_a, receiver, django_capture_on_commit_callbacks):
    first = subscribe(client, token_a, receiver.url, entities=[{"id": entity_id("A-PUBLIC")}],
                      notification={"onlyChangedAttrs": True, "attrsFormat": "keyValues"})
    subscribe(client, token_a, receiver.url, entities=[{"id": entity_id("A-PUBLIC")}],
              notification={"covered": True, "attrs": ["height", "colour"], "attrsFormat": "keyValues"})
    ingest(django_capture_on_commit_callbacks, [("A-PUBLIC", 2.5)])
    bodies = sorted((r["json"] for r in receiver.wait_for(2)), key=lambda body: body["subscriptionId"] != first)
    assert bodies[0]["data"] == [{"id": entity_id("A-PUBLIC"), "type": "WaterObserved",
                                  "dateObserved": "2026-11-21T21:10:00+09:00", "height": 2.5, "alertLevel": 0}]
    assert bodies[1]["data"] == [{"id": entity_id("A-PUBLIC"), "type": "WaterObserved", "height": 2.5, "colour": None}]
    Subscription.objects.update(status=Subscription.Status.INACTIVE)
    ingest(django_capture_on_commit_callbacks, [("A-PUBLIC", 2.6)], minutes=20)
    assert len(receiver.wait_for(3, timeout=1)) == 2


def test_backoff_doubles(settings):
    settings.NGSI_NOTIFY_BACKOFF_SECONDS = 3
    assert [notification_backoff_seconds(n) for n in range(4)] == [3, 6, 12, 24]


def test_the_task_tries_max_attempts_times_with_growing_countdowns(settings, eager_celery, monkeypatch):
    from ngsi import tasks
    from ngsi.services import DeliveryOutcome

    settings.NGSI_NOTIFY_MAX_ATTEMPTS = 4
    settings.NGSI_NOTIFY_BACKOFF_SECONDS = 2
    attempts, countdowns = [], []
    monkeypatch.setattr(tasks, "notification_deliver", lambda **kw: attempts.append(kw) or DeliveryOutcome(False, True))
    original_retry = tasks.notify_subscription.retry

    def recording_retry(*args, **kwargs):
        countdowns.append(kwargs["countdown"])
        return original_retry(*args, **kwargs)

    monkeypatch.setattr(tasks.notify_subscription, "retry", recording_retry)
    tasks.notify_subscription.delay(1, "{}")
    assert len(attempts) == 4
    assert countdowns == [2, 4, 8]
