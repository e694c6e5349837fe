from django.urls import path

from . import api

urlpatterns = [
    path("observations", api.ObservationIngestAPI.as_view(), name="api-observations-ingest"),
    path("stations", api.StationListAPI.as_view(), name="api-stations"),
    path("stations/<str:code>/tide", api.StationTideAPI.as_view(), name="api-station-tide"),
    path("stations/<str:code>/observations", api.StationObservationsAPI.as_view(), name="api-station-observations"),
]
