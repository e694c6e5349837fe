from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from .models import AuditEvent
from .services import audit_record


def _town_of(user):
    membership = user.memberships.order_by("municipality__code").first() if user else None
    return membership.municipality_id if membership else None


@receiver(user_logged_in)
def record_login(sender, request, user, **kwargs):
    audit_record(action=AuditEvent.Action.LOGIN, actor=user, municipality=_town_of(user), request=request)


@receiver(user_logged_out)
def record_logout(sender, request, user, **kwargs):
    if user is not None:
        audit_record(action=AuditEvent.Action.LOGOUT, actor=user, municipality=_town_of(user), request=request)


@receiver(user_login_failed)
def record_failed_login(sender, credentials, request=None, **kwargs):
    # Django already masks the password in `credentials`; only the username is kept.
    audit_record(
        action=AuditEvent.Action.LOGIN_FAILED,
        actor_name=str(credentials.get("username", ""))[:150],
        request=request,
    )
