from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PublicConfig(AppConfig):
    name = "public"
    verbose_name = _("Public page (cacheable shell and snapshot)")

    def ready(self):
        from .snapshot import register_builtin_sections

        register_builtin_sections()
