from django.urls import path

from . import api

urlpatterns = [
    path("stations/<str:code>/forecast", api.StationForecastAPI.as_view(), name="api-station-forecast"),
    path("rain-forecasts", api.RainForecastIngestAPI.as_view(), name="api-rain-forecasts"),
]
