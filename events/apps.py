from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class EventsConfig(AppConfig):
    name = "events"
    verbose_name = _("change log and outbox")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from . import checks, vacuum  # noqa: F401  (register the system checks)
