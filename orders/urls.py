from django.urls import path

from .feeds import OrderFeed

urlpatterns = [
    path("feed.atom", OrderFeed(), name="orders-feed"),
]
