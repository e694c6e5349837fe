from django.urls import path

from .feeds import ReleaseFeed

urlpatterns = [path("feed.atom", ReleaseFeed(), name="releases-feed")]
