"""The request path of a real ASGI server (config.asgi): gateway POSTs reuse pooled PostgreSQL
connections (config.settings DATABASE_POOL) and run their middleware chain in one thread
(config.sync_paths) with the same middleware as every other path.

Django serves every ASGI request in a thread and context of its own, where a persistent connection
is never found again: each request connected anew (a PostgreSQL backend started per request) and
the old connections stayed open until garbage collection.
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


def test_gateway_posts_through_an_asgi_server_share_pooled_connections_and_the_middleware(tmp_path):
    pooled = connection.vendor == "postgresql"
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
            with urllib.request.urlopen(request, timeout=20) as response:
                reply = json.load(response)
                headers = response.headers
            assert reply == {"accepted": len(codes), "duplicates": 0, "rejected": []}
            # Set by middleware (django SecurityMiddleware, public.middleware.CachePolicyMiddleware).
            assert headers["X-Content-Type-Options"] == "nosniff"
            assert headers["Cache-Control"] == "private, no-store"
            if pooled:
                seen |= asgi_backends()
    finally:
        server.terminate()
        server.wait(timeout=10)
    if pooled:
        # The pool's backends (its minimum of 2, a third if a check-out ever overlapped), not one per request.
        assert 1 <= len(seen) <= 3, f"{len(seen)} PostgreSQL backends served {REQUESTS} requests"
