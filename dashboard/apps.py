from django.apps import AppConfig


class DashboardConfig(AppConfig):
    name = "dashboard"
    verbose_name = "Dashboard (public and HQ pages)"

    def ready(self):
        # Connects the receivers that put shelter changes on the live map.
        from . import signals  # noqa: F401
