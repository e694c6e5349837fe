from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class LivelogConfig(AppConfig):
    name = "livelog"
    verbose_name = _("Live message log (websocket sequence and replay)")
