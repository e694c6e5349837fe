"""The admin pages platform operators use for rules, channels and the outbox."""

import pytest

from alerts.models import Alert, AlertRule, NotificationChannel
from tests.conftest import make_station

from .conftest import make_event


@pytest.mark.parametrize("model", ["levelscheme", "alertrule", "alert", "notificationchannel", "delivery"])
def test_admin_lists_load(admin_client, model, towns):
    make_event(make_station(towns[0], "ADM-1"))
    NotificationChannel.objects.create(municipality=towns[0], kind="email", target="hq@town-a.example")
    assert admin_client.get(f"/admin/alerts/{model}/").status_code == 200


def test_alert_change_page_shows_its_trail_and_alerts_are_not_made_by_hand(admin_client, towns):
    event = make_event(make_station(towns[0], "ADM-2"))
    response = admin_client.get(f"/admin/alerts/alert/{event.alert_id}/change/")
    assert response.status_code == 200 and "opened" in response.content.decode()
    assert admin_client.get("/admin/alerts/alert/add/").status_code == 403


def test_operator_rule_is_validated_in_the_admin(admin_client, towns):
    station = make_station(towns[0], "ADM-3")
    response = admin_client.post(
        "/admin/alerts/alertrule/add/",
        {"station": station.pk, "kind": "rate_of_rise", "name": "Fast rise", "is_enabled": "on",
         "direction": "rising", "level": 3, "min_duration": "00:00:00", "min_readings": 1, "hysteresis": 0,
         "stale_factor": 3},
    )
    assert response.status_code == 200 and "rate in m/h" in response.content.decode()
    assert not AlertRule.objects.filter(name="Fast rise").exists()
    assert Alert.objects.count() == 0


@pytest.mark.parametrize("language, names, not_names", [
    ("ja", ["アラート(ルール・対応・通知・CAP)", "通知先", "避難所", "観測所", "発令の方針", "ゲートウェイトークン"],
     ["Notification channels", "Order policys", "Ingest tokens"]),
    ("en", ["Alerts (rules, lifecycle, notifications, CAP)", "Notification channels", "Shelters", "Order policies",
            "Gateway tokens"], ["通知先", "避難所"]),
])
def test_the_admin_index_names_apps_and_models_in_the_readers_language(admin_client, language, names, not_names):
    page = admin_client.get("/admin/", HTTP_ACCEPT_LANGUAGE=language).content.decode()
    for name in names:
        assert name in page, name
    for name in not_names:
        assert name not in page, name
