"""API calls are counted per town off the request path (Redis with REDIS_URL, else process memory)
and reach the usage table only when flushed."""

import csv
import io
import threading
from datetime import date, timedelta

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tenancy import api_usage
from tenancy.api_usage import MemoryCounter, RedisCounter, api_usage_counter, api_usage_flush
from tenancy.models import ApiUsage
from tenancy.usage import usage_csv, usage_report


@pytest.fixture(autouse=True)
def no_counts_from_earlier_tests():
    api_usage_counter().discard_all()
    yield
    api_usage_counter().discard_all()


def this_month():
    return timezone.localdate().replace(day=1)


def calls_per_town(month=None):
    return dict(ApiUsage.objects.filter(month=month or this_month()).values_list("municipality__slug", "calls"))


def post_reading(client, token, minutes_ago=1):
    observed_at = (timezone.now() - timedelta(minutes=minutes_ago)).isoformat()
    return client.post(
        "/api/v1/observations",
        {"observations": [{"station": "A-PUBLIC", "observed_at": observed_at, "value": 1.0}]},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )


def test_gateway_and_member_calls_count_against_their_towns_after_a_flush(client, stations, token_a, user_b):
    for minutes_ago in range(4):
        assert post_reading(client, token_a, minutes_ago + 1).status_code == 200
    client.get("/api/v1/stations", HTTP_AUTHORIZATION=f"Bearer {token_a}")
    client.force_login(user_b)
    for _ in range(3):
        client.get("/api/v1/stations")
    client.get("/api/v1/stations/B-PRIVATE/observations")
    client.get("/")  # pages are not API calls
    client.logout()
    client.get("/api/v1/stations")  # anonymous calls belong to no town
    assert ApiUsage.objects.count() == 0  # nothing written per call
    assert api_usage_flush() == 9
    assert calls_per_town() == {"town-a": 5, "town-b": 4}


def test_a_call_writes_nothing_to_the_usage_table(client, stations, token_a):
    table = ApiUsage._meta.db_table
    with CaptureQueriesContext(connection) as captured:
        assert post_reading(client, token_a).status_code == 200
        client.get("/api/v1/stations", HTTP_AUTHORIZATION=f"Bearer {token_a}")
    assert not [q["sql"] for q in captured if table in q["sql"]]


def test_refused_calls_with_a_bad_token_count_for_nobody(client, stations, token_a):
    post_reading(client, token_a + "x")
    client.get("/api/v1/stations", HTTP_AUTHORIZATION="Bearer nope")
    assert api_usage_flush() == 0


def test_two_flushes_do_not_count_twice(client, stations, token_a, token_b):
    for _ in range(3):
        client.get("/api/v1/stations", HTTP_AUTHORIZATION=f"Bearer {token_a}")
    assert api_usage_flush() == 3
    assert api_usage_flush() == 0
    assert calls_per_town() == {"town-a": 3}
    client.get("/api/v1/stations", HTTP_AUTHORIZATION=f"Bearer {token_a}")
    client.get("/api/v1/stations", HTTP_AUTHORIZATION=f"Bearer {token_b}")
    assert api_usage_flush() == 2
    assert api_usage_flush() == 0
    assert calls_per_town() == {"town-a": 4, "town-b": 1}


def test_the_usage_report_and_its_csv_show_flushed_calls(client, stations, token_a, user_b):
    for _ in range(2):
        client.get("/api/v1/stations", HTTP_AUTHORIZATION=f"Bearer {token_a}")
    client.force_login(user_b)
    client.get("/api/v1/stations")
    api_usage_flush()
    rows = {row.municipality.slug: row.counts["api_calls"] for row in usage_report(timezone.localdate())}
    assert rows == {"town-a": 2, "town-b": 1}
    out = io.StringIO()
    usage_csv(usage_report(timezone.localdate()), out)
    table = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert {row["municipality"]: row["api_calls"] for row in table} == {"town-a": "2", "town-b": "1"}


def test_calls_land_in_the_month_of_the_day_they_were_made(towns):
    counter = api_usage_counter()
    first = this_month()
    last_day_before = first - timedelta(days=1)
    counter.count(towns[0].pk, last_day_before)
    counter.count(towns[0].pk, first)
    counter.count(towns[0].pk, first + timedelta(days=1))
    assert api_usage_flush() == 3
    assert calls_per_town(last_day_before.replace(day=1)) == {"town-a": 1}
    assert calls_per_town(first) == {"town-a": 2}


def test_calls_of_a_town_deleted_before_the_flush_are_dropped(towns):
    api_usage_counter().count(towns[1].pk, timezone.localdate())
    api_usage_counter().count(towns[0].pk, timezone.localdate())
    towns[1].delete()
    assert api_usage_flush() == 1
    assert calls_per_town() == {"town-a": 1}


def test_a_failed_database_write_keeps_the_counts_for_a_later_flush(towns, monkeypatch):
    counter = api_usage_counter()
    for _ in range(3):
        counter.count(towns[0].pk, timezone.localdate())

    def database_down(**kwargs):
        raise RuntimeError("database down")

    monkeypatch.setattr("tenancy.services.api_usage_add", database_down)
    with pytest.raises(RuntimeError):
        api_usage_flush()
    monkeypatch.undo()
    counter.count(towns[0].pk, timezone.localdate())
    if isinstance(counter, RedisCounter):
        # Still claimed by the failed flush: taken over once that claim counts as abandoned.
        assert api_usage_flush() == 1
        monkeypatch.setattr(api_usage, "CLAIM_ABANDONED_AFTER", -1)
        assert api_usage_flush() == 3
    else:
        assert api_usage_flush() == 4
    assert api_usage_flush() == 0
    assert calls_per_town() == {"town-a": 4}


def test_concurrent_counting_and_flushing_loses_and_repeats_nothing(towns):
    counter = api_usage_counter()
    today = timezone.localdate()

    def count(n):
        for _ in range(n):
            counter.count(towns[0].pk, today)

    threads = [threading.Thread(target=count, args=(500,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    flushed = 0
    while any(thread.is_alive() for thread in threads):
        flushed += api_usage_flush()
    for thread in threads:
        thread.join(timeout=60)
    flushed += api_usage_flush()
    assert flushed == 2000
    assert calls_per_town() == {"town-a": 2000}


@pytest.mark.skipif(not settings.REDIS_URL, reason="counts are shared between processes only through Redis")
def test_counts_from_one_process_are_flushed_by_another(towns):
    elsewhere = RedisCounter(settings.REDIS_URL, settings.CACHE_PREFIX)
    for _ in range(5):
        elsewhere.count(towns[1].pk, timezone.localdate())
    out = io.StringIO()
    call_command("flush_api_usage", stdout=out)
    assert "5 API calls written" in out.getvalue()
    assert calls_per_town() == {"town-b": 5}


@pytest.mark.skipif(bool(settings.REDIS_URL), reason="the embedded default counts in process memory")
def test_without_redis_the_command_says_the_server_flushes_itself(towns):
    assert isinstance(api_usage_counter(), MemoryCounter)
    out = io.StringIO()
    call_command("flush_api_usage", stdout=out)
    assert "flushes them itself" in out.getvalue()


def test_memory_counter_gives_back_what_a_failed_flush_claimed():
    counter = MemoryCounter()
    counter.count(1, date(2026, 11, 30))
    counts, claim = counter.claim()
    assert counts == {(1, date(2026, 11, 30)): 1}
    counter.count(1, date(2026, 11, 30))
    counter.give_back(claim)
    assert counter.claim()[0] == {(1, date(2026, 11, 30)): 2}
    assert counter.claim()[0] == {}
