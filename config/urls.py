from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/v1/", include("sensors.urls")),
    path("api/v1/", include("alerts.api_urls")),
    path("alerts/", include("alerts.urls")),
    path("ngsi/", include("ngsi.urls")),
    path("", include("dashboard.urls")),
]
