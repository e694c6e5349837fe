from django.urls import path

from . import api

urlpatterns = [
    path("releases", api.ReleaseListAPI.as_view(), name="api-releases"),
    path("releases/<int:release_id>", api.ReleaseDetailAPI.as_view(), name="api-release-detail"),
    path("releases/<int:release_id>/end", api.ReleaseEndAPI.as_view(), name="api-release-end"),
    path("releases/<int:release_id>/cap", api.ReleaseCapAPI.as_view(), name="api-release-cap"),
]
