"""The town admin's trigger table at /hq/admin/triggers/: admins of the acting town only; gauges the
town may see (a neighbour's shared one included, never its private one); audited."""

import pytest

from orders.models import TriggerRule
from tenancy.models import AuditEvent

URL = "/hq/admin/triggers/"


@pytest.mark.django_db
def test_a_town_admin_adds_a_rule_on_a_neighbours_shared_gauge_and_removes_it(client, members, stations, districts):
    client.force_login(members["b-admin"])
    page = client.get(URL).content.decode()
    assert "A-SHARED" in page and "A-PRIVATE" not in page and "避難判断水位" in page
    response = client.post(URL, {"station": "A-SHARED", "threshold": "evacuation_decision", "level": "3",
                                 "districts": ["B-1"], "forecast_minutes": "60"})
    assert response.status_code == 302
    rule = TriggerRule.objects.get()
    assert (rule.municipality.slug, rule.station.code, rule.level, rule.forecast_minutes) == ("town-b", "A-SHARED", 3, 60)
    assert [d.code for d in rule.districts.all()] == ["B-1"]
    assert AuditEvent.objects.filter(action="trigger_rule_changed", actor=members["b-admin"]).count() == 1
    client.post(URL, {"action": "remove", "rule": str(rule.pk)})
    assert not TriggerRule.objects.exists()
    assert AuditEvent.objects.filter(action="trigger_rule_changed").count() == 2


@pytest.mark.django_db
@pytest.mark.parametrize(
    "form",
    [
        {"station": "A-PRIVATE", "threshold": "evacuation_decision", "level": "3", "districts": ["B-1"]},
        {"station": "A-SHARED", "threshold": "nope", "level": "3", "districts": ["B-1"]},
        {"station": "A-SHARED", "threshold": "evacuation_decision", "level": "2", "districts": ["B-1"]},
        {"station": "A-SHARED", "threshold": "evacuation_decision", "level": "3", "districts": ["A-1"]},
        {"station": "A-SHARED", "threshold": "evacuation_decision", "level": "3", "districts": []},
        {"station": "A-SHARED", "threshold": "evacuation_decision", "level": "3", "districts": ["B-1"], "forecast_minutes": "1e9"},
        {"station": "<script>\x00", "threshold": "evacuation_decision", "level": "3", "districts": ["B-1"]},
    ],
)
def test_bad_rules_are_refused_with_a_reason(client, members, stations, districts, form):
    client.force_login(members["b-admin"])
    response = client.post(URL, form, follow=True)
    assert response.status_code == 200
    assert not TriggerRule.objects.exists()
    assert "mz-message-error" in response.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize("principal", ["b-operator", "b-viewer"])
def test_only_admins_edit_the_trigger_table(client, members, stations, districts, principal):
    client.force_login(members[principal])
    assert client.get(URL).status_code == 403
    client.post(URL, {"station": "B-PUBLIC", "threshold": "evacuation_decision", "level": "3", "districts": ["B-1"]})
    assert not TriggerRule.objects.exists()
