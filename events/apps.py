from django.apps import AppConfig


class EventsConfig(AppConfig):
    name = "events"
    verbose_name = "change log and outbox"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from . import checks, vacuum  # noqa: F401  (register the system checks)
