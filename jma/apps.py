from django.apps import AppConfig


class JmaConfig(AppConfig):
    name = "jma"
    verbose_name = "JMA warnings (気象庁 防災情報XML)"
