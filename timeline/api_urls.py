from django.urls import path

from . import api

urlpatterns = [
    path("events", api.EventListAPI.as_view(), name="api-events"),
    path("shelters", api.ShelterListAPI.as_view(), name="api-shelters"),
    path("replay/frames", api.ReplayFramesAPI.as_view(), name="api-replay-frames"),
]
