import secrets

from django.db import transaction
from django.utils import timezone

from .models import IngestToken, Membership, Municipality

TOKEN_PREFIX = "mzm_"


@transaction.atomic
def ingest_token_create(*, municipality: Municipality, label: str = "", created_by=None) -> tuple[IngestToken, str]:
    """Create a gateway token; returns the row and the secret, which is never stored or shown again."""
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = IngestToken.objects.create(
        municipality=municipality,
        label=label[:100],
        prefix=secret[:12],
        digest=IngestToken.digest_of(secret),
        created_by=created_by,
    )
    return token, secret


def ingest_token_revoke(*, token: IngestToken) -> IngestToken:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
    return token


def ingest_token_mark_used(*, token: IngestToken) -> None:
    # One UPDATE, and only when the stored value is a minute old, so a busy gateway does not
    # turn every request into a write on the token row.
    now = timezone.now()
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        IngestToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now


def membership_set(*, user, municipality: Municipality, role: str) -> Membership:
    membership, _ = Membership.objects.update_or_create(
        user=user, municipality=municipality, defaults={"role": role}
    )
    return membership
