from django.apps import AppConfig


class NgsiConfig(AppConfig):
    name = "ngsi"
    verbose_name = "NGSI-v2 interface (FIWARE)"

    def ready(self):
        from tenancy import permissions

        from .models import Subscription

        permissions.register(Subscription, owner="municipality")
