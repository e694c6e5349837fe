"""How alert rules are stored on PostgreSQL (alerts migration 0014): the drain moves every evaluated
rule's cursor each batch, and those updates stay on their page (HOT: no new index entries)."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from alerts.models import AlertRule
from alerts.services import _cursors_save
from tests.conftest import make_station, make_town

RULES = 600  # a dozen pages and more


def _updates(table: str) -> tuple[int, int]:
    """This transaction's updates of `table`, and how many of them stayed on their page."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables WHERE relname = %s", [table])
        return cursor.fetchone()


def test_a_drain_batchs_cursor_updates_stay_on_their_page(db):
    if connection.vendor != "postgresql":
        pytest.skip("HOT updates and fillfactor are PostgreSQL's")
    town = make_town("990101", "storage-town", "storage town")
    station = make_station(town, "ST-1")
    then = timezone.now() - timedelta(minutes=10)
    rules = AlertRule.objects.bulk_create(
        AlertRule(station=station, kind=AlertRule.Kind.THRESHOLD, name=f"rule {n}", value=1.0 + n / 1000, level=3,
                  evaluated_until=then)
        for n in range(RULES)
    )
    updated_before, hot_before = _updates(AlertRule._meta.db_table)
    for rule in rules:
        rule.evaluated_until = then + timedelta(minutes=10)
    _cursors_save(rules)
    updated, hot = _updates(AlertRule._meta.db_table)
    assert updated - updated_before == RULES
    assert hot - hot_before == RULES
    assert AlertRule.objects.filter(evaluated_until=then + timedelta(minutes=10)).count() == RULES
