"""Monthly usage per town: stations, readings received, API calls (alerts join when that app counts)."""

import csv
import io
from datetime import date, timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from sensors.services import observation_ingest
from tenancy.api_usage import api_usage_counter, api_usage_flush
from tenancy.usage import month_bounds, parse_month, usage_report


def test_report_counts_per_town(stations, towns, token_a, client):
    api_usage_counter().discard_all()
    now = timezone.now()
    observation_ingest(
        municipality=None,
        items=[{"station": "A-PUBLIC", "observed_at": now - timedelta(minutes=m), "value": 1.0} for m in range(5)]
        + [{"station": "B-PRIVATE", "observed_at": now, "value": 1.0}],
        source="http",
    )
    client.get("/api/v1/stations", HTTP_AUTHORIZATION=f"Bearer {token_a}")
    api_usage_flush()
    rows = {row.municipality.slug: row.counts for row in usage_report(timezone.localdate())}
    counted = ("stations", "readings", "api_calls")
    assert {name: rows["town-a"][name] for name in counted} == {"stations": 4, "readings": 5, "api_calls": 1}
    assert (rows["town-b"]["readings"], rows["town-b"]["api_calls"]) == (1, 0)


def test_a_previous_month_has_no_readings(stations):
    observation_ingest(
        municipality=None, items=[{"station": "A-PUBLIC", "observed_at": timezone.now(), "value": 1.0}], source="http"
    )
    last_month = (timezone.localdate().replace(day=1) - timedelta(days=1)).replace(day=1)
    assert all(row.counts["readings"] == 0 for row in usage_report(last_month))


def test_command_prints_csv(stations):
    out = io.StringIO()
    call_command("usage_report", "--month", timezone.localdate().strftime("%Y-%m"), stdout=out)
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert rows[0][:3] == ["month", "municipality", "code"]
    assert [row[1] for row in rows[1:]] == ["town-a", "town-b"]


@pytest.mark.parametrize("bad", ["2026-13", "26-11", "november", "2026-11-01", "x" * 500])
def test_bad_month_is_a_clear_error(db, bad):
    with pytest.raises(CommandError, match="month must look like 2026-11"):
        call_command("usage_report", "--month", bad, stdout=io.StringIO())


def test_month_bounds_are_in_the_site_time_zone():
    start, end = month_bounds(date(2026, 12, 15))
    assert (start.isoformat(), end.isoformat()) == ("2026-12-01T00:00:00+09:00", "2027-01-01T00:00:00+09:00")
    assert parse_month("2026-02") == date(2026, 2, 1)


def test_alerts_are_counted_per_owner_town(stations):
    from alerts.models import Alert, AlertRule

    now = timezone.now()
    rule = AlertRule.objects.create(station=stations["b-public"], kind="threshold", name="usage")
    Alert.objects.create(station=stations["b-public"], rule=rule, level=3, peak_level=3, opened_at=now, updated_at=now)
    rows = {row.municipality.slug: row.counts["alerts"] for row in usage_report(timezone.localdate())}
    assert rows == {"town-a": 0, "town-b": 1}
