from django.urls import path

from . import api

urlpatterns = [
    path("alerts", api.AlertListAPI.as_view(), name="api-alerts"),
    path("alerts/<int:alert_id>", api.AlertDetailAPI.as_view(), name="api-alert-detail"),
    path("alerts/<int:alert_id>/acknowledge", api.AlertAcknowledgeAPI.as_view(), name="api-alert-acknowledge"),
    path("alerts/<int:alert_id>/resolve", api.AlertResolveAPI.as_view(), name="api-alert-resolve"),
    path("alerts/<int:alert_id>/notes", api.AlertNoteAPI.as_view(), name="api-alert-note"),
    path("alerts/<int:alert_id>/cap", api.AlertCapAPI.as_view(), name="api-alert-cap"),
]
