from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class DashboardConfig(AppConfig):
    name = "dashboard"
    verbose_name = _("Dashboard (public and HQ pages)")

    def ready(self):
        from events.registry import register
        from sensors.services import STATION_CHANGED, VISIBILITY_CHANGED

        # Connects the receivers that put shelter changes into the change log.
        from . import signals  # noqa: F401
        from releases.services import RELEASE_CHANGED

        from .live import ALERT_CHANGED, LIVE_HANDLER, live_events_publish
        from .live_geo import SHELTER_CHANGED
        from .live_orders import ORDER_KINDS

        register(
            LIVE_HANDLER,
            kinds=[STATION_CHANGED, VISIBILITY_CHANGED, ALERT_CHANGED, SHELTER_CHANGED, RELEASE_CHANGED, *ORDER_KINDS],
            func=live_events_publish,
            # Live messages carry current state: after an outage, keep retrying rather than give up,
            # often (a retry is one failed Redis call), and in order, so numbers follow the changes.
            max_attempts=10_000,
            retry_max_seconds=5,
            in_order=True,
        )
