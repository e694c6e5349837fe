from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ReleasesConfig(AppConfig):
    name = "releases"
    verbose_name = _("Dam release notices (放流通知)")

    def ready(self):
        from events.registry import register
        from tenancy import permissions

        from .handlers import release_transitions_notify
        from .models import DamRelease
        from .services import RELEASE_CHANGED

        permissions.register(DamRelease, owner="municipality")
        register("releases.notify", kinds=[RELEASE_CHANGED], func=release_transitions_notify)
