from django.urls import include, path

from . import views

urlpatterns = [
    path("", views.public_map, name="dashboard-public"),
    path("hq/", views.hq_map, name="dashboard-hq"),
    path("hq/town/", views.switch_town, name="dashboard-switch-town"),
    path("stations/<str:code>/", views.station_detail, name="station-detail"),
    # Django's set_language view (POST), for the language switch in the page header.
    path("i18n/", include("django.conf.urls.i18n")),
]
