from django.apps import AppConfig


class NgsiConfig(AppConfig):
    name = "ngsi"
    verbose_name = "NGSI-v2 interface (FIWARE)"
