from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SensorsConfig(AppConfig):
    name = "sensors"
    verbose_name = _("Sensors (stations, thresholds, observations)")

    def ready(self):
        from tenancy import permissions

        from .models import SharingGrant, Station, StationGroup, Threshold

        permissions.register(Station, owner="municipality", visible=lambda stations, viewer: stations.visible_to(viewer))
        permissions.register(
            Threshold, owner="station__municipality",
            visible=lambda thresholds, viewer: thresholds.filter(station__in=Station.objects.visible_to(viewer)),
        )
        permissions.register(SharingGrant, owner="grantor")
        permissions.register(StationGroup, owner="municipality")
