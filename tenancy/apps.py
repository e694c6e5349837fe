from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class TenancyConfig(AppConfig):
    name = "tenancy"
    verbose_name = _("Tenancy (municipalities, members, tokens)")

    def ready(self):
        from . import permissions, signals  # noqa: F401  (signals connects the audit receivers)
        from .models import AuditEvent, IngestToken, Membership

        permissions.register(IngestToken, owner="municipality")
        permissions.register(Membership, owner="municipality")
        permissions.register(AuditEvent, owner="municipality")
