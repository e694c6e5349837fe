from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/v1/", include("sensors.urls")),
    path("api/v1/", include("alerts.api_urls")),
    path("api/v1/", include("releases.api_urls")),
    path("api/v1/", include("forecasts.urls")),
    path("api/v1/", include("timeline.api_urls")),
    path("api/v1/", include("orders.api_urls")),
    path("alerts/", include("alerts.urls")),
    path("orders/", include("orders.urls")),
    path("releases/", include("releases.urls")),
    path("ngsi/", include("ngsi.urls")),
    path("hq/forecasts/", include("forecasts.page_urls")),
    path("hq/", include("timeline.urls")),
    # `/` (the public shell) and the public snapshot: public/urls.py.
    path("", include("public.urls")),
    path("", include("dashboard.urls")),
]

# JSON under /api/ and /ngsi/; a database or Redis outage is a 503 (config/errors.py).
handler400 = "config.errors.bad_request"
handler404 = "config.errors.page_not_found"
handler500 = "config.errors.server_error"
