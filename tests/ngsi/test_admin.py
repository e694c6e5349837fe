"""The admin pages for NGSI subscriptions and notify mappings render and validate."""

import pytest
from django.core.exceptions import ValidationError

from ngsi.models import NotifyMapping, Subscription

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_logged_in(client, django_user_model):
    admin = django_user_model.objects.create_superuser("root", password="pw-root-123456")
    client.force_login(admin)
    return client


def test_changelists_and_forms_render(admin_client_logged_in, basin, towns):
    client = admin_client_logged_in
    subscription = Subscription.objects.create(municipality=towns[0], entities=[{"idPattern": ".*"}],
                                               url="http://127.0.0.1:9/notify")
    mapping = NotifyMapping.objects.create(entity_id="x", attribute="waterLevel", station=basin["a-public"])
    for url in ("/admin/ngsi/subscription/", f"/admin/ngsi/subscription/{subscription.pk}/change/",
                "/admin/ngsi/notifymapping/", "/admin/ngsi/notifymapping/add/",
                f"/admin/ngsi/notifymapping/{mapping.pk}/change/"):
        assert client.get(url).status_code == 200, url
    # Subscriptions are created through the API, where the allow-list applies.
    assert client.get("/admin/ngsi/subscription/add/").status_code == 403


def test_mapping_form_refuses_a_catastrophic_pattern(admin_client_logged_in, basin):
    response = admin_client_logged_in.post("/admin/ngsi/notifymapping/add/", {
        "entity_id": "", "entity_id_pattern": "(a+)+$", "entity_type": "", "attribute": "level",
        "station": basin["a-public"].pk, "time_attribute": "", "scale": "1", "offset": "0", "is_active": "on",
        "note": "",
    })
    assert response.status_code == 200
    assert "repetition inside a repetition" in response.content.decode()
    assert not NotifyMapping.objects.exists()


def test_subscription_form_refuses_a_url_outside_the_allow_list(admin_client_logged_in, towns, settings):
    settings.NGSI_NOTIFY_ALLOWED_HOSTS = []
    subscription = Subscription(municipality=towns[0], entities=[{"idPattern": ".*"}], url="http://10.0.0.1/")
    with pytest.raises(ValidationError) as refused:
        subscription.full_clean()
    assert "not listed" in str(refused.value)
