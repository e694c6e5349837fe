from django.urls import path

from .feeds import PublicAlertFeed

urlpatterns = [
    path("feed.atom", PublicAlertFeed(), name="alerts-feed"),
]
