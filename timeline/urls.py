from django.urls import path

from . import views

urlpatterns = [
    path("overview/", views.overview_fragment, name="hq-overview"),
    path("timeline/", views.timeline_page, name="hq-timeline"),
]
