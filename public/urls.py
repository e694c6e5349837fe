from django.urls import path

from . import views

urlpatterns = [
    path("", views.public_shell, name="dashboard-public"),
    path("public/basemap.js", views.public_basemap, name="public-basemap"),
    path("api/v1/public/snapshot", views.PublicSnapshotView.as_view(), name="api-public-snapshot"),
]
