from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class NgsiConfig(AppConfig):
    name = "ngsi"
    verbose_name = _("NGSI-v2 interface (FIWARE)")

    def ready(self):
        from events.registry import register
        from sensors.services import STATION_CHANGED

        from orders.services import ORDER_CHANGED

        from .services import READINGS_STORED, order_changes_notify, station_changes_notify

        register("ngsi.notify", kinds=[STATION_CHANGED, READINGS_STORED], func=station_changes_notify)
        register("ngsi.notify_orders", kinds=[ORDER_CHANGED], func=order_changes_notify)

        from tenancy import permissions

        from .models import Subscription

        permissions.register(Subscription, owner="municipality")
