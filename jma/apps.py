from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class JmaConfig(AppConfig):
    name = "jma"
    verbose_name = _("JMA warnings (気象庁 防災情報XML)")
