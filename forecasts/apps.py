from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ForecastsConfig(AppConfig):
    name = "forecasts"
    verbose_name = _("Water-level forecasts (learned per gauge, backtested)")

    def ready(self):
        from events.registry import register
        from sensors.services import STATION_CHANGED

        from .handlers import station_changes_forecast
        from .services import RAIN_FORECAST_POSTED

        # Forecasts are recomputed in the drain, batched, never inside the ingest request.
        register("forecasts.refresh", kinds=[STATION_CHANGED, RAIN_FORECAST_POSTED], func=station_changes_forecast)
