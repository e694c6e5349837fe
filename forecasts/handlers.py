"""Change-log handlers of the forecasts app (registered in ForecastsConfig.ready)."""

from __future__ import annotations

from sensors.services import STATION_CHANGED, changed_station_ids

from .services import RAIN_FORECAST_POSTED, forecasts_refresh


def station_changes_forecast(events: list[tuple[str, dict]]) -> None:
    """Every gauge whose own readings or model inputs (readings, forecast rain) changed in the batch
    is forecast once."""
    forecasts_refresh(changed_station_ids(events, kinds=(STATION_CHANGED, RAIN_FORECAST_POSTED)))
