from django.apps import AppConfig


class AlertsConfig(AppConfig):
    name = "alerts"
    verbose_name = "Alerts (rules, lifecycle, notifications, CAP)"

    def ready(self):
        from tenancy import permissions

        from .models import Alert, NotificationChannel
        from .selectors import alerts_visible_to

        permissions.register(Alert, owner="station__municipality", visible=alerts_visible_to)
        permissions.register(NotificationChannel, owner="municipality")
