"""Login throttling, CSP, audit trail, acting town, API usage, production settings."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from tenancy.models import ApiUsage, AuditEvent, Membership
from tenancy.services import ingest_token_create, ingest_token_revoke

ROOT = Path(__file__).resolve().parents[2]


def login(client, username, password):
    return client.post("/accounts/login/", {"username": username, "password": password})


def test_repeated_failed_logins_lock_the_account_out(client, user_a):
    for _ in range(4):
        assert login(client, "a-viewer", "wrong").status_code == 200
    assert login(client, "a-viewer", "wrong").status_code == 429
    # Even the right password is refused while locked out.
    response = login(client, "a-viewer", "pw-a-viewer-123")
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session


def test_logins_and_failures_are_audited_without_passwords(client, user_a):
    login(client, "a-viewer", "not-the-password")
    login(client, "a-viewer", "pw-a-viewer-123")
    failed = AuditEvent.objects.get(action=AuditEvent.Action.LOGIN_FAILED)
    assert failed.actor_name == "a-viewer"
    assert "not-the-password" not in str(failed.detail)
    success = AuditEvent.objects.get(action=AuditEvent.Action.LOGIN)
    assert success.actor == user_a and success.municipality == user_a.memberships.get().municipality


def test_token_creation_and_revocation_are_audited_without_the_secret(towns):
    token, secret = ingest_token_create(municipality=towns[0], label="gw")
    ingest_token_revoke(token=token)
    events = list(AuditEvent.objects.order_by("at").values_list("action", "target", "detail"))
    assert [e[0] for e in events] == [AuditEvent.Action.TOKEN_CREATED, AuditEvent.Action.TOKEN_REVOKED]
    assert all(secret not in str(event) for event in events)


def test_pages_carry_a_csp_with_a_nonce_and_no_unsafe_inline_scripts(client, stations, user_a):
    # The public shell has no inline script at all (tests/public); the HQ map's is folium's.
    client.force_login(user_a)
    response = client.get("/hq/")
    policy = response["Content-Security-Policy"]
    script_src = re.search(r"script-src ([^;]+)", policy).group(1)
    assert "'unsafe-inline'" not in script_src
    nonce = re.search(r"'nonce-([^']+)'", script_src).group(1)
    html = response.content.decode()
    # JSON data blocks (the page's snapshot and vocabulary) are never executed: CSP does not apply.
    inline_scripts = [
        attrs for attrs in re.findall(r"<script(?![^>]*\bsrc=)([^>]*)>", html) if 'type="application/json"' not in attrs
    ]
    assert inline_scripts, "the folium map script is inline"
    assert all(f'nonce="{nonce}"' in attrs for attrs in inline_scripts)
    assert "frame-ancestors 'none'" in policy


def test_a_member_of_two_towns_acts_for_one_at_a_time(client, stations, towns, user_a):
    Membership.objects.create(user=user_a, municipality=towns[1], role=Membership.Role.OPERATOR)
    client.force_login(user_a)

    def visible():
        return sorted(f["properties"]["code"] for f in client.get("/api/v1/stations").json()["features"])

    assert "A-PRIVATE" in visible() and "B-PRIVATE" not in visible()
    response = client.post("/hq/town/", {"municipality": towns[1].pk, "next": "/hq/"})
    assert response.status_code == 302 and response["Location"] == "/hq/"
    assert "B-PRIVATE" in visible() and "A-PRIVATE" not in visible()
    page = client.get("/hq/").content.decode()
    assert "Town B" in page and "mz-town-switch" in page
    assert AuditEvent.objects.filter(action=AuditEvent.Action.TOWN_SWITCHED, municipality=towns[1]).exists()


def test_switching_to_a_town_you_do_not_belong_to_is_refused(client, stations, towns, user_a):
    client.force_login(user_a)
    assert client.post("/hq/town/", {"municipality": towns[1].pk}).status_code == 400
    assert client.post("/hq/town/", {"municipality": "x"}).status_code == 400
    assert client.post("/hq/town/", {"municipality": towns[0].pk, "next": "https://evil.example/"})["Location"] == "/hq/"


def test_api_calls_are_counted_per_town_and_month(client, stations, token_a, user_b):
    from tenancy.api_usage import api_usage_counter, api_usage_flush

    api_usage_counter().discard_all()
    for _ in range(3):
        client.get("/api/v1/stations", HTTP_AUTHORIZATION=f"Bearer {token_a}")
    client.force_login(user_b)
    client.get("/api/v1/stations")
    client.get("/")  # pages are not API calls
    api_usage_flush()
    month = timezone.localdate().replace(day=1)
    assert dict(ApiUsage.objects.filter(month=month).values_list("municipality__slug", "calls")) == {
        "town-a": 3, "town-b": 1,
    }


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")},
        "DEBUG": "0",
        "HTTPS": "1",
        "SECRET_KEY": "x9!" + "production-secret-key-that-is-long-and-random-" * 2,
        "ALLOWED_HOSTS": "mizumori.example.jp",
        "SQLITE_PATH": str(tmp_path / "deploy.sqlite3"),
        "STATIC_ROOT": str(tmp_path / "static"),
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.django_db
def test_superuser_without_membership_is_platform_wide(client, stations):
    admin = get_user_model().objects.create_superuser("root", password="pw-root-12345")
    client.force_login(admin)
    codes = {f["properties"]["code"] for f in client.get("/api/v1/stations").json()["features"]}
    assert {"A-PRIVATE", "B-PRIVATE"} <= codes
