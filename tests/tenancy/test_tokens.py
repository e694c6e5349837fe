"""Gateway tokens: created by command, stored hashed, shown once, revocable."""

import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tenancy.models import IngestToken


def create_token(*args):
    out = io.StringIO()
    call_command("create_ingest_token", *args, stdout=out)
    return out.getvalue().strip().splitlines()


def test_command_prints_the_token_alone_on_its_last_line_and_stores_only_a_digest(towns):
    lines = create_token("town-a", "--label", "river gateway 1")
    secret = lines[-1]
    assert secret.startswith("mzm_") and " " not in secret and len(secret) > 40
    token = IngestToken.objects.get()
    assert token.municipality.slug == "town-a" and token.label == "river gateway 1"
    assert token.digest == IngestToken.digest_of(secret)
    assert not IngestToken.objects.filter(digest=secret).exists()
    assert all(secret not in str(value) for value in IngestToken.objects.values().get().values())


def test_command_refuses_an_unknown_town(db):
    with pytest.raises(CommandError, match="No municipality with slug 'atlantis'"):
        create_token("atlantis")


def test_created_token_writes_and_revoked_token_does_not(client, stations):
    secret = create_token("town-a")[-1]
    body = json.dumps({"observations": [{"station": "A-PUBLIC", "observed_at": "2026-11-21T12:00:00+09:00", "value": 1}]})
    post = lambda: client.post(  # noqa: E731
        "/api/v1/observations", data=body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {secret}"
    )
    assert post().status_code == 200
    assert IngestToken.objects.get().last_used_at is not None
    out = io.StringIO()
    call_command("revoke_ingest_token", secret[:12], stdout=out)
    assert "Revoked" in out.getvalue()
    assert post().status_code == 401
    with pytest.raises(CommandError):
        call_command("revoke_ingest_token", secret[:12], stdout=io.StringIO())


def test_a_gateway_post_reads_its_towns_token_but_not_the_towns_boundary(client, stations):
    """The boundary is a GeoJSON polygon, often hundreds of KB, that the request path never uses."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tenancy.models import Municipality
    from tenancy.selectors import ingest_token_by_secret
    from tenancy.services import ingest_token_create

    ring = [[140 + i / 1000, 35 + (i % 7) / 1000] for i in range(5000)]
    town = Municipality.objects.get(slug="town-a")
    Municipality.objects.filter(pk=town.pk).update(boundary={"type": "Polygon", "coordinates": [ring + ring[:1]]})
    _, secret = ingest_token_create(municipality=town, label="boundary")
    token = ingest_token_by_secret(secret)
    assert "boundary" in token.municipality.get_deferred_fields()
    assert (token.municipality.pk, token.municipality.slug) == (town.pk, "town-a")
    with CaptureQueriesContext(connection) as captured:
        response = client.post(
            "/api/v1/observations",
            json.dumps({"observations": [{"station": "A-PUBLIC", "observed_at": "2026-11-21T12:00:00+09:00", "value": 1.5}]}),
            content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {secret}",
        )
    assert response.json() == {"accepted": 1, "duplicates": 0, "rejected": []}
    assert not any("boundary" in query["sql"] for query in captured.captured_queries)
