import secrets
from collections import Counter
from datetime import date

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from .models import ApiUsage, AuditEvent, IngestToken, Membership, Municipality
from .selectors import ACTIVE_TOWN_SESSION_KEY

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
    audit_record(
        action=AuditEvent.Action.TOKEN_CREATED, actor=created_by, municipality=municipality,
        target=f"{token.prefix}…", detail={"label": token.label},
    )
    return token, secret


def ingest_token_revoke(*, token: IngestToken, actor=None) -> IngestToken:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        audit_record(
            action=AuditEvent.Action.TOKEN_REVOKED, actor=actor, municipality=token.municipality,
            target=f"{token.prefix}…", detail={"label": token.label},
        )
    return token


def ingest_token_mark_used(*, token: IngestToken) -> None:
    # One UPDATE, and only when the stored value is a minute old, so a busy gateway does not
    # turn every request into a write on the token row.
    now = timezone.now()
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        IngestToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now


def membership_set(*, user, municipality: Municipality, role: str, actor=None) -> Membership:
    membership, _ = Membership.objects.update_or_create(
        user=user, municipality=municipality, defaults={"role": role}
    )
    audit_record(
        action=AuditEvent.Action.MEMBERSHIP_CHANGED, actor=actor, municipality=municipality,
        target=user.get_username(), detail={"role": role},
    )
    return membership


def audit_record(
    *, action: str, actor=None, municipality: Municipality | int | None = None, target: str = "",
    detail: dict | None = None, request=None, actor_name: str = "",
) -> AuditEvent:
    """Write one audit row. `detail` must hold no secrets (tokens, passwords): it is shown to admins."""
    municipality_id = municipality.pk if isinstance(municipality, Municipality) else municipality
    actor = actor if getattr(actor, "is_authenticated", False) else None
    return AuditEvent.objects.create(
        action=action,
        actor=actor,
        actor_name=(actor.get_username() if actor else actor_name)[:150],
        municipality_id=municipality_id,
        target=str(target)[:200],
        detail=detail or {},
        ip_address=request.META.get("REMOTE_ADDR") if request is not None else None,
    )


def town_switch(*, request, municipality_id: int) -> Membership:
    """Make one of the user's towns the one they act for; raises Membership.DoesNotExist otherwise."""
    membership = Membership.objects.select_related("municipality").get(
        user_id=request.user.pk, municipality_id=municipality_id
    )
    request.session[ACTIVE_TOWN_SESSION_KEY] = membership.municipality_id
    audit_record(
        action=AuditEvent.Action.TOWN_SWITCHED, actor=request.user, municipality=membership.municipality,
        request=request,
    )
    return membership


@transaction.atomic
def api_usage_add(*, counts: dict[tuple[int, date], int]) -> int:
    """Add counted API calls {(municipality id, local day): calls} to the monthly ApiUsage rows, in
    one transaction. Calls of towns deleted since they were counted are dropped. Returns calls added."""
    per_month: Counter = Counter()
    for (municipality_id, day), calls in counts.items():
        per_month[(municipality_id, day.replace(day=1))] += calls
    existing = set(Municipality.objects.filter(pk__in={town for town, _ in per_month}).values_list("pk", flat=True))
    added = 0
    for (municipality_id, month), calls in sorted(per_month.items()):
        if municipality_id not in existing or calls <= 0:
            continue
        updated = ApiUsage.objects.filter(municipality_id=municipality_id, month=month).update(calls=F("calls") + calls)
        if not updated:
            try:
                with transaction.atomic():
                    ApiUsage.objects.create(municipality_id=municipality_id, month=month, calls=calls)
            except IntegrityError:
                # Another flush created this month's row first.
                ApiUsage.objects.filter(municipality_id=municipality_id, month=month).update(calls=F("calls") + calls)
        added += calls
    return added


def membership_remove(*, membership: Membership, actor=None) -> None:
    audit_record(
        action=AuditEvent.Action.MEMBERSHIP_CHANGED, actor=actor, municipality=membership.municipality,
        target=membership.user.get_username(), detail={"role": None},
    )
    membership.delete()


def town_onboard(
    *, code: str, slug: str, name_ja: str, name_en: str, admin_username: str, admin_password: str, actor=None
) -> tuple[Municipality, object]:
    """A new town and its first admin in one step (the platform operator's onboarding form): the
    town, a new user and the admin membership, or nothing. Raises django ValidationError naming
    each wrong field; `detail` of the audit row never holds the password."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.password_validation import validate_password

    town = Municipality(code=code.strip(), slug=slug.strip(), name_ja=name_ja.strip(), name_en=name_en.strip())
    errors: dict[str, list[str]] = {}
    try:
        town.full_clean()
    except ValidationError as exc:
        errors.update(exc.message_dict)
    User = get_user_model()
    username = admin_username.strip()
    user = User(username=username)
    try:
        user.full_clean(exclude=["password"])
    except ValidationError as exc:
        errors.update({f"admin_{field}": messages for field, messages in exc.message_dict.items()})
    try:
        validate_password(admin_password, user)
    except ValidationError as exc:
        errors["admin_password"] = list(exc.messages)
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        town.save()
        user.set_password(admin_password)
        user.save()
        membership_set(user=user, municipality=town, role=Membership.Role.ADMIN, actor=actor)
        audit_record(
            action=AuditEvent.Action.TOWN_ONBOARDED, actor=actor, municipality=town, target=town.slug,
            detail={"code": town.code, "admin": username},
        )
    return town, user
