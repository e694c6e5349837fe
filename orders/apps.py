from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class OrdersConfig(AppConfig):
    name = "orders"
    verbose_name = _("Evacuation orders (districts, trigger rules, recommendations, orders)")

    def ready(self):
        from geo.importers import POLYGONS
        from geo.services import geo_layer_register
        from tenancy import permissions

        from .models import District, Order, OrderDraft, OrderPolicy, Recommendation, TriggerRule
        from .selectors import own_town_only
        from .services import districts_import

        # Districts are public geography (an order names them to everyone); only their town runs them.
        permissions.register(District, owner="municipality")
        # Orders are public (residents and neighbours); only their town issues, changes and lifts them.
        permissions.register(Order, owner="municipality")
        permissions.register(TriggerRule, owner="municipality", visible=own_town_only)
        permissions.register(Recommendation, owner="municipality", visible=own_town_only)
        # Drafts waiting for a second operator and the policy asking for one: the town's own business.
        permissions.register(OrderDraft, owner="municipality", visible=own_town_only)
        permissions.register(OrderPolicy, owner="municipality", visible=own_town_only)
        from events.registry import register
        from sensors.services import STATION_CHANGED

        from jma.services import JMA_CHANGED

        from .handlers import order_steps_notify
        from .services import ORDER_CHANGED
        from .triggers import jma_changes_recommend, station_changes_recommend

        register("orders.recommend", kinds=[STATION_CHANGED], func=station_changes_recommend)
        register("orders.recommend_jma", kinds=[JMA_CHANGED], func=jma_changes_recommend)
        register("orders.notify", kinds=[ORDER_CHANGED], func=order_steps_notify)
        geo_layer_register("districts", geometry_types=POLYGONS, writer=districts_import, coded=True)
