from django.apps import AppConfig


class ReleasesConfig(AppConfig):
    name = "releases"
    verbose_name = "Dam release notices (放流通知)"

    def ready(self):
        from tenancy import permissions

        from .models import DamRelease

        permissions.register(DamRelease, owner="municipality")
