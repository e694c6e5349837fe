from django.urls import include, path

from . import views

urlpatterns = [
    path("", views.public_map, name="dashboard-public"),
    path("hq/", views.hq_map, name="dashboard-hq"),
    # Django's set_language view (POST), for the language switch in the page header.
    path("i18n/", include("django.conf.urls.i18n")),
]
