"""Subscriptions: Orion's CRUD, who owns and sees them, and the notification URL allow-list."""

import json

import pytest

from ngsi.models import Subscription
from tests.ngsi.conftest import NGSI, bearer, entity_id

pytestmark = pytest.mark.django_db

SUBSCRIPTIONS = f"{NGSI}/subscriptions"


def document(url, **changes):
    body = {
        "description": "upstream gauges",
        "subject": {
            "entities": [{"idPattern": ".*", "type": "WaterObserved"}],
            "condition": {"attrs": ["height"], "expression": {"q": "height>2"}},
        },
        "notification": {"http": {"url": url}, "attrs": ["height", "alertLevel"], "attrsFormat": "keyValues"},
        "throttling": 5,
    }
    body.update(changes)
    return body


def create(client, body, token=None, **extra):
    headers = bearer(token) if token else {}
    return client.post(SUBSCRIPTIONS, data=json.dumps(body), content_type="application/json", **headers, **extra)


def test_create_read_update_delete(client, basin, token_a, receiver):
    response = create(client, document(receiver.url), token_a)
    assert response.status_code == 201, response.content
    location = response["Location"]
    assert location.startswith("/v2/subscriptions/")
    subscription_id = location.rsplit("/", 1)[1]
    assert len(subscription_id) == 24 and int(subscription_id, 16) >= 0

    listed = client.get(SUBSCRIPTIONS, data={"options": "count"}, **bearer(token_a))
    assert listed["Fiware-Total-Count"] == "1"
    shown = client.get(f"{SUBSCRIPTIONS}/{subscription_id}", **bearer(token_a)).json()
    assert shown == {
        "id": subscription_id,
        "description": "upstream gauges",
        "subject": {
            "entities": [{"idPattern": ".*", "type": "WaterObserved"}],
            "condition": {"attrs": ["height"], "expression": {"q": "height>2"}},
        },
        "notification": {
            "http": {"url": receiver.url},
            "attrs": ["height", "alertLevel"],
            "attrsFormat": "keyValues",
            "onlyChangedAttrs": False,
            "covered": False,
        },
        "status": "active",
        "throttling": 5,
    }
    assert listed.json() == [shown]
    assert client.get(SUBSCRIPTIONS + "/", **bearer(token_a)).json() == [shown]

    patched = client.patch(f"{SUBSCRIPTIONS}/{subscription_id}", data=json.dumps({"status": "inactive", "throttling": 0,
                           "expires": "2030-01-01T00:00:00Z"}), content_type="application/json", **bearer(token_a))
    assert patched.status_code == 204, patched.content
    shown = client.get(f"{SUBSCRIPTIONS}/{subscription_id}", **bearer(token_a)).json()
    assert (shown["status"], shown["throttling"], shown["expires"]) == ("inactive", 0, "2030-01-01T00:00:00.000Z")
    expired = client.patch(f"{SUBSCRIPTIONS}/{subscription_id}", data=json.dumps({"expires": "2020-01-01T00:00:00Z"}),
                           content_type="application/json", **bearer(token_a))
    assert expired.status_code == 204
    assert client.get(f"{SUBSCRIPTIONS}/{subscription_id}", **bearer(token_a)).json()["status"] == "expired"

    assert client.delete(f"{SUBSCRIPTIONS}/{subscription_id}", **bearer(token_a)).status_code == 204
    gone = client.get(f"{SUBSCRIPTIONS}/{subscription_id}", **bearer(token_a))
    assert (gone.status_code, gone.json()["error"]) == (404, "NotFound")


def make_operator(user):
    from tenancy.models import Membership

    Membership.objects.filter(user=user).update(role=Membership.Role.OPERATOR)
    return user


def test_subscriptions_belong_to_a_town(client, basin, token_a, token_b, user_a, user_b, receiver):
    subscription_id = create(client, document(receiver.url), token_a)["Location"].rsplit("/", 1)[1]
    assert Subscription.objects.get().municipality.slug == "town-a"
    assert client.get(SUBSCRIPTIONS, **bearer(token_b)).json() == []
    for method in ("get", "delete"):
        assert getattr(client, method)(f"{SUBSCRIPTIONS}/{subscription_id}", **bearer(token_b)).status_code == 404
    patch = client.patch(f"{SUBSCRIPTIONS}/{subscription_id}", data='{"status": "inactive"}',
                         content_type="application/json", **bearer(token_b))
    assert patch.status_code == 404
    client.force_login(user_a)  # a member of the owning town sees it ...
    assert [s["id"] for s in client.get(SUBSCRIPTIONS).json()] == [subscription_id]
    # ... but only operators and admins change subscriptions or create them.
    refused = client.patch(f"{SUBSCRIPTIONS}/{subscription_id}", data='{"status": "inactive"}',
                           content_type="application/json")
    assert (refused.status_code, refused.json()["error"]) == (403, "Forbidden")
    assert client.delete(f"{SUBSCRIPTIONS}/{subscription_id}").status_code == 403
    assert create(client, document(receiver.url)).status_code == 403
    make_operator(user_a)
    assert client.delete(f"{SUBSCRIPTIONS}/{subscription_id}").status_code == 204

    client.force_login(make_operator(user_b))
    assert client.get(SUBSCRIPTIONS).json() == []
    created = create(client, document(receiver.url))
    assert created.status_code == 201
    subscription = Subscription.objects.get(public_id=created["Location"].rsplit("/", 1)[1])
    assert (subscription.municipality.slug, subscription.owner_user, subscription.owner_token) == ("town-b", user_b, None)


def test_anonymous_callers_have_no_subscriptions(client, basin, receiver):
    for response in (client.get(SUBSCRIPTIONS), create(client, document(receiver.url)),
                     client.get(f"{SUBSCRIPTIONS}/0123456789abcdef01234567")):
        assert (response.status_code, response.json()["error"]) == (401, "Unauthorized")
    assert not Subscription.objects.exists()


def test_fiware_service_scopes_subscriptions(client, basin, token_a, receiver):
    create(client, document(receiver.url), token_a, HTTP_FIWARE_SERVICE="town_b")
    subscription = Subscription.objects.get()
    assert (subscription.municipality.slug, subscription.service.slug) == ("town-a", "town-b")
    assert len(client.get(SUBSCRIPTIONS, **bearer(token_a), HTTP_FIWARE_SERVICE="town_b").json()) == 1
    assert client.get(SUBSCRIPTIONS, **bearer(token_a), HTTP_FIWARE_SERVICE="town_a").json() == []
    unknown = create(client, document(receiver.url), token_a, HTTP_FIWARE_SERVICE="atlantis")
    assert unknown.status_code == 422


def test_a_member_of_several_towns_subscribes_for_the_town_they_act_for(client, basin, user_a, towns, receiver):
    from tenancy.models import Membership
    from tenancy.selectors import ACTIVE_TOWN_SESSION_KEY

    make_operator(user_a)
    Membership.objects.create(user=user_a, municipality=towns[1], role=Membership.Role.OPERATOR)
    client.force_login(user_a)
    session = client.session
    session[ACTIVE_TOWN_SESSION_KEY] = towns[1].pk
    session.save()
    # Fiware-Service picks the stations it watches, not the owner.
    assert create(client, document(receiver.url), HTTP_FIWARE_SERVICE="town_a").status_code == 201
    subscription = Subscription.objects.get()
    assert (subscription.municipality.slug, subscription.service.slug) == ("town-b", "town-a")


def test_a_platform_admin_without_a_town_names_the_owner(client, basin, receiver, django_user_model):
    admin = django_user_model.objects.create_superuser("root", password="pw-root-123456")
    client.force_login(admin)
    assert create(client, document(receiver.url)).status_code == 400
    assert create(client, document(receiver.url), HTTP_FIWARE_SERVICE="town_b").status_code == 201
    assert Subscription.objects.get().municipality.slug == "town-b"


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1/",
        "http://192.168.1.10:8080/notify",
        "http://169.254.169.254/latest/meta-data/",
        "http://localhost/",
        "http://localhost:{port}/notify",
        "http://[::1]:{port}/notify",
        "http://0.0.0.0:{port}/",
        "http://2130706433:{port}/",
        "http://0x7f000001:{port}/",
        "http://127.0.0.2:{port}/",
        "http://127.0.0.1:1/notify",
        "file:///etc/passwd",
        "ftp://127.0.0.1:{port}/",
        "gopher://127.0.0.1:{port}/",
        "http://user:secret@127.0.0.1:{port}/notify",
        "http://127.0.0.1:{port}@example.org/",
        "//127.0.0.1:{port}/",
        "http://127.0.0.1:{port}/\r\nX-Injected: 1",
        "http://127.0.0.1:99999/",
        "http:///nohost",
        "",
    ],
)
def test_notification_urls_outside_the_allow_list_are_refused(client, basin, token_a, receiver, url):
    body = document(url.format(port=receiver.port))
    response = create(client, body, token_a)
    assert response.status_code == 422, response.content
    assert response.json()["error"] == "Unprocessable"
    assert "notification URL refused" in response.json()["description"]
    assert not Subscription.objects.exists()


def test_the_wildcard_does_not_cover_private_addresses(client, basin, token_a, receiver, settings):
    settings.NGSI_NOTIFY_ALLOWED_HOSTS = ["*"]
    response = create(client, document(receiver.url), token_a)
    assert response.status_code == 422 and "non-public" in response.json()["description"]
    settings.NGSI_NOTIFY_ALLOWED_HOSTS = ["*", f"127.0.0.1:{receiver.port}"]
    assert create(client, document(receiver.url), token_a).status_code == 201


def test_http_custom_headers_and_allow_list_on_patch(client, basin, token_a, receiver):
    body = document(None)
    body["notification"] = {"httpCustom": {"url": receiver.url, "headers": {"Authorization": "Bearer theirs"},
                                           "qs": {"source": "mizumori"}}}
    created = create(client, body, token_a)
    assert created.status_code == 201, created.content
    subscription_id = created["Location"].rsplit("/", 1)[1]
    shown = client.get(f"{SUBSCRIPTIONS}/{subscription_id}", **bearer(token_a)).json()["notification"]["httpCustom"]
    assert shown == {"url": receiver.url, "method": "POST", "headers": {"Authorization": "Bearer theirs"},
                     "qs": {"source": "mizumori"}}
    moved = client.patch(f"{SUBSCRIPTIONS}/{subscription_id}",
                         data=json.dumps({"notification": {"http": {"url": "http://10.0.0.1/"}}}),
                         content_type="application/json", **bearer(token_a))
    assert moved.status_code == 422
    assert Subscription.objects.get().url == receiver.url


@pytest.mark.parametrize(
    "change, status",
    [
        ({"subject": None}, 400),
        ({"subject": {"entities": []}}, 400),
        ({"subject": {"entities": [{"type": "WaterObserved"}]}}, 400),
        ({"subject": {"entities": [{"id": "a", "idPattern": "a"}]}}, 400),
        ({"subject": {"entities": [{"idPattern": "(a+)+$"}]}}, 400),
        ({"subject": {"entities": [{"idPattern": ".*"}], "condition": {"expression": {"q": "height>"}}}}, 400),
        ({"subject": {"entities": [{"idPattern": ".*"}], "condition": {"expression": {"mq": "a.b==1"}}}}, 400),
        ({"subject": {"entities": [{"idPattern": ".*"}], "condition": {"expression": {"georel": "near"}}}}, 400),
        ({"subject": {"entities": [{"idPattern": ".*"}], "condition": {"alterationTypes": ["entityExplode"]}}}, 400),
        ({"notification": {"mqtt": {"url": "mqtt://127.0.0.1:1883", "topic": "x"}}}, 422),
        ({"notification": {"http": {"url": "{url}"}, "attrsFormat": "legacy"}}, 422),
        ({"notification": {"http": {"url": "{url}"}, "attrs": ["a"], "exceptAttrs": ["b"]}}, 400),
        ({"notification": {"http": {"url": "{url}"}, "covered": True}}, 400),
        ({"notification": {"httpCustom": {"url": "{url}", "payload": "${id}"}}}, 422),
        ({"notification": {"httpCustom": {"url": "{url}", "method": "DELETE"}}}, 422),
        ({"notification": {"httpCustom": {"url": "{url}", "headers": {"Host": "evil"}}}}, 422),
        ({"notification": {"httpCustom": {"url": "{url}", "headers": {"X": "a\r\nb"}}}}, 400),
        ({"notification": {"http": {"url": "{url}"}, "httpCustom": {"url": "{url}"}}}, 400),
        ({"notification": {"http": {"url": "{url}"}, "maxFailsLimit": 0}}, 400),
        ({"throttling": "5"}, 400),
        ({"throttling": -1}, 400),
        ({"throttling": True}, 400),
        ({"expires": "next week"}, 400),
        ({"status": "failed"}, 400),
        ({"description": "x" * 1025}, 400),
        ({"colour": "blue"}, 400),
    ],
)
def test_malformed_subscriptions_are_refused(client, basin, token_a, receiver, change, status):
    body = json.loads(json.dumps(document(receiver.url, **change)).replace("{url}", receiver.url))
    if body.get("subject") is None:
        body.pop("subject")
    response = create(client, body, token_a)
    assert response.status_code == status, response.content
    assert response.json()["error"] in ("BadRequest", "Unprocessable")
    assert not Subscription.objects.exists()


def test_malformed_subscription_bodies(client, basin, token_a):
    for raw, content_type, status in (("{", "application/json", 400), ("[]", "application/json", 400),
                                      ("<x/>", "text/xml", 415), ("", "application/json", 400)):
        response = client.post(SUBSCRIPTIONS, data=raw, content_type=content_type, **bearer(token_a))
        assert response.status_code == status, raw
    assert not Subscription.objects.exists()


def test_subject_entity_ids_are_validated(client, basin, token_a, receiver):
    body = document(receiver.url, subject={"entities": [{"id": entity_id("A-PUBLIC"), "type": "WaterObserved"}]})
    assert create(client, body, token_a).status_code == 201
    bad = document(receiver.url, subject={"entities": [{"id": "has space"}]})
    assert create(client, bad, token_a).status_code == 400
