from django.apps import AppConfig


class OrdersConfig(AppConfig):
    name = "orders"
    verbose_name = "Evacuation orders (districts, trigger rules, recommendations, orders)"

    def ready(self):
        from geo.importers import POLYGONS
        from geo.services import geo_layer_register
        from tenancy import permissions

        from .models import District, Order, OrderEvent, Recommendation, TriggerRule
        from .selectors import orders_visible_to, own_town_only
        from .services import districts_import

        # Districts are public geography (an order names them to everyone); only their town runs them.
        permissions.register(District, owner="municipality")
        permissions.register(Order, owner="municipality", visible=orders_visible_to)
        permissions.register(OrderEvent, owner="order__municipality", visible=lambda qs, viewer: qs.filter(
            order__in=orders_visible_to(Order.objects.all(), viewer)
        ))
        permissions.register(TriggerRule, owner="municipality", visible=own_town_only)
        permissions.register(Recommendation, owner="municipality", visible=own_town_only)
        from events.registry import register
        from sensors.services import STATION_CHANGED

        from .triggers import station_changes_recommend

        register("orders.recommend", kinds=[STATION_CHANGED], func=station_changes_recommend)
        geo_layer_register("districts", geometry_types=POLYGONS, writer=districts_import, coded=True)
