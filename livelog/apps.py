from django.apps import AppConfig


class LivelogConfig(AppConfig):
    name = "livelog"
    verbose_name = "Live message log (websocket sequence and replay)"
