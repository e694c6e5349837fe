"""ASGI processes reuse PostgreSQL connections across requests (config.settings DATABASE_POOL).

Django serves every ASGI request in a thread and context of its own, where a persistent connection
is never found again: each request connected anew (a PostgreSQL backend started per request) and
the old connections stayed open until garbage collection. Only means something on PostgreSQL.
"""

import json
import urllib.request

import psycopg
import pytest
from django.db import connection
from django.utils import timezone

from tenancy.services import ingest_token_create
from tests.conftest import make_station, make_town
from tests.dashboard.test_live_multiprocess import database_url_for_children, free_port, start_server, wait_until_up

pytestmark = pytest.mark.django_db(transaction=True)

REQUESTS = 12


def asgi_backends() -> set[int]:
    with psycopg.connect(database_url_for_children(), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'mizumori-asgi' AND datname = current_database()"
        ).fetchall()
    return {pid for (pid,) in rows}


def test_an_asgi_server_serves_many_requests_from_a_few_pooled_connections(tmp_path):
    if connection.vendor != "postgresql":
        pytest.skip("connection pooling is PostgreSQL's (SQLite opens a file)")
    town = make_town("990001", "town-a", "town a")
    codes = [f"POOL-{n}" for n in range(5)]
    for code in codes:
        make_station(town, code)
    token = ingest_token_create(municipality=town)[1]
    port = free_port()
    server = start_server(port, tmp_path)
    seen: set[int] = set()
    try:
        wait_until_up(port, server, tmp_path)
        for n in range(REQUESTS):
            at = timezone.now().isoformat()
            body = json.dumps({"observations": [{"station": code, "observed_at": at, "value": 1.0 + n} for code in codes]})
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/api/v1/observations", data=body.encode(),
                headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
            )
            reply = json.load(urllib.request.urlopen(request, timeout=20))
            assert reply == {"accepted": len(codes), "duplicates": 0, "rejected": []}
            seen |= asgi_backends()
    finally:
        server.terminate()
        server.wait(timeout=10)
    # The pool's backends (its minimum of 2, a third if a check-out ever overlapped), not one per request.
    assert 1 <= len(seen) <= 3, f"{len(seen)} PostgreSQL backends served {REQUESTS} requests"
