from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AlertsConfig(AppConfig):
    name = "alerts"
    verbose_name = _("Alerts (rules, lifecycle, notifications, CAP)")

    def ready(self):
        from django.conf import settings

        from events.registry import register
        from sensors.services import STATION_CHANGED

        from .handlers import evaluation_handlers, station_changes_evaluate

        for name, route in evaluation_handlers(settings.ALERT_EVALUATION_SHARDS):
            register(name, kinds=[STATION_CHANGED], func=station_changes_evaluate, route=route)

        from tenancy import permissions

        from .models import Alert, NotificationChannel
        from .selectors import alerts_visible_to

        permissions.register(Alert, owner="station__municipality", visible=alerts_visible_to)
        permissions.register(NotificationChannel, owner="municipality")

        from django.db.models.signals import post_delete, post_save

        from .models import LevelDefinition, LevelScheme
        from .vocabulary import forget_cached_words

        for model in (LevelScheme, LevelDefinition):
            post_save.connect(forget_cached_words, sender=model, dispatch_uid=f"vocabulary-{model.__name__}-save")
            post_delete.connect(forget_cached_words, sender=model, dispatch_uid=f"vocabulary-{model.__name__}-delete")
