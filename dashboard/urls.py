from django.urls import include, path

from . import alert_views, health, platform_admin, views
from .js_catalog import LanguageCatalog

urlpatterns = [
    path("hq/", views.hq_map, name="dashboard-hq"),
    path("health/", health.health, name="health"),
    path("hq/town/", views.switch_town, name="dashboard-switch-town"),
    path("hq/admin/", include("dashboard.town_admin_urls")),
    path("hq/platform/towns/", platform_admin.towns_page, name="platform-towns"),
    path("hq/alerts/", alert_views.board, name="alert-board"),
    path("hq/alerts/history/", alert_views.history, name="alert-history"),
    path("hq/alerts/<int:alert_id>/act", alert_views.act, name="alert-act"),
    path("alerts/current/", alert_views.public_current, name="alerts-public-current"),
    path("hq/shelters/<str:code>/status", views.shelter_status, name="dashboard-shelter-status"),
    path("stations/<str:code>/", views.station_detail, name="station-detail"),
    # Django's set_language view (POST), for the language switch in the page header.
    path("i18n/", include("django.conf.urls.i18n")),
    path("i18n/catalog/<str:language>.js", LanguageCatalog.as_view(), name="js-catalog"),
]
